r"""Closed-form least squares and ridge in float64: the reference every trained linear model is checked against.

Pure NumPy, no Lightning. For features :math:`X` of shape (N, D) and targets :math:`Y` of shape (N, K) the
least-squares problem with an intercept is

.. math::

    \min_{W, b} \frac{1}{N K} \sum_{i=1}^{N} \lVert y_i - (W x_i + b) \rVert_2^2

and ridge adds :math:`\alpha \lVert W \rVert_F^2` (the intercept is not penalized). Both are solved with
``numpy.linalg.lstsq`` on the centred design, which returns the minimum-norm solution when the design is rank
deficient; in that case a :class:`RankDeficiencyWarning` names the rank instead of failing or silently returning
one of infinitely many answers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["LeastSquaresSolution", "RankDeficiencyWarning", "least_squares", "ridge", "through_point"]


class RankDeficiencyWarning(UserWarning):
    """The design matrix does not have full column rank: the minimum-norm solution is returned."""


@dataclass(frozen=True)
class LeastSquaresSolution:
    """A fitted linear model in scikit-learn's vocabulary.

    Attributes:
        coef_: weights of shape (K, D).
        intercept_: intercepts of shape (K,); zeros when fitted without an intercept.
        mse_: mean squared error on the fitted data, averaged over rows and targets.
        rank_: numerical rank of the (centred) design matrix.

    """

    coef_: np.ndarray
    intercept_: np.ndarray
    mse_: float
    rank_: int

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predictions of shape (N, K) for features of shape (N, D)."""
        return np.asarray(features, dtype=np.float64) @ self.coef_.T + self.intercept_


def _as_2d(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {array.shape}")
    return array


def ridge(
    features: np.ndarray,
    targets: np.ndarray,
    alpha: float = 0.0,
    fit_intercept: bool = True,
    rcond: float | None = None,
) -> LeastSquaresSolution:
    r"""Solve :math:`\min_{W,b} \lVert Y - XW^T - b \rVert_F^2 + \alpha \lVert W \rVert_F^2` in float64.

    This is scikit-learn's ``Ridge(alpha)`` objective (sum of squares, not mean); ``alpha=0`` is ordinary least
    squares.

    Args:
        features: X of shape (N, D).
        targets: Y of shape (N,) or (N, K).
        alpha: L2 strength on the weights, not the intercept; must be >= 0.
        fit_intercept: fit an unpenalized intercept (by centring X and Y).
        rcond: cut-off ratio for small singular values, passed to ``numpy.linalg.lstsq``.

    Returns:
        The solution, with ``coef_`` of shape (K, D) and ``intercept_`` of shape (K,).

    Warns:
        RankDeficiencyWarning: when the centred design has rank below D (and ``alpha == 0``).

    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    x = _as_2d(features, "features")
    y = _as_2d(targets, "targets")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"features have {x.shape[0]} rows but targets have {y.shape[0]}")
    n_samples, n_features = x.shape

    x_offset = x.mean(axis=0) if fit_intercept else np.zeros(n_features)
    y_offset = y.mean(axis=0) if fit_intercept else np.zeros(y.shape[1])
    x_centred = x - x_offset  # (N, D)
    y_centred = y - y_offset  # (N, K)

    if alpha > 0:
        # Augment with sqrt(alpha) * I: lstsq on [X; sqrt(a) I] w = [y; 0] is ridge, and well posed.
        design = np.vstack([x_centred, np.sqrt(alpha) * np.eye(n_features)])  # (N + D, D)
        rhs = np.vstack([y_centred, np.zeros((n_features, y.shape[1]))])  # (N + D, K)
    else:
        design, rhs = x_centred, y_centred
    weights, _, rank, _ = np.linalg.lstsq(design, rhs, rcond=rcond)  # (D, K)
    rank = int(rank)
    if rank < n_features:
        kind = "underdetermined" if n_samples - int(fit_intercept) < n_features else "singular"
        warnings.warn(
            f"the design matrix is rank deficient ({kind}): rank {rank} < {n_features} features"
            f"{' after centring for the intercept' if fit_intercept else ''}; infinitely many weights reach the "
            "same minimum and the minimum-norm one is returned",
            RankDeficiencyWarning,
            stacklevel=2,
        )
    coef = weights.T  # (K, D)
    intercept = y_offset - coef @ x_offset  # (K,)
    residuals = y - (x @ coef.T + intercept)
    return LeastSquaresSolution(coef_=coef, intercept_=intercept, mse_=float(np.mean(residuals**2)), rank_=rank)


def least_squares(
    features: np.ndarray, targets: np.ndarray, fit_intercept: bool = True, rcond: float | None = None
) -> LeastSquaresSolution:
    r"""Ordinary least squares :math:`\min_{W,b} \frac{1}{NK}\lVert Y - XW^T - b \rVert_F^2` in float64.

    Args:
        features: X of shape (N, D).
        targets: Y of shape (N,) or (N, K).
        fit_intercept: fit an intercept (by centring X and Y).
        rcond: cut-off ratio for small singular values, passed to ``numpy.linalg.lstsq``.

    Returns:
        The solution, with ``coef_`` of shape (K, D), ``intercept_`` of shape (K,) and the optimal ``mse_``.

    """
    return ridge(features, targets, alpha=0.0, fit_intercept=fit_intercept, rcond=rcond)


def through_point(
    solution: LeastSquaresSolution, feature_point: np.ndarray, target_point: np.ndarray
) -> LeastSquaresSolution:
    r"""Least squares among the models :math:`y = t + W (x - m)`, which pass through the point (m, t), in float64.

    A model without an intercept of its own on centred features (and targets shifted by t) is such a model. When
    m is the mean :math:`\bar{x}` of the features ``solution`` was fitted on (with an intercept), no new solve is
    needed: the residuals of the fit with an intercept sum to zero, so the best W is the same and the mean squared
    error grows by the squared distance between the targets' mean :math:`\bar{y}` and t, averaged over targets.

    Args:
        solution: least squares with an intercept, on features whose mean is ``feature_point``.
        feature_point: m of shape (D,), the features' mean.
        target_point: t of shape (K,).

    Returns:
        The solution, with ``intercept_`` :math:`t - W m` (the model's intercept in original units).

    """
    coef = solution.coef_  # (K, D)
    feature_point = np.asarray(feature_point, dtype=np.float64)
    target_point = np.asarray(target_point, dtype=np.float64)
    target_mean = solution.intercept_ + coef @ feature_point  # the fit with an intercept passes through (x̄, ȳ)
    mse = solution.mse_ + float(np.mean((target_mean - target_point) ** 2))
    return LeastSquaresSolution(
        coef_=coef, intercept_=target_point - coef @ feature_point, mse_=mse, rank_=solution.rank_
    )
