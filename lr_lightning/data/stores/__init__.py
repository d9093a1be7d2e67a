"""Stores: where a DataModule's rows live (see :mod:`lr_lightning.data.stores.base`)."""

from __future__ import annotations

import numpy as np

from lr_lightning.data.contract import ArrayData
from lr_lightning.data.stores.base import LoaderOptions, RowSplit, RowStore, SplitOptions
from lr_lightning.data.stores.memmap import BlockSplit, MemmapStore
from lr_lightning.data.stores.memory import MemoryStore, OrderedSplit

__all__ = [
    "BlockSplit",
    "LoaderOptions",
    "MemmapStore",
    "MemoryStore",
    "OrderedSplit",
    "RowSplit",
    "RowStore",
    "SplitOptions",
    "store_for",
]


def store_for(data: ArrayData, in_memory: bool | None) -> type[RowStore]:
    """Choose the store for ``data``: memmapped features stay on disk unless ``in_memory`` says otherwise.

    ``in_memory``: ``None`` chooses by the features' type, ``True`` always holds the rows in memory, ``False``
    always reads them batch by batch from the source arrays.
    """
    on_disk = isinstance(data.features, np.memmap) if in_memory is None else not in_memory
    return MemmapStore if on_disk else MemoryStore
