"""The shared base of every DataModule: arrays loaded once, a store chosen once, scaling fitted on train, loaders.

A subclass only says where its arrays come from (:meth:`InMemoryDataModule.load_arrays`); checks
(:mod:`lr_lightning.data.checks`), storage and splits (:mod:`lr_lightning.data.stores`), statistics
(:mod:`lr_lightning.data.scaling`) and batching (:mod:`lr_lightning.data.loader`) live in their own modules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from lr_lightning.data.checks import stage_problems, validate_arrays
from lr_lightning.data.contract import ArrayData, Chunk, ScalingStatistics
from lr_lightning.data.description import DataDescription, DataNames
from lr_lightning.data.loader import EpochSeededLoader
from lr_lightning.data.ranks import Ranks
from lr_lightning.data.reference import TrainingReference, chunk_rows_for
from lr_lightning.data.rows import BLOCK_ROWS
from lr_lightning.data.scaling import fit_scaling
from lr_lightning.data.stores import LoaderOptions, RowSplit, RowStore, SplitOptions, store_for
from lr_lightning.errors import InputError, require

if TYPE_CHECKING:
    from lr_lightning.closed_form import LeastSquaresSolution
    from lr_lightning.streaming import LeastSquaresState

__all__ = ["MAX_SEED", "InMemoryDataModule", "trainer_datamodule"]

#: The largest seed: numpy's and Lightning's seeds are 32-bit.
MAX_SEED = 2**32 - 1


def trainer_datamodule(trainer: pl.Trainer) -> pl.LightningDataModule | None:
    """Return the DataModule that ``trainer`` runs on (``trainer.datamodule``), or ``None``."""
    # Lightning 2.6 sets Trainer.datamodule in _DataConnector.on_trainer_init and declares it nowhere on the class.
    return trainer.datamodule  # type: ignore[attr-defined]


def _precision_dtype(trainer: pl.Trainer | None) -> torch.dtype:
    """Return the dtype data is stored and trained in: float64 under ``precision="64-true"``, else float32."""
    precision = str(trainer.precision) if trainer is not None else ""
    return torch.float64 if precision.startswith("64") else torch.float32


class InMemoryDataModule(DataNames, pl.LightningDataModule, ABC):
    """Serve features and targets, split by a seed, with scaling fitted on the training split.

    Storage: a store chosen once, when the data is loaded (:func:`~lr_lightning.data.stores.store_for`), holds
    the rows: tensors in memory (one copy in the training dtype, each split a view of it), or, for features given
    as an ``np.memmap``, the file itself, read block by block. ``in_memory`` overrides the choice. The source
    arrays are released after ``setup``.

    Splits: the rows (blocks of ``block_rows`` rows on disk) are permuted once with ``seed`` and cut by the
    fractions; a fraction of 0 means that stage uses *all* rows, the right default for tiny tables (the 10-row
    sourdough data). Data that comes with its own splits keeps them.

    Scaling: with ``standardize=True`` each feature is centred and divided by its standard deviation over the
    training rows only (:func:`~lr_lightning.data.scaling.fit_scaling`, one streaming pass, sharded under DDP).
    The model receives the statistics as buffers and applies them itself, so it always takes raw features.

    Task and names: see :class:`~lr_lightning.data.description.DataNames`. Precision: rows and statistics are
    float32, or float64 (the source's values kept, never rounded through float32) when the attached trainer runs
    with ``precision="64-true"``.

    Args:
        batch_size: rows per training batch (>= 1); evaluation uses the same size.
        val_fraction: share of rows held out for validation, in [0, 1); 0 validates on all rows.
        test_fraction: share of rows held out for testing, in [0, 1); 0 tests on all rows.
        standardize: standardize features with statistics of the training rows.
        standardize_targets: standardize regression targets too (the loss is then in standardized units).
        shuffle: reshuffle training rows every epoch (seeded by ``seed + epoch``; blocks of rows on disk).
        seed: seed of the split and of the shuffles.
        in_memory: ``None``: memmapped features stay on disk, others are held in memory; ``True``: always in
            memory; ``False``: always read batch by batch from the source arrays.
        block_rows: rows per block on disk (split and shuffle unit); ignored in memory. Keep it well below
            ``batch_size`` so that each batch mixes many blocks.
        num_folds: K >= 2 for k-fold cross-validation (``lr-lightning cv``): the rows not held out for testing are
            dealt into K folds with ``seed`` (stratified by class for classification), the validation rows are
            fold ``fold`` and the training rows the others; ``val_fraction`` is then not used. In memory only.
        fold: which fold validates, in ``0 .. num_folds - 1``.

    """

    task: str = "regression"

    _attached_trainer: pl.Trainer | None = None

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
        standardize: bool = True,
        standardize_targets: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        in_memory: bool | None = None,
        block_rows: int = BLOCK_ROWS,
        num_folds: int | None = None,
        fold: int = 0,
    ) -> None:
        super().__init__()
        require(batch_size >= 1, "batch_size", ">= 1", batch_size)
        require(block_rows >= 1, "block_rows", ">= 1", block_rows)
        require(0.0 <= val_fraction < 1.0, "val_fraction", "in [0, 1)", val_fraction)
        require(0.0 <= test_fraction < 1.0, "test_fraction", "in [0, 1)", test_fraction)
        require(0 <= seed <= MAX_SEED, "seed", f"in [0, {MAX_SEED}]", seed)
        total = val_fraction + test_fraction
        require(total < 1.0, "val_fraction + test_fraction", "< 1 to leave training rows", total)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed  # batches
        self.val_fraction, self.test_fraction = val_fraction, test_fraction  # the split
        self.standardize, self.standardize_targets = standardize, standardize_targets  # the scaling
        self.in_memory, self.block_rows = in_memory, block_rows  # the store
        require(num_folds is None or num_folds >= 2, "num_folds", ">= 2", num_folds)
        require(num_folds is None or 0 <= fold < num_folds, "fold", f"in [0, {(num_folds or 1) - 1}]", fold)
        self.num_folds, self.fold = num_folds, fold  # k-fold cross-validation
        self._data: ArrayData | None = None
        self._description: DataDescription | None = None
        self._store_type: type[RowStore] | None = None
        self._split: RowSplit | None = None
        self._store: RowStore | None = None
        self._scaling: ScalingStatistics | None = None
        self._reference = TrainingReference()
        self._streaming_pass = False

    def __repr__(self) -> str:
        # LightningDataModule's own __str__ builds every dataloader (loading the data) just to print sizes.
        fields = ("batch_size", "val_fraction", "test_fraction", "standardize", "seed")
        return f"{type(self).__name__}({', '.join(f'{name}={getattr(self, name)!r}' for name in fields)})"

    __str__ = __repr__

    # -- what a subclass provides -------------------------------------------------------------------------------

    @abstractmethod
    def load_arrays(self) -> ArrayData:
        """Return the whole dataset; called lazily, the first time the data or its shape is needed.

        Raise :class:`~lr_lightning.errors.InputError` for bad input; this runs while the CLI instantiates the
        classes, before any run folder exists.
        """

    # -- the data, its description and its split, known right after construction --------------------------------

    @property
    def data(self) -> ArrayData:
        """The dataset, loaded and checked on first use (and again if asked for after ``setup`` released it)."""
        if self._data is None:
            data = self.load_arrays()
            validate_arrays(data, self.task)
            if self._store_type is None:
                self._store_type = store_for(data, self.in_memory)
                self._description = self._describe(data)
            self._data = data
        return self._data

    @property
    def split_options(self) -> SplitOptions:
        """How the rows are split: the fractions, the seed, the block size on disk and the fold."""
        options = (self.val_fraction, self.test_fraction, self.seed, self.block_rows)
        return SplitOptions(*options, num_folds=self.num_folds, fold=self.fold)

    def _describe(self, data: ArrayData) -> DataDescription:
        """Split the rows (a plan, nothing copied) and find what would stop each stage."""
        assert self._store_type is not None
        options = self.split_options
        try:
            self._split = self._store_type.plan(data, options)
            problems = stage_problems(data, self.task, self._split, self.val_fraction, self.test_fraction)
        except InputError as error:  # the fractions cannot split these rows: every stage is refused
            problems = {"any": f"{data.source}: {error}"}
        return DataDescription.of(data, problems)

    @property
    def source_loaded(self) -> bool:
        """Whether the source arrays are held (``setup`` releases them once the store holds the rows)."""
        return self._data is not None

    @property
    def description(self) -> DataDescription:
        """Names and stage checks of the data (loads it the first time)."""
        if self._description is None:
            _ = self.data
        assert self._description is not None
        return self._description

    @property
    def out_of_core(self) -> bool:
        """Whether the rows stay on disk (see ``in_memory``); loads the data's description if needed."""
        _ = self.description  # loading the data chooses the store
        assert self._store_type is not None
        return not self._store_type.in_memory

    @property
    def split(self) -> RowSplit:
        """Which source rows each split holds (see :class:`~lr_lightning.data.stores.RowSplit`)."""
        _ = self.description
        if self._split is None:
            raise InputError(self.description.split_problems["any"])
        return self._split

    # -- Lightning hooks ------------------------------------------------------------------------------------------

    @property
    def trainer(self) -> pl.Trainer | None:
        """The trainer this data is attached to (Lightning sets it when ``fit``, ``test``, ... starts)."""
        return self._attached_trainer

    @trainer.setter
    def trainer(self, trainer: pl.Trainer | None) -> None:
        """Attach a trainer; for a running stage, first refuse data it cannot use (:meth:`DataDescription.check_stage`).

        Lightning attaches the DataModule at the very start of ``fit``/``validate``/``test``/``predict``, on every
        process, once the stage is set and before anything is written (even ``prepare_data`` comes after the
        logger has claimed its run folder). The training dtype (the trainer's precision) is first known here, so
        the checks that depend on it run now; ``setup`` runs them again for use without a trainer.
        """
        if trainer is not None and trainer.state.fn is not None:
            self.description.check_stage(str(trainer.state.fn.value), _precision_dtype(trainer))
        self._attached_trainer = trainer

    def setup(self, stage: str) -> None:
        """Build the store for the training dtype (once per dtype), fit the scaling when fitting; release the source."""
        dtype = _precision_dtype(self.trainer)
        self.description.check_stage(stage, dtype)
        if self._store is None or self._store.dtype != dtype:
            data = self.data
            assert self._store_type is not None
            self._store = self._store_type.build(data, self.split, dtype, self.task)
            self._scaling = None
            self._reference = TrainingReference()
            self._data = None  # the store holds what is needed; the source (float64 for scikit-learn) goes
        if stage == "fit" and self._scaling is None:
            self._scaling = self._fit_scaling(distributed=True)

    @property
    def store(self) -> RowStore:
        """Where the rows live, built by ``setup`` (called here with ``"fit"`` if it has not run)."""
        return self._set_up("fit")

    def _set_up(self, stage: str) -> RowStore:
        """Return the store, after ``setup(stage)`` if none is built yet."""
        if self._store is None:
            self.setup(stage)
        assert self._store is not None
        return self._store

    def _fit_scaling(self, distributed: bool) -> ScalingStatistics:
        """Statistics of the training rows; with ``distributed`` under DDP, each rank reads its shard (a collective)."""
        summary = self.description
        names = (summary.feature_names, summary.target_names)
        ranks = Ranks.of(self.trainer) if distributed else Ranks()
        return fit_scaling(self.store, self.standardize, self.standardize_targets, names, summary.source, ranks)

    # -- the data contract (lr_lightning.data.contract.TrainingData) ----------------------------------------------

    def scaling_statistics(self) -> ScalingStatistics:
        """Scaling fitted on the training rows (fitted here, by this process alone, if ``setup("fit")`` has not)."""
        if self._scaling is None:
            self._scaling = self._fit_scaling(distributed=False)
        return self._scaling

    @property
    def weighted(self) -> bool:
        """Whether the rows carry sample weights (``weights``): batches are then ``(features, targets, weights)``."""
        return self.description.weighted

    def class_counts(self) -> np.ndarray:
        """Return how many training rows each class has, (C,) int64, in one pass over the labels (classification)."""
        counts = np.zeros(self.num_classes, np.int64)
        for _, labels, _ in self.store.chunks("train"):
            counts += np.bincount(labels, minlength=len(counts))
        return counts

    def rows_in_memory(self, split: str) -> tuple[Tensor, Tensor] | None:
        """Raw features and targets of ``split`` when the store holds them in memory; ``None`` on disk."""
        return self.store.read(split) if self.store.in_memory else None

    def least_squares_state(self, distributed: bool = False) -> LeastSquaresState | None:
        """Return the float64 least-squares state of the training rows (:mod:`.reference`), streamed once.

        With ``distributed`` under DDP each rank reads its shard and the states are merged (a collective: every
        rank must call it, as the callbacks do in ``on_fit_start``); otherwise this process reads every training
        row, in memory or on disk. ``None`` for class labels and for data too wide for a reference.
        """
        return self._reference.state(self.store, Ranks.of(self.trainer) if distributed else Ranks())

    def share_least_squares_state(self, state: LeastSquaresState) -> None:
        """Keep the state of the training rows that a pass solver just streamed (raw rows, every rank's merged).

        :meth:`least_squares_state` then returns it instead of reading the rows again (the exact solver's pass
        serves the certificate too). Ignored when a state is held already, or when the pass was cut short (a
        ``max_steps`` or ``limit_train_batches`` stop): it must hold every training row.
        """
        if state.n_rows == self.split.size("train"):
            self._reference.share(state)

    def least_squares(self, fit_intercept: bool) -> LeastSquaresSolution | None:
        """Float64 least squares on the training rows, solved once per store from :meth:`least_squares_state`.

        The reference :class:`~lr_lightning.callbacks.OptimalityGap` and the dashboard both read, so they agree:
        the minimum-norm solution on a rank-deficient design (with a warning naming the rank), in memory or on
        disk. ``None`` when there is no state (class labels, data too wide).
        """
        return self._reference.solution(self.store, fit_intercept)

    def chunks(self, split: str, rank: int = 0, world_size: int = 1) -> Iterator[Chunk]:
        """Stream ``split`` (rank ``rank``'s covering shard of it): raw features (n, D) float64, targets, weights.

        See :meth:`~lr_lightning.data.stores.base.RowStore.chunks`: the second pass of a Newton epoch, the
        certificates' passes; one chunk in memory at a time, whatever the store.
        """
        return self.store.chunks(split, chunk_rows_for(sum(self.store.widths)), rank, world_size)

    def stream_training_rows(self, streaming: bool) -> None:
        """Serve the training split to the next ``train_dataloader`` as a streaming pass (``True``) or as batches.

        A pass, for solvers that fold every training row into sums (the exact and Newton solvers), gives each
        rank its covering shard of the training rows in order, in chunks of thousands of rows: under DDP the
        ranks together read every row exactly once. Batches (``False``, the default) are ``batch_size`` rows,
        shuffled, from equal shards, so that the ranks' gradient steps stay in lockstep.
        """
        self._streaming_pass = streaming

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor]:
        """Raw features (n, D) and targets (n, K) or labels (n,) of ``train``, ``val`` or ``test``.

        From disk the rows are read into new tensors (in file order within each block of the split).
        """
        return self.store.read(split)

    def predict_features(self) -> Tensor:
        """Raw features (M, D) to predict on: the predict data if there is some, else all N rows in source order."""
        return self._set_up("predict").predict_features()

    # -- what the prediction writer reads (lr_lightning.data.contract.PredictionData) -------------------------------

    def predict_targets(self) -> Tensor | None:
        """Actual targets (M, K) or labels (M,) of the rows predicted on, in their order; ``None`` if they have none."""
        return self._set_up("predict").predict_targets()

    @property
    def table_encoding(self) -> dict[str, Any] | None:
        """The table encoding fitted on the training rows; only a file with text or missing cells has one."""
        return None

    def predict_columns(self, names: list[str]) -> dict[str, list[str]]:
        """Columns of the rows predicted on, as text; only data read from a file has any (:class:`FileDataModule`)."""
        raise InputError(
            f"keep_columns {names}: {type(self).__name__} reads no file to copy columns from; keep_columns works "
            "with lr_lightning.data.FileDataModule"
        )

    # -- loaders --------------------------------------------------------------------------------------------------

    def _options(self, shuffle: bool = False, training: bool = False) -> LoaderOptions:
        """Batching, the seed and this process's shard (equal shards for training, covering ones otherwise)."""
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return LoaderOptions(self.batch_size, shuffle, self.seed, rank, world_size, equal_shards=training)

    def train_dataloader(self) -> EpochSeededLoader:
        """Shuffled (seed + epoch) batches of the training rows, or a streaming pass (:meth:`stream_training_rows`)."""
        if self._streaming_pass:
            options = self._options()
            rows = chunk_rows_for(sum(self.store.widths))
            return self.store.loader("train", LoaderOptions(rows, False, self.seed, options.rank, options.world_size))
        return self.store.loader("train", self._options(self.shuffle, training=True))

    def val_dataloader(self) -> EpochSeededLoader:
        """Batches of the validation rows, in order."""
        return self.store.loader("val", self._options())

    def test_dataloader(self) -> EpochSeededLoader:
        """Batches of the test rows, in order."""
        return self.store.loader("test", self._options())

    def predict_dataloader(self) -> EpochSeededLoader:
        """Batches of features only, in row order, so predictions line up with the input rows."""
        return self._set_up("predict").loader("predict", self._options())
