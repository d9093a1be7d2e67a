"""scikit-learn estimators on the package's LightningModules: ``Pipeline``, ``GridSearchCV``, ``cross_val_score``."""

from lr_lightning.estimators.classification import LightningLogisticRegression
from lr_lightning.estimators.regression import LightningLinearRegression

__all__ = ["LightningLinearRegression", "LightningLogisticRegression"]
