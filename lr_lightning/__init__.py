"""lr_lightning: linear, multi-output and logistic regression with PyTorch Lightning, run from the Lightning CLI."""

from lr_lightning.closed_form import least_squares, ridge
from lr_lightning.data import FileDataModule, InMemoryDataModule, SourdoughDataModule
from lr_lightning.models import LinearModelBase, LinearRegression, LogisticRegression, MultiOutputRegression

__all__ = [
    "FileDataModule",
    "InMemoryDataModule",
    "LinearModelBase",
    "LinearRegression",
    "LogisticRegression",
    "MultiOutputRegression",
    "SourdoughDataModule",
    "least_squares",
    "ridge",
]
__version__ = "0.1.0"
