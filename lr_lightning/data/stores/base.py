"""Where a DataModule's rows live: one interface, one implementation per kind of storage.

A store is chosen once, when the data is loaded (:func:`lr_lightning.data.stores.store_for`), and built in
``setup`` for the training dtype. Everything a DataModule, a statistic or a loader needs goes through it:

* :class:`RowSplit`: which source rows each split holds, known as soon as the row count is (no data copied);
* :meth:`RowStore.read`: the rows of a split as tensors in memory;
* :meth:`RowStore.chunks`: a streaming pass over a split (or one rank's shard of it) in float64 chunks, the
  pass that moments, exact solvers and weighted statistics share;
* :meth:`RowStore.loader`: the batches Lightning iterates.

A new kind of storage (tensors resident on a GPU, Parquet row groups) is one new file with a :class:`RowSplit`
and a :class:`RowStore`, and one line in :func:`~lr_lightning.data.stores.store_for`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lr_lightning.data.contract import ArrayData, Chunk
from lr_lightning.data.loader import EpochSeededLoader, shard_bounds
from lr_lightning.data.rows import CHUNK_ROWS

__all__ = ["LoaderOptions", "RowSplit", "RowStore", "SplitOptions", "target_matrix"]


def target_matrix(targets: np.ndarray, task: str) -> np.ndarray:
    """Return regression targets as (N, K) (a 1-D array becomes one column); class labels stay (N,)."""
    return targets if targets.ndim == 2 or task == "classification" else targets[:, None]


@dataclass(frozen=True)
class SplitOptions:
    """How rows are split: the held-out fractions, the seed, the block size of stores on disk, and k-fold.

    With ``num_folds`` K, the validation rows are fold ``fold`` of the rows not held out for testing (and
    ``val_fraction`` is not used); see :func:`~lr_lightning.data.stores.memory.ordered_split`.
    """

    val_fraction: float
    test_fraction: float
    seed: int
    block_rows: int
    num_folds: int | None = None
    fold: int = 0


@dataclass(frozen=True)
class LoaderOptions:
    """Batching of one loader: rows per batch, the epoch seed, and this process's shard under DDP.

    ``equal_shards``: every rank gets the same number of rows (training), else the shards cover every row.
    """

    batch_size: int
    shuffle: bool
    seed: int
    rank: int = 0
    world_size: int = 1
    equal_shards: bool = False


class RowSplit(ABC):
    """Which source rows the ``train``, ``val`` and ``test`` splits hold; a split of size 0 is never served."""

    @abstractmethod
    def size(self, split: str) -> int:
        """Rows in ``split``."""

    @abstractmethod
    def gather(self, array: np.ndarray, split: str, dtype: np.dtype | type) -> np.ndarray:
        """Copy the rows of ``split`` of a source array (N, ...) into a new array of ``dtype``, in split order."""

    @abstractmethod
    def source_rows(self, split: str) -> np.ndarray:
        """Return the source index of each row of ``split``, shape (size,), in the order the split serves them."""


class RowStore(ABC):
    """The rows of one dataset in the training dtype, split once; see the module docstring.

    Attributes:
        split: which rows each split holds.
        dtype: the float dtype batches come in (float32, or float64 under ``precision="64-true"``).
        task: ``"regression"`` (targets (N, K) in ``dtype``) or ``"classification"`` (labels (N,) int64).

    """

    #: Whether :meth:`read` is a view of rows already in memory (``False``: it reads them from disk).
    in_memory: bool

    #: Features (N, D) and targets (N, K) or labels (N,): tensors, or arrays on disk.
    features: Any
    targets: Any
    #: Sample weights (N,), a tensor or an array; ``None`` when every row weighs 1.
    weights: Any = None

    @property
    def weighted(self) -> bool:
        """Whether the rows carry sample weights (batches are then ``(features, targets, weights)``)."""
        return self.weights is not None

    def __init__(self, split: RowSplit, dtype: torch.dtype, task: str) -> None:
        self.split = split
        self.dtype = dtype
        self.task = task

    @classmethod
    @abstractmethod
    def plan(cls, data: ArrayData, options: SplitOptions) -> RowSplit:
        """Split the rows of ``data`` (by ``data.split_sizes`` when given, else by the fractions and the seed).

        Raises:
            InputError: the fractions leave a split without rows.

        """

    @classmethod
    @abstractmethod
    def build(cls, data: ArrayData, split: RowSplit, dtype: torch.dtype, task: str) -> RowStore:
        """Hold the rows of ``data`` for training in ``dtype``; ``data`` may be released afterwards."""

    @property
    def widths(self) -> tuple[int, int]:
        """``(D, K)``: the features per row and the targets per row (1 for class labels)."""
        features, targets = self.features, self.targets
        return int(features.shape[1]), int(targets.shape[1]) if targets.ndim == 2 else 1

    @property
    def numpy_dtypes(self) -> tuple[type, type]:
        """The NumPy dtypes of feature and target batches."""
        features = np.float64 if self.dtype == torch.float64 else np.float32
        return features, (np.int64 if self.task == "classification" else features)

    @abstractmethod
    def read(self, split: str) -> tuple[Tensor, Tensor]:
        """Raw features (n, D) and targets (n, K) or labels (n,) of ``split``, as tensors in memory."""

    @abstractmethod
    def read_weights(self, split: str) -> Tensor | None:
        """Sample weights (n,) of ``split`` in the order of :meth:`read`, in the training dtype; ``None`` if none."""

    @abstractmethod
    def predict_features(self) -> Tensor:
        """Features (M, D) to predict on, in the user's row order (the predict file's, or the source's)."""

    @abstractmethod
    def predict_targets(self) -> Tensor | None:
        """Actual targets (M, K) or labels (M,) of :meth:`predict_features`' rows, ``None`` when there are none."""

    @abstractmethod
    def _chunk(self, split: str, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Positions ``first .. last - 1`` of ``split``: features (n, D), targets (n, K) or (n,), weights or None."""

    def chunks(self, split: str, chunk_rows: int = CHUNK_ROWS, rank: int = 0, world_size: int = 1) -> Iterator[Chunk]:
        """Stream ``split``: features and targets, ``chunk_rows`` rows at a time, in float64.

        Under DDP (``world_size`` > 1) the pass covers only rank ``rank``'s contiguous shard of the split (the
        shards cover every row), so the ranks' results merged in rank order are the whole split's. Memory use is
        one chunk, whatever the split's size.

        Yields:
            Features (n, D) float64, targets (n, K) float64 (regression) or labels (n,) int64, and the rows'
            weights (n,) float64, or ``None`` when the data has none.

        """
        offset, rows = shard_bounds(self.split.size(split), rank, world_size, equal_shards=False)
        for first in range(offset, offset + rows, chunk_rows):
            features, targets, weights = self._chunk(split, first, min(first + chunk_rows, offset + rows))
            yield (
                features.astype(np.float64, copy=False),
                targets.astype(np.int64 if self.task == "classification" else np.float64, copy=False),
                None if weights is None else weights.astype(np.float64, copy=False),
            )

    @abstractmethod
    def loader(self, split: str, options: LoaderOptions) -> EpochSeededLoader:
        """Batches of ``split`` (``predict``: features only) for Lightning."""
