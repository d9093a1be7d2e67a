r"""``LightningLinearRegression``: least squares and ridge as a scikit-learn regressor, fitted by Lightning."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import RegressorMixin

from lr_lightning.estimators.base import LightningEstimator
from lr_lightning.models import LinearRegression
from lr_lightning.models.solvers import GRADIENT

__all__ = ["LightningLinearRegression"]


class LightningLinearRegression(RegressorMixin, LightningEstimator):
    r"""Linear regression :math:`\hat{y} = X w + b` (one or K targets) as a scikit-learn regressor.

    ``fit`` trains :class:`~lr_lightning.models.LinearRegression` with a Lightning ``Trainer`` on the arrays
    (:mod:`lr_lightning.estimators.base`); the objective is its mean squared error plus the weight penalty,

    .. math::

        \frac{1}{\sum_i s_i} \sum_i s_i \lVert y_i - (W \tilde{x}_i + b) \rVert^2 / K
        + \frac{\lambda_2}{K} \lVert W \rVert_F^2 + \frac{\lambda_1}{K} \lVert W \rVert_1,

    with sample weights :math:`s_i` (1 without ``sample_weight``) and :math:`\tilde{x}` the standardized features
    (raw with ``standardize=False``). ``l2_strength=a`` is ``Ridge(alpha=N * a)`` on the standardized features,
    N the number of training rows or the sum of the sample weights (:mod:`lr_lightning.penalties`); the default
    (no penalty, exact solver) is ``LinearRegression()``.

    Args:
        l1_strength: :math:`\lambda_1 \ge 0`, the L1 (lasso) strength; needs ``solver="gradient"``.
        l2_strength: :math:`\lambda_2 \ge 0`, the L2 (ridge) strength.
        fit_intercept: learn the intercept b (never penalized).
        standardize: penalize the weights of the features scaled to unit variance over the training rows (the
            model keeps the scaling, so it always takes raw features); ``False``: of the raw features; ``None``
            (the default): ``fit_intercept``'s value (centring would move a fit without intercept off the origin,
            so ``True`` without one is refused).
        solver: ``"exact"`` (the default): least squares or ridge in closed form from one float64 pass over the
            rows, deterministic; ``"gradient"``: the optimizer's steps on shuffled batches, ``max_epochs`` times.
        optimizer: the gradient solver's ``"sgd"`` (L1 by proximal steps: exact zeros), ``"adam"`` or ``"lbfgs"``.
        lr: its learning rate; None: 0.1 for SGD, 0.01 for Adam, 1.0 for L-BFGS (with a strong-Wolfe line search).
        max_epochs: passes over the rows; None: 1 for the exact solver (one pass is the fit), 100 for gradient.
        batch_size: rows per gradient step; None: 64, or every row for L-BFGS.
        precision: ``"64-true"`` (float64, the default) or ``"32-true"``; predictions are float64 either way.
        accelerator: Lightning's ``accelerator`` (``"cpu"``, ``"gpu"``, ``"auto"``), on one device.
        random_state: seed of the shuffles of the gradient solver (an int, a ``RandomState``, None: 0).

    Attributes:
        coef_: weights in the features' units, shape (D,) for a 1-d ``y``, (K, D) for a 2-d one.
        intercept_: a float for a 1-d ``y``, shape (K,) otherwise (0.0 without ``fit_intercept``).
        n_features_in_: D.
        feature_names_in_: the column names of a pandas DataFrame ``X``, shape (D,).
        n_iter_: epochs run.
        module_: the fitted :class:`~lr_lightning.models.LinearRegression` (eval mode, no trainer attached).

    """

    def __init__(
        self,
        l1_strength: float = 0.0,
        l2_strength: float = 0.0,
        fit_intercept: bool = True,
        standardize: bool | None = None,
        solver: str = "exact",
        optimizer: str = "adam",
        lr: float | None = None,
        max_epochs: int | None = None,
        batch_size: int | None = None,
        precision: str = "64-true",
        accelerator: str = "cpu",
        random_state: Any = None,
    ) -> None:
        self.l1_strength = l1_strength
        self.l2_strength = l2_strength
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.solver = solver
        self.optimizer = optimizer
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.precision = precision
        self.accelerator = accelerator
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        """Return scikit-learn's tags: a multi-output regressor, which may score poorly with few gradient epochs."""
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = self.solver == GRADIENT
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LightningLinearRegression:
        """Fit on features X (N, D) and targets y (N,) or (N, K), rows weighted by ``sample_weight`` (N,).

        Returns:
            The estimator, fitted.

        """
        self._check_options()
        features, targets = self._validate(X, y, multi_output=True, y_numeric=True, ensure_min_samples=2)
        one_target = targets.ndim == 1
        targets = targets.reshape(len(targets), -1)  # (N, K)
        module = LinearRegression(
            in_features=features.shape[1],
            out_features=targets.shape[1],
            optimality_gap=False,  # its reference solve is the exact solver's work over again
            **self._layer_options(),
        )
        self._fit_module(module, self._data(features, targets, self._sample_weights(sample_weight, len(features))))
        coef, intercept = module.coef_, module.intercept_  # (K, D), (K,)
        self.coef_ = coef[0] if one_target else coef
        self.intercept_ = float(intercept[0]) if one_target else intercept
        return self

    @torch.no_grad()
    def predict(self, X: Any) -> np.ndarray:
        """Predictions for features X (N, D) in the targets' units: (N,) for a 1-d ``y`` at fit, else (N, K)."""
        features = self._feature_tensor(X)  # first: it says when the estimator is not fitted
        predictions = self.module_(features).double().cpu().numpy()  # (N, K)
        return predictions[:, 0] if np.ndim(self.coef_) == 1 else predictions
