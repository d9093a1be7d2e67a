"""LightningDataModules: each one file, all on the shared :class:`InMemoryDataModule` base."""

from lr_lightning.data.base import ArrayData, InMemoryDataModule, ScalingStatistics
from lr_lightning.data.loader import InMemoryBatchLoader
from lr_lightning.data.sourdough import SourdoughDataModule

__all__ = [
    "ArrayData",
    "InMemoryBatchLoader",
    "InMemoryDataModule",
    "ScalingStatistics",
    "SourdoughDataModule",
]
