"""Predictions on arrays, in scikit-learn's vocabulary: ``predict``, ``predict_proba`` and ``score``.

For use from Python after ``load_from_checkpoint`` (or a fit): features as numpy, pandas or torch, of any
numeric dtype, in raw units; results as numpy arrays in the targets' units or as class names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lr_lightning.errors import InputError

__all__ = ["ArrayPredictions"]


class ArrayPredictions:
    """``predict``/``predict_proba``/``score`` on arrays for a model mapping features (N, D) to outputs.

    A model provides ``feature_names``, ``__call__`` (raw features (N, D) -> predictions (N, K) in the targets'
    units, or class probabilities (N, C)) and its parameters; a classifier overrides ``predict`` and ``score``.
    """

    feature_names: list[str]

    def _feature_tensor(self, features: Any) -> Tensor:
        """Features (N, D) of any numeric array type as a tensor of the model's dtype, on its device."""
        if isinstance(features, Tensor):
            features = features.detach().cpu().numpy()
        values = np.asarray(features)  # a pandas DataFrame gives its values
        if values.ndim == 1:
            values = values[None, :] if len(self.feature_names) > 1 else values[:, None]
        if values.ndim != 2 or values.shape[1] != len(self.feature_names):
            raise InputError(
                f"the features have shape {values.shape} but the model takes {len(self.feature_names)} columns "
                f"({', '.join(self.feature_names)})"
            )
        if not np.issubdtype(values.dtype, np.number) and values.dtype != np.bool_:
            raise InputError(f"the features must be numbers, got an array of dtype {values.dtype}")
        weight = next(self.parameters())  # type: ignore[attr-defined]  # a LightningModule's parameters
        return torch.as_tensor(values.astype(np.float64), device=weight.device).to(weight.dtype)

    @torch.no_grad()
    def _outputs(self, features: Any) -> np.ndarray:
        return self(self._feature_tensor(features)).double().cpu().numpy()  # type: ignore[operator]

    def predict(self, features: Any) -> np.ndarray:
        """Predictions for features (N, D) in the targets' units: shape (N,) for one target, else (N, K)."""
        outputs = self._outputs(features)
        return outputs[:, 0] if outputs.shape[1] == 1 else outputs

    def score(self, features: Any, targets: Any) -> float:
        """R² of the predictions, averaged over targets (scikit-learn's ``r2_score``)."""
        from sklearn.metrics import r2_score

        return float(r2_score(np.asarray(targets, dtype=np.float64), self.predict(features)))
