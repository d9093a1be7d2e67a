"""Batch loaders without per-sample ``__getitem__`` or collate: over tensors in memory, or arrays on disk.

torch's default ``DataLoader`` over a ``TensorDataset`` indexes one row at a time and stacks the rows back into a
batch; for linear models that bookkeeping costs far more than the maths. :class:`InMemoryBatchLoader` draws one
permutation per epoch and gathers each batch with a single ``index_select`` (or takes a zero-copy slice when not
shuffling). :class:`DiskBatchLoader` reads each batch from a memory-mapped array (``np.memmap``) as a few
contiguous row blocks, so data larger than memory trains without being loaded whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lr_lightning.data.rows import PageReleaser, RowBlocks, read_rows

__all__ = ["DiskBatchLoader", "EpochSeededLoader", "InMemoryBatchLoader", "shard_bounds"]


def shard_bounds(n_rows: int, rank: int, world_size: int, equal_shards: bool) -> tuple[int, int]:
    """``(offset, rows)`` of rank ``rank``'s contiguous block of ``n_rows`` rows shared by ``world_size`` ranks.

    ``equal_shards=True`` (training): every rank gets ``n_rows // world_size`` rows, the last ``n_rows %
    world_size`` rows are left out. ``False`` (evaluation, prediction): the blocks cover every row, the first
    ``n_rows % world_size`` ranks taking one row more.
    """
    base, extra = divmod(n_rows, world_size)
    if equal_shards:
        return rank * base, base
    return rank * base + min(rank, extra), base + (rank < extra)


class EpochSeededLoader:
    """What both loaders share: batching options, the DDP shard, the epoch's seed, and Lightning's protocol.

    Lightning calls ``loader.sampler.set_epoch(epoch)`` before each epoch (the loader is its own sampler) and
    inspects ``loader.batch_sampler`` as it would a DataLoader's. A subclass says how many rows it serves
    (:attr:`num_rows`) and how it orders and reads them.

    Args:
        batch_size: rows per batch, >= 1.
        shuffle: a new order each epoch; otherwise rows come in their given order.
        seed: base seed of the order; epoch ``e`` uses ``seed + e``.
        drop_last: drop the last incomplete batch.
        rank: this process's rank.
        world_size: number of processes sharing the data.
        equal_shards: give every rank the same number of rows (training) rather than covering all rows.

    """

    #: Batches are formed by the loader, not by a sampler.
    batch_sampler = None

    def __init__(
        self,
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        equal_shards: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.equal_shards = equal_shards
        self.epoch = 0

    @property
    def num_rows(self) -> int:
        """Rows served per epoch over all ranks."""
        raise NotImplementedError

    @property
    def sampler(self) -> EpochSeededLoader:
        """The loader itself, for Lightning's ``loader.sampler.set_epoch``."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` for the next iteration."""
        self.epoch = epoch

    def epoch_generator(self) -> torch.Generator:
        """Return the generator of this epoch's permutation, seeded with ``seed + epoch`` (the same on every rank)."""
        return torch.Generator().manual_seed(self.seed + self.epoch)

    @property
    def shard(self) -> tuple[int, int]:
        """``(offset, rows)``: where this rank's rows start in the epoch's order and how many there are."""
        return shard_bounds(self.num_rows, self.rank, self.world_size, self.equal_shards)

    @property
    def rows_per_rank(self) -> int:
        """Rows this rank sees per epoch."""
        return self.shard[1]

    def __len__(self) -> int:
        rows = self.rows_per_rank
        return rows // self.batch_size if self.drop_last else -(-rows // self.batch_size)

    def batch_bounds(self, rows: int) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of each batch over ``rows`` rows, without the last incomplete one under drop_last."""
        stop = rows - rows % self.batch_size if self.drop_last else rows
        for start in range(0, stop, self.batch_size):
            yield start, min(start + self.batch_size, rows)


class InMemoryBatchLoader(EpochSeededLoader):
    """Iterate over aligned tensors in batches of rows.

    The order is a pure function of ``(seed, epoch)``: a run resumed at epoch ``e`` sees exactly the batches an
    uninterrupted run would. Lightning calls :meth:`set_epoch` through ``loader.sampler`` at the start of each
    epoch, as it does for a ``DistributedSampler``.

    Under DDP each rank takes a disjoint shard of the epoch's permutation. For training (``equal_shards=True``)
    every rank gets the same number of rows (the last ``N % world_size`` rows of the permutation are skipped that
    epoch), so all ranks run the same number of optimizer steps and no gradient all-reduce waits forever. For
    evaluation and prediction (``equal_shards=False``) the shards are contiguous blocks that cover every row, the
    first ``N % world_size`` ranks taking one row more, so no row goes unscored or unpredicted.

    Args:
        tensors: tensors with the same first dimension N, e.g. features (N, D) and targets (N, K).
        options: ``batch_size`` (required), ``shuffle`` (a new permutation each epoch; otherwise contiguous views in
            order), ``seed``, ``drop_last``, ``rank``, ``world_size``, ``equal_shards``: see
            :class:`EpochSeededLoader`.

    """

    def __init__(self, *tensors: Tensor, **options: Any) -> None:
        if not tensors:
            raise ValueError("InMemoryBatchLoader needs at least one tensor")
        n_rows = tensors[0].shape[0]
        if any(t.shape[0] != n_rows for t in tensors):
            raise ValueError(f"all tensors must have the same number of rows, got {[t.shape[0] for t in tensors]}")
        super().__init__(**options)
        self.tensors = tensors

    @property
    def num_rows(self) -> int:
        """N, the rows of the tensors."""
        return self.tensors[0].shape[0]

    def _permutation(self) -> Tensor | None:
        """Return this rank's rows of this epoch's permutation, or None when not shuffling."""
        if not self.shuffle:
            return None
        order = torch.randperm(self.num_rows, generator=self.epoch_generator())
        # Every rank draws the same permutation and keeps its own block, so the shards are disjoint.
        start, rows = self.shard
        return order[start : start + rows]

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        order = self._permutation()
        offset, rows = self.shard  # unshuffled ranks read contiguous blocks
        for start, end in self.batch_bounds(rows):
            if order is None:
                yield tuple(t[offset + start : offset + end] for t in self.tensors)
            else:
                index = order[start:end]
                yield tuple(t.index_select(0, index) for t in self.tensors)


class DiskBatchLoader(EpochSeededLoader):
    """Iterate over aligned arrays on disk (or in memory) in batches read block by block.

    The counterpart of :class:`InMemoryBatchLoader` for ``np.memmap`` features: nothing is loaded up front; each
    batch is read from the arrays as a few contiguous row blocks, cast to ``dtypes`` and returned as tensors,
    and the pages it read are released again (:class:`PageReleaser`), so the resident memory stays at a few
    batches whatever the file size.

    Shuffling permutes the *blocks* of ``blocks`` with ``seed + epoch`` (torch's generator, as the in-memory
    loader), not single rows: a batch of B rows is ``B / block_rows`` randomly chosen blocks, each read in file
    order. A row-level shuffle of a memmap would be random I/O, one seek per row; blocks keep the reads
    sequential at the price of rows that travel together within their block every epoch. For the mean-squared
    loss a batch's gradient is a sum over its rows, so the order *within* a batch does not matter; what matters
    is that blocks are small next to the batch (and that a file sorted by some column is not read in one piece).

    Sharding under DDP follows :func:`shard_bounds` over the positions of the epoch's block order, so each rank
    reads only its own blocks (the two blocks at a shard boundary are cut between ranks).

    Args:
        arrays: arrays with the same first dimension N, e.g. features (N, D) as a memmap and targets (N, K).
        dtypes: the dtype of each array's batches (``np.float32``, ``np.int64``, ...).
        blocks: the rows to serve and their unshuffled order.
        batch_size: rows per batch, >= 1.
        options: ``shuffle`` (permute the blocks each epoch; otherwise rows come in the order of ``blocks``),
            ``seed``, ``drop_last``, ``rank``, ``world_size``, ``equal_shards``: see :class:`EpochSeededLoader`.

    """

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        dtypes: Sequence[np.dtype | type],
        blocks: RowBlocks,
        batch_size: int,
        **options: Any,
    ) -> None:
        if not arrays or len(arrays) != len(dtypes):
            raise ValueError(f"DiskBatchLoader needs one dtype per array, got {len(arrays)} arrays, {len(dtypes)}")
        if any(a.shape[0] != arrays[0].shape[0] for a in arrays):
            raise ValueError(f"all arrays must have the same number of rows, got {[a.shape[0] for a in arrays]}")
        super().__init__(batch_size=batch_size, **options)
        self.arrays = tuple(arrays)
        self.dtypes = tuple(dtypes)
        self.blocks = blocks
        self._releasers = [PageReleaser(a) for a in self.arrays]

    @property
    def num_rows(self) -> int:
        """The rows of ``blocks`` (all of them, or one split's)."""
        return len(self.blocks)

    def epoch_blocks(self) -> RowBlocks:
        """Return the rows this rank reads this epoch, in reading order."""
        order = self.blocks
        if self.shuffle:
            order = order.take(torch.randperm(order.num_blocks, generator=self.epoch_generator()).numpy())
        # Every rank draws the same permutation and keeps its own stretch of it, so the shards are disjoint.
        offset, rows = self.shard
        return order.positions(offset, offset + rows)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        mine = self.epoch_blocks()
        for start, end in self.batch_bounds(len(mine)):
            batch = mine.positions(start, end)
            yield tuple(
                torch.from_numpy(read_rows(array, batch, dtype, release))
                for array, dtype, release in zip(self.arrays, self.dtypes, self._releasers, strict=True)
            )
