"""Rows of arrays on disk or in memory: contiguous row blocks, reads that cast as they copy, pages released.

The vocabulary every store and loader shares (:mod:`lr_lightning.data.stores`, :mod:`lr_lightning.data.loader`):
a :class:`RowBlocks` order names rows without an index per row, :func:`read_rows` and :func:`take_rows` copy them
into the training dtype without temporaries, and :class:`PageReleaser` keeps a memory map from filling the
resident set.
"""

from __future__ import annotations

import mmap

import numpy as np

__all__ = ["BLOCK_ROWS", "CHUNK_ROWS", "PageReleaser", "RowBlocks", "read_rows", "take_rows"]

#: Rows permuted, cast or summed at a time: keeps temporaries at a few tens of MB for a 1,000,000-row table.
CHUNK_ROWS = 65536

#: Rows per block when data stays on disk: the unit of the seeded split and of the per-epoch shuffle.
BLOCK_ROWS = 256


class RowBlocks:
    """An order of an array's rows given as contiguous blocks ``[starts[i], stops[i])``, read one after another.

    This is how rows on disk are split and shuffled without an index per row: permuting blocks of a few hundred
    rows costs one entry per block, and each block is one sequential read. Position ``p`` of the order ("virtual
    row" ``p``) is row ``starts[i] + (p - offset_i)`` of the array, where block ``i`` holds positions
    ``offset_i .. offset_i + length_i - 1``.

    Args:
        starts: first row of each block, shape (S,).
        stops: one past the last row of each block, shape (S,); every block is non-empty.

    """

    def __init__(self, starts: np.ndarray, stops: np.ndarray) -> None:
        self.starts = np.asarray(starts, dtype=np.int64)
        self.stops = np.asarray(stops, dtype=np.int64)
        self._ends = np.cumsum(self.stops - self.starts)  # (S,) position one past each block in this order

    @classmethod
    def cut(cls, start: int, stop: int, block_rows: int) -> RowBlocks:
        """Rows ``start .. stop - 1`` in order, in blocks of ``block_rows`` (the last one shorter)."""
        starts = np.arange(start, stop, block_rows, dtype=np.int64)
        return cls(starts, np.minimum(starts + block_rows, stop))

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def num_blocks(self) -> int:
        """S, the number of blocks."""
        return len(self.starts)

    def take(self, order: np.ndarray) -> RowBlocks:
        """Reorder the blocks: ``order`` holds block indices, e.g. a permutation."""
        return RowBlocks(self.starts[order], self.stops[order])

    def sorted(self) -> RowBlocks:
        """Put the blocks in array order (sequential reads), keeping the same rows."""
        return self.take(np.argsort(self.starts, kind="stable"))

    def positions(self, first: int, last: int) -> RowBlocks:
        """Positions ``first .. last - 1`` of this order (``last`` clipped to the end), the end blocks cut to fit."""
        last = min(last, len(self))
        if last <= first:
            return RowBlocks(np.empty(0, np.int64), np.empty(0, np.int64))
        begins = self._ends - (self.stops - self.starts)
        i = int(np.searchsorted(self._ends, first, side="right"))  # block holding position `first`
        j = int(np.searchsorted(self._ends, last, side="left"))  # block holding position `last - 1`
        starts, stops = self.starts[i : j + 1].copy(), self.stops[i : j + 1].copy()
        starts[0] += first - begins[i]
        stops[-1] = self.starts[j] + (last - begins[j])
        return RowBlocks(starts, stops)

    def indices(self) -> np.ndarray:
        """Every row of the order as one index array, shape (len(self),); for tests and small data."""
        if not self.num_blocks:
            return np.empty(0, np.int64)
        return np.concatenate([np.arange(a, b) for a, b in zip(self.starts, self.stops, strict=True)])


class PageReleaser:
    """Unmap the pages of a read-only ``np.memmap`` after rows were read, so that they stop counting as RSS.

    Pages of a memory-mapped file that a process has touched stay in its page tables, and in its resident set
    size, until the kernel needs the memory back: one epoch over a 4 GB file would show 4 GB of RSS although none
    of it is the process's own memory. ``madvise(MADV_DONTNEED)`` over the whole mapping drops them; for a
    read-only shared file mapping that loses nothing (the kernel's page cache may keep the data, and the next read
    faults it back in). The whole mapping rather than the rows just read: the kernel maps neighbouring cached
    pages on each fault ("fault-around", 64 KB), which belong to other blocks; and on a mapping with few pages
    present the call costs microseconds. A no-op for in-memory arrays, copy-on-write memmaps (``mode="c"``, where
    it would discard writes) and platforms without ``mmap.madvise``.

    Args:
        array: the array whose rows are read, a memmap or a view of one (e.g. a column subset); any other array
            makes this a no-op.

    """

    def __init__(self, array: np.ndarray) -> None:
        mapping = getattr(array, "_mmap", None)  # np.memmap keeps its mmap.mmap here, views share it
        usable = mapping is not None and getattr(array, "mode", None) == "r" and hasattr(mapping, "madvise")
        self._mapping: mmap.mmap | None = mapping if usable else None

    def __call__(self) -> None:
        """Drop every page of the mapping from this process (they are read again from the file when needed)."""
        if self._mapping is not None and not self._mapping.closed:
            self._mapping.madvise(mmap.MADV_DONTNEED)


def read_rows(
    array: np.ndarray, blocks: RowBlocks, dtype: np.dtype | type, release: PageReleaser | None = None
) -> np.ndarray:
    """Rows of ``array`` in the order of ``blocks``, copied into one new C-contiguous array of ``dtype``.

    Args:
        array: source of shape (N, ...), typically a memmap.
        blocks: which rows, in which order.
        dtype: dtype of the result (the cast happens during the copy, with no temporary).
        release: called once the rows are copied (see :class:`PageReleaser`).

    Returns:
        Array of shape (len(blocks), ...).

    """
    output = np.empty((len(blocks), *array.shape[1:]), dtype=dtype)
    position = 0
    for start, stop in zip(blocks.starts.tolist(), blocks.stops.tolist(), strict=True):
        output[position : position + stop - start] = array[start:stop]
        position += stop - start
    if release is not None:
        release()
    return output


def take_rows(array: np.ndarray, order: np.ndarray | None, dtype: np.dtype | type) -> np.ndarray:
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
