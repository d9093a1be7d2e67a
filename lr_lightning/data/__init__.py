"""DataModules of lr_lightning: in-memory tables with seeded splits and scaling fitted on the training rows."""

from lr_lightning.data.arrays import ArraysDataModule
from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.contract import ArrayData, ScalingStatistics, TrainingData
from lr_lightning.data.data2d import Data2DDataModule
from lr_lightning.data.file import FileDataModule
from lr_lightning.data.line import LineDataModule
from lr_lightning.data.loader import InMemoryBatchLoader
from lr_lightning.data.sourdough import SourdoughDataModule
from lr_lightning.data.synthetic import SyntheticClassificationDataModule, SyntheticRegressionDataModule

__all__ = [
    "ArrayData",
    "ArraysDataModule",
    "Data2DDataModule",
    "FileDataModule",
    "InMemoryBatchLoader",
    "InMemoryDataModule",
    "LineDataModule",
    "ScalingStatistics",
    "SourdoughDataModule",
    "SyntheticClassificationDataModule",
    "SyntheticRegressionDataModule",
    "TrainingData",
]
