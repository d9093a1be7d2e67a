"""A batch loader over tensors already in memory: no per-sample ``__getitem__``, no collate.

torch's default ``DataLoader`` over a ``TensorDataset`` indexes one row at a time and stacks the rows back into a
batch; for linear models that bookkeeping costs far more than the maths. This loader draws one permutation per
epoch and gathers each batch with a single ``index_select`` (or takes a zero-copy slice when not shuffling).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["InMemoryBatchLoader"]


class InMemoryBatchLoader:
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
        batch_size: rows per batch, >= 1.
        shuffle: draw a new permutation each epoch; otherwise rows come in order as contiguous views.
        seed: base seed of the permutation; epoch ``e`` uses ``seed + e``.
        drop_last: drop the last incomplete batch.
        rank: this process's rank.
        world_size: number of processes sharing the data.
        equal_shards: give every rank the same number of rows (training) rather than covering all rows.

    """

    def __init__(
        self,
        *tensors: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        equal_shards: bool = True,
    ) -> None:
        if not tensors:
            raise ValueError("InMemoryBatchLoader needs at least one tensor")
        n_rows = tensors[0].shape[0]
        if any(t.shape[0] != n_rows for t in tensors):
            raise ValueError(f"all tensors must have the same number of rows, got {[t.shape[0] for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.equal_shards = equal_shards
        self.epoch = 0

    #: Lightning inspects ``loader.batch_sampler`` like a DataLoader's; batches are formed here, not by a sampler.
    batch_sampler = None

    @property
    def sampler(self) -> InMemoryBatchLoader:
        """Lightning looks for ``loader.sampler.set_epoch``; the loader is its own sampler."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` for the next iteration."""
        self.epoch = epoch

    @property
    def shard(self) -> tuple[int, int]:
        """``(offset, rows)``: where this rank's block starts in the epoch's order and how many rows it has."""
        n_rows = self.tensors[0].shape[0]
        base, extra = divmod(n_rows, self.world_size)
        if self.equal_shards:
            return self.rank * base, base
        return self.rank * base + min(self.rank, extra), base + (self.rank < extra)

    @property
    def rows_per_rank(self) -> int:
        """Rows this rank sees per epoch."""
        return self.shard[1]

    def __len__(self) -> int:
        rows = self.rows_per_rank
        return rows // self.batch_size if self.drop_last else -(-rows // self.batch_size)

    def _permutation(self) -> Tensor | None:
        """Return this rank's rows of this epoch's permutation, or None when not shuffling."""
        if not self.shuffle:
            return None
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.tensors[0].shape[0], generator=generator)
        # Every rank draws the same permutation and keeps its own block, so the shards are disjoint.
        start, rows = self.shard
        return order[start : start + rows]

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        order = self._permutation()
        offset, rows = self.shard  # unshuffled ranks read contiguous blocks
        stop = rows - rows % self.batch_size if self.drop_last else rows
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, rows)
            if order is None:
                yield tuple(t[offset + start : offset + end] for t in self.tensors)
            else:
                index = order[start:end]
                yield tuple(t.index_select(0, index) for t in self.tensors)
