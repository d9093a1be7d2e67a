"""Rows that stay in a memory-mapped file: split and shuffled by blocks, read batch by batch, pages released.

Nothing of size N x D is ever allocated:

* the rows are cut into blocks of ``block_rows`` and the seeded permutation assigns blocks (not rows) to the
  splits; the fractions are exact, the two blocks at a split boundary being cut. Each split reads its blocks in
  file order;
* batches are read block by block (:class:`~lr_lightning.data.loader.DiskBatchLoader`), each epoch shuffling the
  *blocks* with ``seed + epoch``; a truly random row order on a memmap would be one random read per row;
* the pages read are unmapped again (``madvise``), so resident memory stays at a few batches;
* targets are read alongside, from memory or from their own memmap.

:meth:`MemmapStore.read` and :meth:`MemmapStore.predict_features` read a split's rows into memory: fine for the
validation split of a moderately large file, not for the training split of one larger than RAM.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
from torch import Tensor

from lr_lightning.data.checks import split_sizes
from lr_lightning.data.contract import ArrayData
from lr_lightning.data.loader import DiskBatchLoader
from lr_lightning.data.rows import PageReleaser, RowBlocks, read_rows
from lr_lightning.data.stores.base import LoaderOptions, RowSplit, RowStore, SplitOptions, target_matrix
from lr_lightning.errors import InputError

__all__ = ["BlockSplit", "MemmapStore"]


class BlockSplit(RowSplit):
    """Each split as row blocks of the source, in file order (see the module docstring)."""

    def __init__(self, blocks: dict[str, RowBlocks]) -> None:
        self.blocks = blocks

    def size(self, split: str) -> int:
        """Rows in ``split``."""
        return len(self.blocks[split])

    def source_rows(self, split: str) -> np.ndarray:
        """Return the source index of each row of ``split``."""
        return self.blocks[split].indices()

    def gather(self, array: np.ndarray, split: str, dtype: np.dtype | type) -> np.ndarray:
        """Read the rows of ``split`` of ``array`` block by block, cast while copying, and release the pages."""
        return read_rows(array, self.blocks[split], dtype, PageReleaser(array))


class MemmapStore(RowStore):
    """Features (and targets) as the source gave them, a memmap or a view of one, read when needed."""

    in_memory = False

    def __init__(
        self,
        split: BlockSplit,
        dtype: torch.dtype,
        task: str,
        features: np.ndarray,
        targets: np.ndarray,
        predict: np.ndarray | None,
        actual: np.ndarray | None,
        weights: np.ndarray | None = None,
    ) -> None:
        super().__init__(split, dtype, task)
        self.features = features  # (N, D), on disk
        self.targets = targets  # (N, K) float or (N,) int labels, as the source gave them
        self.weights = weights  # (N,) float64 sample weights, or None: every row weighs 1
        self._predict = predict  # (M, D) from a predict file, else None
        self._actual = actual  # targets of the rows predicted on, if known (the predict file's, or ``targets``)
        self._blocks = split

    @classmethod
    def plan(cls, data: ArrayData, options: SplitOptions) -> BlockSplit:
        """Split by the in-memory split's rule at block granularity: a seeded order of blocks, cut by the sizes."""
        if options.num_folds is not None:
            raise InputError("num_folds: folds are dealt row by row in memory; set in_memory: true (data on disk)")
        n_rows = data.features.shape[0]
        everything = RowBlocks.cut(0, n_rows, options.block_rows)
        if data.split_sizes is not None:
            n_train, n_val, n_test = data.split_sizes
            train = RowBlocks.cut(0, n_train, options.block_rows)
            val = everything.positions(n_train, n_train + n_val) if n_val else train
            test = everything.positions(n_train + n_val, n_train + n_val + n_test) if n_test else train
            return BlockSplit({"train": train, "val": val, "test": test})
        n_train, n_val, n_test = split_sizes(n_rows, options.val_fraction, options.test_fraction)
        if not n_val + n_test:
            return BlockSplit({"train": everything, "val": everything, "test": everything})
        order = everything.take(np.random.default_rng(options.seed).permutation(everything.num_blocks))
        return BlockSplit(
            {
                "train": order.positions(0, n_train).sorted(),
                "val": order.positions(n_train, n_train + n_val).sorted() if n_val else everything,
                "test": order.positions(n_train + n_val, n_rows).sorted() if n_test else everything,
            }
        )

    @classmethod
    def build(cls, data: ArrayData, split: RowSplit, dtype: torch.dtype, task: str) -> MemmapStore:
        """Keep references to the source arrays; nothing is read."""
        assert isinstance(split, BlockSplit)
        targets = target_matrix(data.targets, task)
        actual = data.predict_targets if data.predict_features is not None else None if data.unlabelled else targets
        actual = target_matrix(actual, task) if actual is not None else None
        return cls(split, dtype, task, data.features, targets, data.predict_features, actual, data.weights)

    def _predict_source(self) -> np.ndarray:
        return self._predict if self._predict is not None else self.features

    def read(self, split: str) -> tuple[Tensor, Tensor]:
        """Read the rows of ``split`` from disk into new tensors (in file order within each block)."""
        feature_dtype, target_dtype = self.numpy_dtypes
        features = self._blocks.gather(self.features, split, feature_dtype)
        return torch.from_numpy(features), torch.from_numpy(self._blocks.gather(self.targets, split, target_dtype))

    def read_weights(self, split: str) -> Tensor | None:
        """Return the weights of ``split`` in the order of :meth:`read` (``None`` when the rows have none)."""
        if self.weights is None:
            return None
        return torch.from_numpy(self._blocks.gather(self.weights, split, self.numpy_dtypes[0]))

    def _chunk(self, split: str, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        rows = self._blocks.blocks[split].positions(first, last)
        features = read_rows(self.features, rows, np.float64, PageReleaser(self.features))
        targets = read_rows(self.targets, rows, self.targets.dtype, PageReleaser(self.targets))
        return features, targets, None if self.weights is None else read_rows(self.weights, rows, np.float64)

    def predict_features(self) -> Tensor:
        """Every row of the predict file (or of the source), read into memory in file order."""
        source = self._predict_source()
        everything = RowBlocks.cut(0, len(source), len(source))
        return torch.from_numpy(read_rows(source, everything, self.numpy_dtypes[0], PageReleaser(source)))

    def predict_targets(self) -> Tensor | None:
        """Return the targets of the rows predicted on, read into memory in file order (``None`` when unknown)."""
        if self._actual is None:
            return None
        everything = RowBlocks.cut(0, len(self._actual), len(self._actual))
        dtype = self.numpy_dtypes[1]
        return torch.from_numpy(read_rows(self._actual, everything, dtype, PageReleaser(self._actual)))

    def loader(self, split: str, options: LoaderOptions) -> DiskBatchLoader:
        """Batches read block by block from the memmap."""
        feature_dtype, target_dtype = self.numpy_dtypes
        arrays: tuple[np.ndarray, ...]
        dtypes: tuple[type, ...]
        if split == "predict":
            source = self._predict_source()
            arrays, dtypes, blocks = (source,), (feature_dtype,), RowBlocks.cut(0, len(source), len(source))
        else:
            arrays, dtypes, blocks = (
                (self.features, self.targets),
                (feature_dtype, target_dtype),
                self._blocks.blocks[split],
            )
            if self.weights is not None:
                arrays, dtypes = (*arrays, self.weights), (*dtypes, feature_dtype)
        return DiskBatchLoader(
            arrays,
            dtypes,
            blocks,
            **asdict(options),
        )
