"""LightningModules: one model per file on the shared :class:`LinearModelBase`."""

from lr_lightning.models.base import LinearModelBase
from lr_lightning.models.linear import LinearRegression
from lr_lightning.models.logistic import LogisticRegression
from lr_lightning.models.multi_output import MultiOutputRegression

__all__ = ["LinearModelBase", "LinearRegression", "LogisticRegression", "MultiOutputRegression"]
