r"""The exact error of any affine model, and its gap to an optimum, from a :class:`LeastSquaresState` alone.

The optimality certificate of a fit, with no pass over the data: O(D² K) per model.

**The error of any affine model.** For W (K, D) and b (K,), the residuals :math:`Y - X W^\top - 1 b^\top`
are :math:`Z_c A + 1 (A^\top m - b)^\top` with :math:`A = [-W^\top; I]` (P, K) and :math:`Z_c = Z - 1 m^\top`;
with row weights :math:`w` (all 1 without) and n their sum, as :math:`w^\top Z_c = 0` and
:math:`\lVert \operatorname{diag}(\sqrt w) Z_c A \rVert_F = \lVert R A \rVert_F`, the weighted residual sum of squares
is

.. math::

    \mathrm{RSS}(W, b) = \sum_i w_i \lVert r_i \rVert^2 = \lVert R_{12} - R_{11} W^\top \rVert_F^2
        + \lVert R_{22} \rVert_F^2 + n \lVert m_y - W m_x - b \rVert^2

(:func:`mean_squared_error` divides by n, per target: the weighted mean :math:`\sum_i w_i r_{ik}^2 / \sum_i w_i`).
Below, n is always the state's weight sum, the row count when unweighted. Each target's objective
:math:`F_k = \mathrm{RSS}_k / n + \lambda_2 \lVert \sigma \odot w_k \rVert^2` is quadratic, so at a minimizer
:math:`(w_k^*, b_k^*)` over an affine set of models, where the gradient vanishes along the set, the excess of a
model of the set is exactly the second-order term: with :math:`\Delta w_k = w_k - w_k^*`,
:math:`\Delta b_k = b_k - b_k^*`,

.. math::

    F_k(w_k, b_k) - F_k(w_k^*, b_k^*) = \frac{1}{n}\left(\lVert R_{11} \Delta w_k \rVert^2
        + n (m_x^\top \Delta w_k + \Delta b_k)^2\right) + \lambda_2 \lVert \sigma \odot \Delta w_k \rVert^2

(:func:`optimality_gap_per_target`): a sum of squares, with no cancellation between two near-equal errors, >= 0.
The sets in use:

* every affine model (:func:`~lr_lightning.streaming.solve` with an intercept): the normal equations
  :math:`R_{11}^\top (R_{12} - R_{11} W^{*\top}) = n \lambda_2 \operatorname{diag}(\sigma^2) W^{*\top}` and
  :math:`b^* = m_y - W^* m_x` cancel the cross terms;
* the models with b = 0 (``solve`` without an intercept): the raw normal equations
  :math:`X^\top \operatorname{diag}(w) (Y - X W^{*\top}) = R_{11}^\top E^* + n\, m_x r^{*\top} = 0`, with
  :math:`E^* = R_{12} - R_{11} W^{*\top}` and :math:`r^* = m_y - W^* m_x`, cancel them when
  :math:`\Delta b = 0`. A model with :math:`b \ne 0` is outside this set: its excess over this optimum is the
  formula's value minus :math:`2 n\, r^{*\top} b` (use :func:`mean_squared_error` for it);
* the models through a point, :math:`b = t - W \mu` (:func:`lr_lightning.closed_form.through_point`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lr_lightning.closed_form import LeastSquaresSolution
from lr_lightning.streaming.solve import _check_scale, _check_strength, solve
from lr_lightning.streaming.state import LeastSquaresState

__all__ = ["mean_squared_error", "optimality_gap", "optimality_gap_per_target"]


def _affine(
    state: LeastSquaresState, coef: npt.ArrayLike, intercept: npt.ArrayLike | None
) -> tuple[np.ndarray, np.ndarray]:
    """W (K, D) and b (K,) in float64 from ``coef`` (K, D) (or (D,) when K = 1) and ``intercept`` (K,) or None."""
    k, d = state.n_targets, state.n_features
    weight = np.asarray(coef, dtype=np.float64)
    if weight.shape != (k, d) and not (k == 1 and weight.shape == (d,)):
        raise ValueError(f"coef must have shape ({k}, {d}), got {weight.shape}")
    bias = np.zeros(k) if intercept is None else np.asarray(intercept, dtype=np.float64)
    if bias.size != k or bias.ndim > 1:
        raise ValueError(f"intercept must have shape ({k},), got {bias.shape}")
    return weight.reshape(k, d), bias.reshape(k)


def mean_squared_error(
    state: LeastSquaresState, coef: npt.ArrayLike, intercept: npt.ArrayLike | None = None
) -> np.ndarray:
    r"""Return the mean squared error of each target of the model :math:`X W^\top + b` on the state's rows, (K,).

    :math:`\mathrm{RSS}(W, b) / n` from the module docstring's identity (weighted: :math:`\sum_i w_i r_{ik}^2 /
    \sum_i w_i`), in O(D² K), without another pass. The mean over targets is the models' data loss; a ridge
    objective adds :math:`\lambda_2 \lVert \sigma \odot w_k \rVert^2` per target (:func:`optimality_gap` gives the
    difference to its optimum without cancellation).

    Args:
        state: the state of the rows (not empty).
        coef: W of shape (K, D), or (D,) when K = 1, in original units.
        intercept: b of shape (K,); None for zeros.

    """
    if state.n_rows == 0:
        raise ValueError("the state holds no rows")
    weight, bias = _affine(state, coef, intercept)
    d, r = state.n_features, state.r_factor
    unfitted = r[:d, d:] - r[:d, :d] @ weight.T  # (D, K): R12 - R11 W^T
    offset = state.mean[d:] - weight @ state.mean[:d] - bias  # (K,): m_y - W m_x - b
    rss = np.sum(unfitted**2, axis=0) + np.sum(r[d:, d:] ** 2, axis=0) + state.weight_sum * offset**2  # (K,)
    return np.asarray(rss / state.weight_sum, dtype=np.float64)


def optimality_gap_per_target(
    state: LeastSquaresState,
    coef: npt.ArrayLike,
    intercept: npt.ArrayLike | None,
    optimum: LeastSquaresSolution | None = None,
    l2_strength: float = 0.0,
    feature_scale: npt.ArrayLike | None = None,
) -> np.ndarray:
    r"""Return each target's objective minus the optimum's, (K,), as a sum of squares (>= 0) from the state.

    .. math::

        g_k = \frac{1}{n}\left(\lVert R_{11} \Delta w_k \rVert^2 + n (m_x^\top \Delta w_k + \Delta b_k)^2\right)
            + \lambda_2 \lVert \sigma \odot \Delta w_k \rVert^2,
        \qquad \Delta w_k = w_k - w_k^*, \quad \Delta b_k = b_k - b_k^*,

    in O(D² K), n the state's weight sum. With ``l2_strength=0`` it is the model's MSE minus the least-squares
    MSE; otherwise the ridge objective's excess. Exact (up to rounding in the optimum) when ``optimum`` minimizes
    that objective over a set of models :math:`\{(W, b)\}` that contains ``(coef, intercept)`` (see the module
    docstring): for an optimum fitted without an intercept, pass ``intercept=None`` (or zeros).

    Args:
        state: the state of the rows (not empty).
        coef: W of shape (K, D), or (D,) when K = 1, in original units.
        intercept: b of shape (K,); None for zeros.
        optimum: the minimizer, e.g. ``solve(state, fit_intercept, l2_strength, feature_scale)`` (any minimizer:
            on a rank-deficient design every least-squares solution gives the same gap); None for
            ``solve(state, True, l2_strength, feature_scale)``.
        l2_strength: :math:`\lambda_2 \ge 0` of the objective, as in :func:`solve`.
        feature_scale: :math:`\sigma` (D,) of the penalty, as in :func:`solve`; None for ones.

    """
    strength = _check_strength(l2_strength)
    if state.n_rows == 0:
        raise ValueError("the state holds no rows")
    if optimum is None:
        optimum = solve(state, True, strength, feature_scale)
    weight, bias = _affine(state, coef, intercept)
    best_weight, best_bias = _affine(state, optimum.coef_, optimum.intercept_)
    delta_weight, delta_bias = weight - best_weight, bias - best_bias  # (K, D), (K,)
    d = state.n_features
    curvature = np.sum((state.r_factor[:d, :d] @ delta_weight.T) ** 2, axis=0)  # (K,): ||R11 dw_k||²
    shift = delta_weight @ state.mean[:d] + delta_bias  # (K,): the change of the mean prediction
    gap = curvature / state.weight_sum + shift**2  # (K,)
    if strength > 0:
        scale = _check_scale(feature_scale, d)
        gap = gap + strength * np.sum((delta_weight * scale) ** 2, axis=1)
    return np.asarray(gap, dtype=np.float64)


def optimality_gap(
    state: LeastSquaresState,
    coef: npt.ArrayLike,
    intercept: npt.ArrayLike | None,
    optimum: LeastSquaresSolution | None = None,
    l2_strength: float = 0.0,
    feature_scale: npt.ArrayLike | None = None,
) -> float:
    r"""Return the model's objective minus the optimum's, averaged over targets: the fit's certificate, >= 0.

    The mean of :func:`optimality_gap_per_target` over the K targets: with ``l2_strength=0``,
    :math:`\frac{1}{nK}\lVert \operatorname{diag}(\sqrt w)(Y - X W^\top - 1 b^\top) \rVert_F^2` minus the same at
    the optimum, i.e.
    :math:`\frac{1}{nK}(\lVert R_{11} \Delta W^\top \rVert_F^2 + n \lVert \Delta W m_x + \Delta b \rVert^2)`;
    with a penalty, the models' objective (:mod:`lr_lightning.penalties`: data MSE plus
    :math:`\frac{\lambda_2}{K}\lVert \sigma \odot W \rVert_F^2`) minus its minimum. Arguments as there.
    """
    return float(np.mean(optimality_gap_per_target(state, coef, intercept, optimum, l2_strength, feature_scale)))
