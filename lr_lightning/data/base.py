"""The shared base of every DataModule: arrays in memory or on disk, seeded splits, scaling fitted on train, loaders.

A subclass only says where its arrays come from (:meth:`InMemoryDataModule.load_arrays`); everything else —
validation, splitting, standardization, batching, sharding under DDP — lives here once. Features that arrive as
an ``np.memmap`` stay on disk (out-of-core mode): see :class:`InMemoryDataModule`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lr_lightning.data.loader import (
    DiskBatchLoader,
    InMemoryBatchLoader,
    PageReleaser,
    RowBlocks,
    read_rows,
    shard_bounds,
)
from lr_lightning.errors import InputError

__all__ = [
    "TASKS",
    "ArrayData",
    "ColumnMoments",
    "InMemoryDataModule",
    "ScalingStatistics",
    "check_finite",
    "float32_overflow_message",
    "streaming_moments",
]

#: What a DataModule's targets are: real values (N, K) or class labels (N,).
TASKS = ("regression", "classification")

#: Rows permuted, cast or summed at a time: keeps temporaries at a few tens of MB for a 1,000,000-row table.
CHUNK_ROWS = 65536

#: Rows per block when data stays on disk: the unit of the seeded split and of the per-epoch shuffle.
BLOCK_ROWS = 256

#: The largest magnitude a float32 holds (about 3.4e38); training is float32 unless the trainer runs in float64.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class ArrayData:
    """Arrays a DataModule serves.

    Attributes:
        features: X of shape (N, D), any real dtype (float64 values are kept when training in float64). An
            ``np.memmap`` (``np.load(path, mmap_mode="r")``, or a column view of one) stays on disk.
        targets: Y of shape (N, K) or (N,) for regression; class indices in ``0..C-1`` of shape (N,) for
            classification.
        feature_names: D column names.
        target_names: K target names (regression) or the name of the label column (classification).
        class_names: C class names (classification only); label ``i`` means ``class_names[i]``.
        split_sizes: ``(n_train, n_val, n_test)`` when the rows already come in train, val, test order (one file
            per split); a size of 0 means that stage uses the training rows. ``None``: split by the fractions.
        predict_features: features of shape (M, D) to predict on (a memmap stays on disk too); ``None`` predicts
            on all N rows.
        source: where the data came from (a file name), for messages.
        split_sources: where the validation and test rows came from, when ``split_sizes`` is given (their
            files), for messages; ``None``: from ``source``.
        too_large_for_float32: the message naming the first cell whose magnitude float32 cannot hold, if any
            (set by the subclass, which knows files and line numbers, or else by the base's checks); such data
            trains only in float64 (``trainer.precision: 64-true``).

    """

    features: np.ndarray
    targets: np.ndarray
    feature_names: list[str]
    target_names: list[str]
    class_names: list[str] | None = None
    split_sizes: tuple[int, int, int] | None = None
    predict_features: np.ndarray | None = None
    source: str = "the data"
    split_sources: tuple[str | None, str | None] | None = None
    too_large_for_float32: str | None = None


@dataclass
class ScalingStatistics:
    """Affine maps fitted on the training rows; the model stores them as buffers so checkpoints work in raw units.

    All four are float64 when the trainer runs in float64 (``precision="64-true"``), float32 otherwise.

    Attributes:
        feature_mean: shape (D,); zeros when features are not standardized.
        feature_scale: shape (D,); ones when features are not standardized.
        target_mean: shape (K,); zeros when targets are not standardized (always for classification).
        target_scale: shape (K,); ones when targets are not standardized.

    """

    feature_mean: Tensor
    feature_scale: Tensor
    target_mean: Tensor
    target_scale: Tensor


@dataclass
class _OnDisk:
    """What an out-of-core DataModule holds after ``setup``: the arrays as given (memmaps) and row blocks."""

    features: np.ndarray  # (N, D), on disk
    targets: np.ndarray  # (N, K) float or (N,) int labels, as the source gave them
    predict_features: np.ndarray | None  # (M, D) from a predict file, else None
    splits: dict[str, RowBlocks]  # train, val, test, predict: which rows, in unshuffled order
    dtype: torch.dtype  # the training dtype batches are cast to


@dataclass(frozen=True)
class _Summary:
    """What the CLI links into the model; kept after the arrays themselves are released."""

    num_features: int
    num_targets: int
    feature_names: list[str]
    target_names: list[str]
    class_names: list[str] | None
    too_large_for_float32: str | None  # raised unless training in float64
    split_problems: dict[str, str]  # stage ("fit", "test", ...; "any": every stage) -> why it cannot run


def float32_overflow_message(where: str, value: str) -> str:
    """Say that a cell (``where``: file, row and column) holds a value float32 cannot hold, and what to do."""
    return (
        f"{where}: {value} is too large for float32, the training dtype (largest magnitude {FLOAT32_MAX:.4g}); "
        "rescale the column, or train in float64 with trainer.precision: 64-true"
    )


def check_finite(values: np.ndarray, column_names: Sequence[str], where: str, first_row: int = 0) -> str | None:
    """Raise :class:`InputError` naming the first NaN or infinite cell of a 2-D array; report values beyond float32.

    One pass over the array (a memmap is read once). Float64 (and wider) arrays are also searched for finite
    values whose magnitude exceeds float32's (about 3.4e38): they are fine in float64 but become infinite when
    cast to float32, so whether they are an error depends on the trainer's precision, which is not known yet.

    Args:
        values: array of shape (N, C), any dtype (only floating point is checked).
        column_names: C column names, for the message.
        where: what the array is (``"data/houses.csv"``), for the message.
        first_row: number to report for row 0 (e.g. 2 for a CSV whose line 1 is the header).

    Returns:
        The message naming the first cell too large for float32 (see :func:`float32_overflow_message`), or
        ``None`` when every value fits.

    Raises:
        InputError: a cell is NaN or infinite.

    """
    if not np.issubdtype(values.dtype, np.floating):
        return None
    wide = values.dtype.itemsize > 4  # only float64 and wider can hold finite values beyond float32's range
    too_large = None
    release = PageReleaser(values)  # a memmap is read once here: do not leave it resident
    for start in range(0, values.shape[0], CHUNK_ROWS):
        chunk = values[start : start + CHUNK_ROWS]
        if wide and too_large is None:
            outside = ~(np.abs(chunk) <= FLOAT32_MAX)  # NaN compares false: caught here too
            if outside.any():
                _raise_non_finite(chunk, column_names, where, start + first_row)
                row, column = (int(i) for i in np.argwhere(outside)[0])
                cell = f"{where}, row {start + row + first_row}, column {column_names[column]!r}"
                too_large = float32_overflow_message(cell, f"{chunk[row, column]:.6g}")
        else:
            _raise_non_finite(chunk, column_names, where, start + first_row)
        release()
    return too_large


def _raise_non_finite(chunk: np.ndarray, column_names: Sequence[str], where: str, first_row: int) -> None:
    """Raise :class:`InputError` naming the first NaN or infinite cell of ``chunk``, whose row 0 is ``first_row``."""
    bad = ~np.isfinite(chunk)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{where}, row {row + first_row}, column {column_names[column]!r}: {chunk[row, column]} is not a finite "
            "number (remove or fill the missing values)"
        )


def _take_rows(array: np.ndarray, order: np.ndarray | None, dtype: type) -> np.ndarray:
    """Rows of ``array`` in ``order`` (or as they are) as a C-contiguous array of ``dtype``, without temporaries.

    Fancy indexing ``array[order]`` would materialise a full copy in the source dtype (800 MB for 1,000,000 x
    100 float64) before the cast; gathering chunk by chunk into the output allocates the output only.
    """
    if order is None:
        return np.ascontiguousarray(array, dtype=dtype)  # no copy when the dtype and layout already fit
    output = np.empty((len(order), *array.shape[1:]), dtype=dtype)
    for start in range(0, len(order), CHUNK_ROWS):
        output[start : start + CHUNK_ROWS] = array[order[start : start + CHUNK_ROWS]]
    return output


def _column_mean_and_std(values: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and population std of each column of (n, C) values, in float64, summed chunk by chunk.

    Two passes (mean, then squared deviations) rather than ``E[x^2] - E[x]^2``, which cancels catastrophically for
    columns far from zero; chunks keep the float64 temporaries small.
    """
    n_rows = values.shape[0]
    total = torch.zeros(values.shape[1], dtype=torch.float64)
    for chunk in values.split(CHUNK_ROWS):
        total += chunk.sum(dim=0, dtype=torch.float64)
    mean = total / n_rows
    squares = torch.zeros_like(mean)
    for chunk in values.split(CHUNK_ROWS):
        squares += (chunk.double() - mean).square().sum(dim=0)
    return mean, (squares / n_rows).sqrt()


@dataclass
class ColumnMoments:
    r"""Count, mean and sum of squared deviations of each column over some rows, float64; mergeable.

    Attributes:
        count: number of rows n.
        mean: column means, shape (C,).
        squared_deviations: :math:`M_2 = \sum_i (x_i - \bar x)^2` per column, shape (C,).

    """

    count: int
    mean: np.ndarray
    squared_deviations: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> ColumnMoments:
        """Moments of the rows of ``values`` (n, C), two passes over rows that are in memory."""
        values = values.astype(np.float64, copy=False)
        mean = values.mean(axis=0)
        return cls(len(values), mean, np.square(values - mean).sum(axis=0))

    def merge(self, other: ColumnMoments) -> ColumnMoments:
        r"""Moments of both sets of rows (Chan, Golub and LeVeque's pairwise update).

        .. math::

            n = n_a + n_b, \quad \delta = \bar x_b - \bar x_a, \quad
            \bar x = \bar x_a + \delta \frac{n_b}{n}, \quad
            M_2 = M_{2,a} + M_{2,b} + \delta^2 \frac{n_a n_b}{n}

        Unlike accumulating :math:`\sum x^2`, this never subtracts two large sums, so columns far from zero keep
        their precision.
        """
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        deviations = self.squared_deviations + other.squared_deviations + delta**2 * (self.count * other.count / count)
        return ColumnMoments(count, mean, deviations)

    def mean_and_std(self) -> tuple[Tensor, Tensor]:
        """Mean and population standard deviation, float64 tensors of shape (C,)."""
        std = np.sqrt(self.squared_deviations / self.count)
        return torch.from_numpy(self.mean.copy()), torch.from_numpy(std)


def streaming_moments(array: np.ndarray, blocks: RowBlocks, chunk_rows: int = CHUNK_ROWS) -> ColumnMoments:
    """Column moments of the rows ``blocks`` of a 2-D ``array`` (a memmap), in one pass of ``chunk_rows`` at a time.

    Each chunk is read into memory in float64 (two exact passes over the chunk), then merged into the running
    moments with :meth:`ColumnMoments.merge`: one pass over the file, float64 temporaries of ``chunk_rows`` rows,
    and the pages read are released as it goes.
    """
    release = PageReleaser(array)
    moments = ColumnMoments(0, np.zeros(array.shape[1]), np.zeros(array.shape[1]))
    for first in range(0, len(blocks), chunk_rows):
        chunk = read_rows(array, blocks.positions(first, first + chunk_rows), np.float64, release)
        moments = moments.merge(ColumnMoments.of(chunk))
    return moments


def _split_sizes(n_rows: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    n_val = round(n_rows * val_fraction)
    n_test = round(n_rows * test_fraction)
    n_train = n_rows - n_val - n_test
    if n_train < 1 or (val_fraction > 0 and n_val < 1) or (test_fraction > 0 and n_test < 1):
        raise InputError(
            f"cannot split {n_rows} rows with val_fraction={val_fraction} and test_fraction={test_fraction}: "
            f"that leaves {n_train} train, {n_val} val and {n_test} test rows"
        )
    return n_train, n_val, n_test


def _precision_dtype(trainer: pl.Trainer | None) -> torch.dtype:
    """Return the dtype data is stored and trained in: float64 under ``precision="64-true"``, else float32."""
    precision = str(trainer.precision) if trainer is not None else ""
    return torch.float64 if precision.startswith("64") else torch.float32


class InMemoryDataModule(pl.LightningDataModule, ABC):
    """Serve features and targets held in memory, split by a seed, with scaling fitted on the training split.

    Splits: the rows are permuted once with ``seed`` and cut into train, val and test blocks of the requested
    fractions; the tensors are stored in that order, so each split is a contiguous view (one copy of the data,
    not one per split). A fraction of 0 means that stage uses *all* rows, which is the right default for tiny
    tables (the 10-row sourdough data) where holding rows out leaves nothing to learn from. Data that comes with
    its own splits (one file per split) keeps them.

    Scaling: with ``standardize=True`` each feature is centred and divided by its standard deviation over the
    training rows only (population std, as scikit-learn's ``StandardScaler``). A feature that is constant on the
    training rows keeps scale 1 (it is only centred, so there is no division by zero) and a warning names it:
    it carries no information, and its weight stays at its initial value. The model receives these statistics
    as buffers and applies them itself, so it always takes raw features.

    Task: ``"regression"`` data exposes ``num_targets`` and ``target_names`` (targets (N, K), floating point);
    ``"classification"`` data exposes ``num_classes`` and ``class_names`` instead (labels (N,), int64), and never
    standardizes targets. The other pair is *absent* (``hasattr`` is false), which is how the CLI knows which
    links into the model apply.

    Precision: features, regression targets and the scaling statistics are float32, or float64 when the attached
    trainer runs with ``precision="64-true"`` — then the source's float64 values are kept as they are, never
    rounded through float32.

    Memory: the source arrays are released after ``setup``; what stays is one tensor of features in the training
    dtype (for 1,000,000 x 100 float64 features from scikit-learn: one float32 copy, 400 MB). The scaled
    features are never stored: the model standardizes each batch.

    Out of core: features given as an ``np.memmap`` (``np.load(path, mmap_mode="r")``) stay on disk
    (``in_memory=None``, the default; ``in_memory=False`` does the same for any array, ``True`` copies a memmap
    into memory as above). Nothing of size N x D is ever allocated:

    * splits cut the rows into blocks of ``block_rows`` and assign blocks (not rows) with the seeded
      permutation; the fractions are exact, the two blocks at a split boundary being cut. Each split then reads
      its blocks in file order;
    * the standardization statistics come from one streaming pass over the training rows in float64 chunks,
      merged with Chan's update (:class:`ColumnMoments`); under DDP each rank reads only its share of the
      training rows and the ranks merge their moments in rank order (one all-gather), so every rank holds the
      same statistics;
    * batches are read from the memmap block by block (:class:`~lr_lightning.data.loader.DiskBatchLoader`),
      each epoch shuffling the *blocks* with ``seed + epoch``; under DDP each rank reads only its shard of that
      epoch's blocks. Rows do not change blocks between epochs: a truly random row order on a memmap would be one
      random read per row. Keep ``block_rows`` well below ``batch_size`` so each batch mixes many blocks;
    * the pages read are unmapped again (``madvise``), so resident memory stays at a few batches;
    * targets are read alongside, from memory or from their own memmap.

    :meth:`split_tensors` and :meth:`predict_features` still work out of core but read their rows into memory:
    fine for the validation split of a moderately large file, not for the training split of one larger than RAM.

    Args:
        batch_size: rows per training batch (>= 1); evaluation uses the same size.
        val_fraction: share of rows held out for validation, in [0, 1); 0 validates on all rows.
        test_fraction: share of rows held out for testing, in [0, 1); 0 tests on all rows.
        standardize: standardize features with statistics of the training rows.
        standardize_targets: standardize regression targets too (the loss is then in standardized units).
        shuffle: reshuffle training rows every epoch (seeded by ``seed + epoch``).
        seed: seed of the split and of the shuffles.
        in_memory: ``None``: memmapped features stay on disk, others are held in memory; ``True``: always in
            memory; ``False``: always read batch by batch from the source arrays (out-of-core mode).
        block_rows: rows per block in out-of-core mode (split and shuffle unit); ignored in memory.

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
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1 to leave training rows, got {val_fraction + test_fraction}"
            )
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.standardize = standardize
        self.standardize_targets = standardize_targets
        self.shuffle = shuffle
        self.seed = seed
        self.in_memory = in_memory
        self.block_rows = block_rows
        self._data: ArrayData | None = None
        self._summary: _Summary | None = None
        self._features: Tensor | None = None  # (N, D), rows in split order
        self._targets: Tensor | None = None  # (N, K) float or (N,) int64
        self._predict_features: Tensor | None = None  # (M, D) from a predict file, else None
        self._source_rows: Tensor | None = None  # (N,) position of each source row in split order
        self._splits: dict[str, slice] = {}
        self._scaling: ScalingStatistics | None = None
        self._disk: _OnDisk | None = None  # out-of-core mode only

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

    # -- shape and names, available right after construction (the CLI links them into the model) -----------------

    @property
    def data(self) -> ArrayData:
        """The dataset, loaded and checked on first use (and again if asked for after ``setup`` released it)."""
        if self._data is None:
            data = self.load_arrays()
            self._validate(data)
            split_problems = self._check_splits(data)
            self._data = data
            self._summary = _Summary(
                num_features=int(data.features.shape[1]),
                num_targets=1 if data.targets.ndim == 1 else int(data.targets.shape[1]),
                feature_names=list(data.feature_names),
                target_names=list(data.target_names),
                class_names=list(data.class_names) if data.class_names is not None else None,
                too_large_for_float32=data.too_large_for_float32,
                split_problems=split_problems,
            )
        return self._data

    def _describe(self) -> _Summary:
        if self._summary is None:
            _ = self.data
        assert self._summary is not None
        return self._summary

    def _require_task(self, task: str, attribute: str) -> None:
        # AttributeError, not another error: `hasattr(dm, "num_classes")` must be False for regression data, so
        # the CLI skips the link to a model argument that does not exist.
        if self.task != task:
            raise AttributeError(f"{type(self).__name__} holds {self.task} data, which has no {attribute}")

    @property
    def num_features(self) -> int:
        """D, the number of input features."""
        return self._describe().num_features

    @property
    def feature_names(self) -> list[str]:
        """Names of the D features."""
        return list(self._describe().feature_names)

    @property
    def num_targets(self) -> int:
        """K, the number of regression targets (regression only)."""
        self._require_task("regression", "num_targets")
        return self._describe().num_targets

    @property
    def target_names(self) -> list[str]:
        """Names of the K targets (regression only)."""
        self._require_task("regression", "target_names")
        return list(self._describe().target_names)

    @property
    def num_classes(self) -> int:
        """C, the number of classes (classification only)."""
        self._require_task("classification", "num_classes")
        return len(self.class_names)

    @property
    def class_names(self) -> list[str]:
        """Names of the C classes; label ``i`` is ``class_names[i]`` (classification only)."""
        self._require_task("classification", "class_names")
        names = self._describe().class_names
        assert names is not None
        return list(names)

    def _validate(self, data: ArrayData) -> None:
        """Check shapes, finiteness and labels of freshly loaded arrays; raise InputError naming the problem."""
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        features, targets = data.features, data.targets
        where = data.source
        if features.ndim != 2:
            raise InputError(f"{where}: features must be a 2-D array (rows, columns), got shape {features.shape}")
        if features.shape[0] == 0 or features.shape[1] == 0:
            raise InputError(f"{where}: no data (features of shape {features.shape})")
        if targets.shape[0] != features.shape[0]:
            raise InputError(f"{where}: {features.shape[0]} rows of features but {targets.shape[0]} rows of targets")
        if len(data.feature_names) != features.shape[1]:
            raise ValueError(f"{len(data.feature_names)} feature names for {features.shape[1]} features")
        too_large = [check_finite(features, data.feature_names, where)]
        if self.task == "regression":
            if targets.ndim not in (1, 2):
                raise InputError(f"{where}: targets must be 1-D or 2-D, got shape {targets.shape}")
            too_large.append(check_finite(targets.reshape(len(targets), -1), data.target_names, where))
        else:
            if data.class_names is not None and len(data.class_names) == 1:
                raise InputError(
                    f"{where}, column {self._label_column(data)!r}: every row holds the same class "
                    f"({data.class_names[0]}); a classifier needs at least two"
                )
            if data.class_names is None or len(data.class_names) < 2:
                raise InputError(f"{where}: classification needs at least two classes, got {data.class_names}")
            if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
                raise ValueError(f"classification labels must be integers of shape (N,), got {targets.dtype}")
            outside = (targets < 0) | (targets >= len(data.class_names))
            if outside.any():
                row = int(np.argmax(outside))
                raise InputError(f"{where}, row {row}: label {targets[row]} outside 0..{len(data.class_names) - 1}")
        if data.predict_features is not None:
            predict = data.predict_features
            if predict.ndim != 2 or predict.shape[1] != features.shape[1]:
                raise InputError(
                    f"{where}: the predict data has shape {predict.shape} but the model takes "
                    f"{features.shape[1]} features"
                )
            too_large.append(check_finite(predict, data.feature_names, f"{where} (predict)"))
        if data.too_large_for_float32 is None:  # a subclass that names files and lines has said it already
            data.too_large_for_float32 = next((message for message in too_large if message), None)

    @staticmethod
    def _label_column(data: ArrayData) -> str:
        return data.target_names[0] if data.target_names else "label"

    def _is_out_of_core(self, data: ArrayData) -> bool:
        """Whether ``data`` stays on disk (see ``in_memory``): memmapped features unless told otherwise."""
        if self.in_memory is not None:
            return not self.in_memory
        return isinstance(data.features, np.memmap)

    def _split_in_memory(self, data: ArrayData) -> tuple[np.ndarray | None, tuple[int, int, int], slice]:
        """Split in memory: the source row of each stored row (``None``: source order), the sizes, the fallback.

        The rows are stored in train, val, test order; ``fallback`` is what a split of size 0 uses: the training
        rows when the data came with its own splits, else all rows.
        """
        n_rows = data.features.shape[0]
        if data.split_sizes is not None:
            return None, data.split_sizes, slice(0, data.split_sizes[0])
        sizes = _split_sizes(n_rows, self.val_fraction, self.test_fraction)
        order = np.random.default_rng(self.seed).permutation(n_rows) if sizes[1] + sizes[2] else None
        return order, sizes, slice(0, n_rows)

    def _split_on_disk(self, data: ArrayData) -> dict[str, RowBlocks]:
        """Split out of core: train, val and test as row blocks (see the class docstring)."""
        n_rows = data.features.shape[0]
        everything = RowBlocks.cut(0, n_rows, self.block_rows)
        if data.split_sizes is not None:
            n_train, n_val, n_test = data.split_sizes
            train = RowBlocks.cut(0, n_train, self.block_rows)
            val = everything.positions(n_train, n_train + n_val) if n_val else train
            test = everything.positions(n_train + n_val, n_train + n_val + n_test) if n_test else train
            return {"train": train, "val": val, "test": test}
        n_train, n_val, n_test = _split_sizes(n_rows, self.val_fraction, self.test_fraction)
        if not n_val + n_test:
            return {"train": everything, "val": everything, "test": everything}
        # The in-memory split's rule at block granularity: a seeded order of blocks, cut by the sizes.
        order = everything.take(np.random.default_rng(self.seed).permutation(everything.num_blocks))
        return {
            "train": order.positions(0, n_train).sorted(),
            "val": order.positions(n_train, n_train + n_val).sorted() if n_val else everything,
            "test": order.positions(n_train + n_val, n_rows).sorted() if n_test else everything,
        }

    def _check_splits(self, data: ArrayData) -> dict[str, str]:
        """Find, when the data is loaded, what would stop a stage; :meth:`_check_stage` raises it for that stage.

        The split depends only on the row count, the fractions (or the data's own splits), the seed and
        ``block_rows``, so it is known long before ``setup``. Training needs at least two rows and, for
        classification, two classes in the training split; a regression model's R² needs at least two rows in
        the validation (used by ``fit`` and ``validate``) and test splits. Only messages are kept here: the data
        may still serve other stages (a one-row file may be predicted on).

        Returns:
            Messages by stage (``"fit"``, ``"validate"``, ``"test"``; ``"any"`` when the fractions cannot split
            the rows at all); empty when every stage can run.

        """
        where = data.source
        n_rows = data.features.shape[0]
        on_disk = self._is_out_of_core(data)
        try:
            if on_disk:
                blocks = self._split_on_disk(data)
                n_train, n_val, n_test = (len(blocks[split]) for split in ("train", "val", "test"))
            else:
                order, (n_train, n_val, n_test), fallback = self._split_in_memory(data)
                n_val, n_test = (size or fallback.stop - fallback.start for size in (n_val, n_test))
        except InputError as error:
            return {"any": f"{where}: {error}"}
        if data.split_sizes is not None:
            how = "all rows of the file"
        else:
            rows = f"{n_rows} row{'' if n_rows == 1 else 's'} in all"
            how = f"{rows}, val_fraction={self.val_fraction}, test_fraction={self.test_fraction}"
        problems = {}
        if n_train < 2:
            problems["fit"] = f"{where}: the training split needs at least 2 rows, but it has {n_train} ({how})"
            return problems
        if self.task == "regression":
            sources = data.split_sources if data.split_sizes is not None and data.split_sources else (None, None)
            for stage, split, size, source, fraction in (
                ("validate", "validation", n_val, sources[0], "val_fraction"),
                ("test", "test", n_test, sources[1], "test_fraction"),
            ):
                if size < 2:
                    hint = "" if source else f"; raise {fraction}, or set it to 0 to use all rows"
                    problems[stage] = (
                        f"{source or where}: the {split} split has {size} row, but R² needs at least 2 ({how}){hint}"
                    )
            if "validate" in problems:
                problems["fit"] = problems["validate"]  # fit validates every epoch
            return problems
        if data.class_names is None:
            return problems
        if on_disk:
            labels = read_rows(data.targets, blocks["train"], np.int64)
        else:
            labels = data.targets[order[:n_train]] if order is not None else data.targets[:n_train]
        present = np.unique(labels)
        if len(present) < 2:
            problems["fit"] = (
                f"{where}, column {self._label_column(data)!r}: the training rows hold a single class "
                f"({data.class_names[int(present[0])]}) of the {len(data.class_names)} in the data; a classifier "
                "needs at least two (change seed or val_fraction/test_fraction, or add rows of the other classes)"
            )
        return problems

    def _check_stage(self, stage: str, dtype: torch.dtype) -> None:
        """Raise the problems :meth:`_check_splits` found that matter for ``stage``, and values ``dtype`` cannot hold.

        Values beyond float32's range (about 3.4e38) become infinite in float32: such data is refused unless the
        trainer runs in float64.
        """
        summary = self._describe()
        problem = summary.split_problems.get("any") or summary.split_problems.get(stage)
        if problem is not None:
            raise InputError(problem)
        if summary.too_large_for_float32 is not None and dtype != torch.float64:
            raise InputError(summary.too_large_for_float32)

    # -- Lightning hooks ------------------------------------------------------------------------------------------

    def _storage_dtype(self) -> torch.dtype:
        """float64 under a ``precision="64-true"`` trainer, float32 otherwise."""
        return _precision_dtype(self.trainer)

    @property
    def out_of_core(self) -> bool:
        """Whether the features stay on disk (see ``in_memory``); loads the data's description if needed."""
        if self._disk is not None:
            return True
        if self._features is not None:  # set up in memory; the source is gone, do not load it again to ask
            return False
        if self.in_memory is not None:
            return not self.in_memory
        return self._is_out_of_core(self.data)

    @property
    def trainer(self) -> pl.Trainer | None:
        """The trainer this data is attached to (Lightning sets it when ``fit``, ``test``, ... starts)."""
        return self._attached_trainer

    @trainer.setter
    def trainer(self, trainer: pl.Trainer | None) -> None:
        """Attach a trainer; for a running stage, first refuse data it cannot use (see :meth:`_check_stage`).

        Lightning attaches the DataModule at the very start of ``fit``/``validate``/``test``/``predict``, on every
        process, once the stage is set and before anything is written; even ``prepare_data`` comes after the
        logger has claimed its run folder. This is the first moment the training dtype (the trainer's precision)
        is known, so the checks that depend on it run here; ``setup`` runs them again for use without a trainer.
        """
        if trainer is not None and trainer.state.fn is not None:
            self._check_stage(str(trainer.state.fn.value), _precision_dtype(trainer))
        self._attached_trainer = trainer

    def setup(self, stage: str) -> None:
        """Split the rows (once per dtype) and fit the scaling on the training rows; then release the source."""
        dtype = self._storage_dtype()
        self._check_stage(stage, dtype)
        if self._features is not None and self._features.dtype == dtype:
            return
        if self.out_of_core:
            self._setup_on_disk(stage, dtype)
            return
        data = self.data
        n_rows = data.features.shape[0]
        everything = slice(0, n_rows)
        order, (n_train, n_val, n_test), fallback = self._split_in_memory(data)
        float_dtype = np.float64 if dtype == torch.float64 else np.float32
        # Where each source row went, so that predict can hand rows back in the user's order.
        self._source_rows = torch.from_numpy(np.argsort(order)) if order is not None else None
        self._features = torch.from_numpy(_take_rows(data.features, order, float_dtype))
        if self.task == "classification":
            self._targets = torch.from_numpy(_take_rows(data.targets, order, np.int64))
        else:
            targets = data.targets if data.targets.ndim == 2 else data.targets[:, None]
            self._targets = torch.from_numpy(_take_rows(targets, order, float_dtype))
        self._predict_features = (
            torch.from_numpy(np.ascontiguousarray(data.predict_features, dtype=float_dtype))
            if data.predict_features is not None
            else None
        )
        self._splits = {
            "train": slice(0, n_train),
            "val": slice(n_train, n_train + n_val) if n_val else fallback,
            "test": slice(n_train + n_val, n_train + n_val + n_test) if n_test else fallback,
            "predict": everything,
        }
        self._scaling = self._fit_scaling(data.source)
        self._data = None  # the tensors hold what is needed; the source (float64 for scikit-learn) goes

    def _setup_on_disk(self, stage: str, dtype: torch.dtype) -> None:
        """Out-of-core ``setup``: define the splits as row blocks; fit the scaling (streaming) when fitting."""
        if self._disk is None or self._disk.dtype != dtype:
            data = self.data
            splits = self._split_on_disk(data)
            predict = data.predict_features if data.predict_features is not None else data.features
            self._disk = _OnDisk(
                features=data.features,
                targets=data.targets
                if data.targets.ndim == 2 or self.task == "classification"
                else data.targets[:, None],
                predict_features=data.predict_features,
                splits={**splits, "predict": RowBlocks.cut(0, len(predict), len(predict))},
                dtype=dtype,
            )
            self._scaling = None
        if stage == "fit" and self._scaling is None:
            self._scaling = self._fit_scaling_on_disk(distributed=True)

    def _fit_scaling_on_disk(self, distributed: bool) -> ScalingStatistics:
        """Standardization statistics from one streaming pass over the training rows (see :func:`streaming_moments`).

        With ``distributed`` and an initialized process group of several ranks, each rank reads its own block of
        the training rows and the moments are all-gathered and merged in rank order (a collective: every rank must
        call it, which Lightning's ``setup`` hook does).
        """
        disk = self._disk
        assert disk is not None
        source = self.data.source
        train = disk.splits["train"]
        num_features = disk.features.shape[1]
        trainer = self.trainer
        world_size = trainer.world_size if trainer is not None else 1
        sharded = (
            distributed and world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()
        )
        rank = trainer.global_rank if sharded else 0
        offset, rows = shard_bounds(len(train), rank, world_size if sharded else 1, equal_shards=False)
        mine = train.positions(offset, offset + rows)

        def moments_of(array: np.ndarray) -> ColumnMoments:
            local = streaming_moments(array, mine)
            if not sharded:
                return local
            packed = torch.from_numpy(np.concatenate([[float(local.count)], local.mean, local.squared_deviations]))
            gathered = trainer.strategy.all_gather(packed.to(trainer.strategy.root_device)).cpu().double().numpy()
            merged = ColumnMoments(0, np.zeros_like(local.mean), np.zeros_like(local.mean))
            width = len(local.mean)
            for row in gathered.reshape(world_size, -1):  # rank order: the same sums on every rank
                merged = merged.merge(ColumnMoments(int(row[0]), row[1 : 1 + width], row[1 + width :]))
            return merged

        if self.standardize:
            feature_mean, feature_scale = moments_of(disk.features).mean_and_std()
            self._unit_scale_for_constants(feature_scale, self.feature_names, "feature", source)
        else:
            feature_mean, feature_scale = torch.zeros(num_features), torch.ones(num_features)
        num_outputs = disk.targets.shape[1] if disk.targets.ndim == 2 else 1
        if self.standardize_targets and self.task == "regression":
            target_mean, target_scale = moments_of(disk.targets).mean_and_std()
            self._unit_scale_for_constants(target_scale, self.target_names, "target", source)
        else:
            target_mean, target_scale = torch.zeros(num_outputs), torch.ones(num_outputs)
        dtype = disk.dtype
        return ScalingStatistics(
            feature_mean=feature_mean.to(dtype),
            feature_scale=feature_scale.to(dtype),
            target_mean=target_mean.to(dtype),
            target_scale=target_scale.to(dtype),
        )

    def _numpy_dtypes(self) -> tuple[type, type]:
        """Batch dtypes of features and targets in out-of-core mode."""
        assert self._disk is not None
        float_dtype = np.float64 if self._disk.dtype == torch.float64 else np.float32
        return float_dtype, (np.int64 if self.task == "classification" else float_dtype)

    def _fit_scaling(self, source: str) -> ScalingStatistics:
        assert self._features is not None
        x_train, y_train = self.split_tensors("train")
        dtype = self._features.dtype
        num_features = x_train.shape[1]
        if self.standardize:
            feature_mean, feature_scale = _column_mean_and_std(x_train)
            self._unit_scale_for_constants(feature_scale, self.feature_names, "feature", source)
        else:
            feature_mean, feature_scale = torch.zeros(num_features), torch.ones(num_features)
        num_outputs = y_train.shape[1] if y_train.ndim == 2 else 1
        if self.standardize_targets and self.task == "regression":
            target_mean, target_scale = _column_mean_and_std(y_train)
            self._unit_scale_for_constants(target_scale, self.target_names, "target", source)
        else:
            target_mean, target_scale = torch.zeros(num_outputs), torch.ones(num_outputs)
        return ScalingStatistics(
            feature_mean=feature_mean.to(dtype),
            feature_scale=feature_scale.to(dtype),
            target_mean=target_mean.to(dtype),
            target_scale=target_scale.to(dtype),
        )

    @staticmethod
    def _unit_scale_for_constants(scale: Tensor, names: list[str], kind: str, source: str) -> None:
        constant = (scale == 0).nonzero().flatten().tolist()
        if constant:
            columns = ", ".join(repr(names[i]) for i in constant)
            rank_zero_warn(
                f"{source}: {kind} column {columns} is constant on the training rows; it is centred but not "
                "scaled (scale 1), and carries no information for the model"
            )
            scale[constant] = 1.0

    def scaling_statistics(self) -> ScalingStatistics:
        """Scaling fitted on the training rows (call after ``setup``)."""
        if self._scaling is None:
            self.setup("fit")
        if self._scaling is None and self._disk is not None:  # set up for another stage: one local pass
            self._scaling = self._fit_scaling_on_disk(distributed=False)
        assert self._scaling is not None
        return self._scaling

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor]:
        """Raw features (n, D) and targets (n, K) or labels (n,) of ``train``, ``val``, ``test`` or ``predict``.

        ``predict`` is all rows of the data; :meth:`predict_features` is what ``predict`` runs on. Out of core the
        rows are read from disk into new tensors (in file order within each block of the split).
        """
        if self._features is None and self._disk is None:
            self.setup("fit")
        if self._disk is not None:
            blocks = self._disk.splits[split]
            feature_dtype, target_dtype = self._numpy_dtypes()
            features = read_rows(self._disk.features, blocks, feature_dtype, PageReleaser(self._disk.features))
            targets = read_rows(self._disk.targets, blocks, target_dtype, PageReleaser(self._disk.targets))
            return torch.from_numpy(features), torch.from_numpy(targets)
        assert self._features is not None and self._targets is not None
        rows = self._splits[split]
        return self._features[rows], self._targets[rows]

    def predict_features(self) -> Tensor:
        """Raw features (M, D) to predict on: the predict data if there is some, else all N rows in source order.

        The rows are stored in split order; without a predict file they are gathered back into the order of the
        source (a copy, made only here), so that row i of the predictions belongs to row i of the user's data.
        """
        if self._features is None and self._disk is None:
            self.setup("predict")
        if self._disk is not None:
            source = self._disk.predict_features if self._disk.predict_features is not None else self._disk.features
            blocks = self._disk.splits["predict"]
            return torch.from_numpy(read_rows(source, blocks, self._numpy_dtypes()[0], PageReleaser(source)))
        if self._predict_features is not None:
            return self._predict_features
        features = self.split_tensors("predict")[0]
        return features if self._source_rows is None else features.index_select(0, self._source_rows)

    def _loader_options(self, shuffle: bool, training: bool) -> dict[str, Any]:
        """Options of either loader: batching, seed, and this process's shard (equal shards for training)."""
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return {
            "batch_size": self.batch_size,
            "shuffle": shuffle,
            "seed": self.seed,
            "rank": rank,
            "world_size": world_size,
            "equal_shards": training,
        }

    def _loader(self, shuffle: bool, tensors: tuple[Tensor, ...], training: bool = False) -> InMemoryBatchLoader:
        return InMemoryBatchLoader(*tensors, **self._loader_options(shuffle, training))

    def _disk_loader(self, split: str, shuffle: bool, training: bool = False) -> DiskBatchLoader:
        if self._disk is None:
            self.setup("fit" if training else split)
        disk = self._disk
        assert disk is not None
        feature_dtype, target_dtype = self._numpy_dtypes()
        if split == "predict":
            source = disk.predict_features if disk.predict_features is not None else disk.features
            arrays, dtypes = (source,), (feature_dtype,)
        else:
            arrays, dtypes = (disk.features, disk.targets), (feature_dtype, target_dtype)
        return DiskBatchLoader(arrays, dtypes, disk.splits[split], **self._loader_options(shuffle, training))

    def train_dataloader(self) -> InMemoryBatchLoader | DiskBatchLoader:
        """Shuffled (seed + epoch) batches of the training rows."""
        if self.out_of_core:
            return self._disk_loader("train", self.shuffle, training=True)
        return self._loader(self.shuffle, self.split_tensors("train"), training=True)

    def val_dataloader(self) -> InMemoryBatchLoader | DiskBatchLoader:
        """Batches of the validation rows, in order."""
        if self.out_of_core:
            return self._disk_loader("val", False)
        return self._loader(False, self.split_tensors("val"))

    def test_dataloader(self) -> InMemoryBatchLoader | DiskBatchLoader:
        """Batches of the test rows, in order."""
        if self.out_of_core:
            return self._disk_loader("test", False)
        return self._loader(False, self.split_tensors("test"))

    def predict_dataloader(self) -> InMemoryBatchLoader | DiskBatchLoader:
        """Batches of features only, in row order, so predictions line up with the input rows."""
        if self.out_of_core:
            return self._disk_loader("predict", False)
        return self._loader(False, (self.predict_features(),))
