"""What models, callbacks and the CLI read from a DataModule: one small typed protocol, no Lightning in it.

A DataModule of this package (:class:`~lr_lightning.data.base.InMemoryDataModule`) satisfies
:class:`TrainingData`; consumers test ``isinstance(datamodule, TrainingData)`` once and then use the interface,
never the DataModule's storage. Models declare their task with the same vocabulary (:data:`TASKS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from torch import Tensor

if TYPE_CHECKING:
    from lr_lightning.closed_form import LeastSquaresSolution
    from lr_lightning.streaming import LeastSquaresState

__all__ = ["SPLITS", "TASKS", "ArrayData", "Chunk", "PredictionData", "ScalingStatistics", "Task", "TrainingData"]

#: What a model solves and a DataModule's targets are: real values (N, K) or class labels (N,).
Task = Literal["regression", "classification"]
TASKS: tuple[Task, ...] = ("regression", "classification")

#: A streamed piece of a split: raw features (n, D) float64, targets (n, K) float64 or labels (n,) int64, and the
#: rows' sample weights (n,) float64, ``None`` when the data has none (every row weighs 1).
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray | None]

#: The row sets a DataModule serves; ``predict`` is every row of the data (or of its predict file).
SPLITS = ("train", "val", "test", "predict")


@dataclass
class ArrayData:
    """Arrays a DataModule serves, as its subclass loads them.

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
        values_checked: the loader has already checked every value (finite, and ``too_large_for_float32``) with
            its own file and line numbers; the DataModule then does not read the arrays again for it (a
            memory-mapped file is read once).
        predict_targets: the actual targets (M, K) or labels (M,) of ``predict_features``' rows, when the predict
            file has them; ``None`` otherwise. Predicting on all rows uses ``targets``.
        unlabelled: why the rows have no targets (a file to predict on, without its target column); ``targets``
            then holds zeros standing in, and only ``predict`` runs. ``None``: the targets are real.
        weights: the sample weight of each row, float64 (N,), checked (:mod:`lr_lightning.data.weights`);
            ``None``: every row weighs 1. The rows to predict on have none.

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
    values_checked: bool = False
    predict_targets: np.ndarray | None = None
    unlabelled: str | None = None
    weights: np.ndarray | None = None


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


@runtime_checkable
class TrainingData(Protocol):
    """The data a fit runs on, as models and callbacks see it.

    Attributes:
        task: ``"regression"`` or ``"classification"``.
        feature_names: the D feature names.
        output_names: the K target names (regression) or the C class names (classification).

    """

    task: str

    @property
    def feature_names(self) -> list[str]:
        """The D feature names."""
        ...

    @property
    def output_names(self) -> list[str]:
        """K target names (regression) or C class names (classification)."""
        ...

    def scaling_statistics(self) -> ScalingStatistics:
        """Return the standardization fitted on the training rows."""
        ...

    @property
    def weighted(self) -> bool:
        """Whether the rows carry sample weights: batches are then ``(features, targets, weights)``."""
        ...

    def class_counts(self) -> np.ndarray:
        """Return how many training rows each of the C classes has, (C,) int64 (classification only)."""
        ...

    def rows_in_memory(self, split: str) -> tuple[Tensor, Tensor] | None:
        """Raw features (n, D) and targets (n, K) or labels (n,) of a split, or ``None`` when they stay on disk."""
        ...

    def least_squares_state(self, distributed: bool = False) -> LeastSquaresState | None:
        """Return the float64 least-squares state of the training rows, streamed once (a collective if distributed)."""
        ...

    def share_least_squares_state(self, state: LeastSquaresState) -> None:
        """Keep the state of the raw training rows a pass solver streamed, so the rows are not read again."""
        ...

    def least_squares(self, fit_intercept: bool) -> LeastSquaresSolution | None:
        """Return the float64 least-squares fit of the training rows (solved once), ``None`` for class labels."""
        ...

    def chunks(self, split: str, rank: int = 0, world_size: int = 1) -> Iterator[Chunk]:
        """Stream a split (one rank's covering shard of it): raw features (n, D), targets and weights, chunked."""
        ...

    def stream_training_rows(self, streaming: bool) -> None:
        """Serve training rows as one covering pass in chunks (``True``, for streaming solvers) or as batches."""
        ...


@runtime_checkable
class PredictionData(Protocol):
    """What the prediction writer reads from a DataModule besides the predictions: the rows' own columns.

    Attributes:
        target_columns: the target columns' names in the source: the K target names (regression) or the name of
            the one label column (classification).

    """

    @property
    def target_columns(self) -> list[str]:
        """The K target names, or the label column's name."""
        ...

    def predict_targets(self) -> Tensor | None:
        """Actual targets (M, K) or labels (M,) of the rows predicted on, in their order; ``None`` if unknown."""
        ...

    @property
    def table_encoding(self) -> dict[str, Any] | None:
        """The table encoding fitted on the training rows, as plain values; ``None`` when the features are numbers."""
        ...

    def predict_columns(self, names: list[str]) -> dict[str, list[str]]:
        """Return the named columns of the rows predicted on, as the source holds them (text), one cell per row.

        Raises:
            InputError: a name that is not a column, or data that has no such columns (generated data).

        """
        ...
