r"""Least squares and ridge (one strength or a path) from a :class:`LeastSquaresState` alone.

**Solving from R.** With :math:`R = \begin{bmatrix} R_{11} & R_{12} \\ 0 & R_{22} \end{bmatrix}` (blocks of
D and K rows and columns), :math:`\lVert Z_c [w; -1] \rVert = \lVert R [w; -1] \rVert` for every w, so the
least-squares problem on the N centred rows is the same problem on the P rows of R: minimize
:math:`\lVert R_{12} - R_{11} W^\top \rVert_F^2 + \lVert R_{22} \rVert_F^2`. With the SVD
:math:`R_{11} = U \operatorname{diag}(s) V^\top` (which has the singular values of the centred design) and
:math:`B = U^\top R_{12}` (D, K), the ridge solution for scikit-learn's alpha (sum of squares) is
:math:`W^\top = V \operatorname{diag}(s / (s^2 + \alpha)) B`, the minimum-norm least-squares solution the
same with :math:`1/s` on the numerical rank and 0 beyond it (``numpy.linalg.lstsq``'s cut-off), and the residual
sum of squares :math:`\sum_j (1 - s_j f_j)^2 B_{jk}^2 + \lVert R_{22, :k} \rVert^2` with :math:`f_j` those
factors (:math:`1 - s_j f_j = \alpha / (s_j^2 + \alpha)` for ridge, 0 or 1 for least squares). One SVD of a
D-by-D matrix serves every alpha. Without an intercept the same is done on the R factor of the raw block
(:meth:`LeastSquaresState.raw_r_factor`), so one state serves both.

**The penalty.** ``l2_strength`` is the models' :math:`\lambda_2` (:mod:`lr_lightning.penalties`): each target
solves :math:`\frac{1}{N}\sum_i w_i (y_{ik} - x_i^\top w_k - b_k)^2 + \lambda_2 \lVert \sigma \odot w_k \rVert^2`,
whose minimizer is that of scikit-learn's ``Ridge(alpha=N * l2_strength)`` on :math:`X / \sigma` with
``sample_weight=w`` (:func:`lr_lightning.penalties.sklearn_ridge_alpha`), N the state's weight sum
:math:`\sum_i w_i` (the row count without weights; every rank's, once merged), with :math:`\sigma` =
``feature_scale`` (e.g. :meth:`LeastSquaresState.feature_std`, ``StandardScaler``'s scale) or ones. Scaling the
columns of :math:`R_{11}` by :math:`1/\sigma` is the R factor of the scaled design. A weighted state is the
unweighted problem on the rows scaled by :math:`\sqrt{w_i}` (weighted least squares): everything above holds
with its R.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lr_lightning.closed_form import LeastSquaresSolution, RankDeficiencyWarning
from lr_lightning.streaming.state import LeastSquaresState

__all__ = [
    "StreamingSolution",
    "ridge_path",
    "solve",
]


@dataclass(frozen=True)
class StreamingSolution(LeastSquaresSolution):
    """A :class:`~lr_lightning.closed_form.LeastSquaresSolution` with what the SVD of R also gives.

    Attributes:
        singular_values_: shape (D,), the singular values of the centred (or, without an intercept, raw) design,
            after division by ``feature_scale`` when one was given; descending.
        rss_: shape (K,), the residual sum of squares of each target on the fitted rows.

    """

    singular_values_: np.ndarray
    rss_: np.ndarray


@dataclass(frozen=True)
class _Decomposition:
    """The SVD of R₁₁ and what every alpha shares (see the module docstring for the symbols)."""

    n_rows: int
    weight_sum: float  # N of the mean squared error, the rows' total weight
    fit_intercept: bool
    scale: np.ndarray  # (D,) the feature scale sigma; ones when none
    x_offset: np.ndarray  # (D,) the features' means, zeros without an intercept
    y_offset: np.ndarray  # (K,)
    singular_values: np.ndarray  # (D,) s, descending
    right_vectors: np.ndarray  # (D, D) V
    projected_targets: np.ndarray  # (D, K) B = U^T R12
    rss_floor: np.ndarray  # (K,) the column norms² of R22, what no weights can fit
    kept: np.ndarray  # (D,) bool, the singular values above the cut-off
    rank: int

    def filter_factors(self, alpha: float) -> np.ndarray:
        r"""Return f (D,) with :math:`W^\top = V \operatorname{diag}(f) B`: s/(s² + alpha), or 1/s for alpha 0."""
        s = self.singular_values
        safe = np.where(self.kept, s, 1.0)
        factors = safe / (safe**2 + alpha) if alpha > 0 else 1.0 / safe
        return np.where(self.kept, factors, 0.0)

    def solution(self, alpha: float) -> StreamingSolution:
        """Return the ridge (alpha > 0) or minimum-norm least-squares (alpha = 0) solution for scikit-learn's alpha."""
        factors = self.filter_factors(alpha)  # (D,)
        weights_scaled = self.right_vectors @ (factors[:, None] * self.projected_targets)  # (D, K)
        coef = (weights_scaled / self.scale[:, None]).T  # (K, D), original units
        intercept = self.y_offset - coef @ self.x_offset  # (K,)
        # R12 - R11 W^T = U diag(1 - s f) B, and U is square orthogonal.
        unfitted = (1.0 - self.singular_values * factors)[:, None] * self.projected_targets  # (D, K)
        rss = np.sum(unfitted**2, axis=0) + self.rss_floor  # (K,)
        return StreamingSolution(
            coef_=coef,
            intercept_=intercept,
            mse_=float(np.sum(rss) / (self.weight_sum * rss.shape[0])),
            rank_=self.rank,
            singular_values_=self.singular_values.copy(),
            rss_=rss,
        )

    def project(self, features: np.ndarray) -> np.ndarray:
        """Rows (n, D) centred, scaled and projected on V, (n, D); numerically null directions are exact zeros."""
        projected = ((features - self.x_offset) / self.scale) @ self.right_vectors  # (n, D)
        return np.where(self.kept, projected, 0.0)


def _check_strength(value: float) -> float:
    if isinstance(value, bool) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"l2_strength must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_scale(feature_scale: npt.ArrayLike | None, n_features: int) -> np.ndarray:
    """``feature_scale`` as (D,) finite numbers > 0; ones when None."""
    if feature_scale is None:
        return np.ones(n_features)
    scale = np.asarray(feature_scale, dtype=np.float64).reshape(-1)
    if scale.shape != (n_features,) or not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(f"feature_scale must hold {n_features} finite numbers > 0, got {feature_scale!r}")
    return scale


def _decompose(
    state: LeastSquaresState, fit_intercept: bool, feature_scale: npt.ArrayLike | None, rcond: float | None
) -> _Decomposition:
    n_rows, n_features = state.n_rows, state.n_features
    if n_rows == 0:
        raise ValueError("the state holds no rows: there is nothing to solve")
    if fit_intercept:
        r = state.r_factor
        x_offset, y_offset = state.mean[:n_features], state.mean[n_features:]
    else:
        r = state.raw_r_factor()
        x_offset, y_offset = np.zeros(n_features), np.zeros(state.n_targets)
    scale = _check_scale(feature_scale, n_features)
    r11 = r[:n_features, :n_features] / scale[None, :]  # (D, D): the R factor of the scaled design
    r12 = r[:n_features, n_features:]  # (D, K)
    r22 = r[n_features:, n_features:]  # (K, K)
    u, s, vt = np.linalg.svd(r11)  # (D, D), (D,), (D, D)
    # numpy.linalg.lstsq's default cut-off on the (N, D) design, which has the same singular values.
    cutoff_ratio = np.finfo(np.float64).eps * max(n_rows, n_features) if rcond is None else rcond
    kept = s > cutoff_ratio * (s[0] if s.size else 0.0)
    return _Decomposition(
        n_rows=n_rows,
        weight_sum=state.weight_sum,
        fit_intercept=fit_intercept,
        scale=scale,
        x_offset=x_offset.copy(),
        y_offset=y_offset.copy(),
        singular_values=s,
        right_vectors=vt.T,
        projected_targets=u.T @ r12,
        rss_floor=np.sum(r22**2, axis=0),
        kept=kept,
        rank=int(np.sum(kept)),
    )


def _warn_if_rank_deficient(decomposition: _Decomposition, n_features: int) -> None:
    rank, fit_intercept = decomposition.rank, decomposition.fit_intercept
    if rank < n_features:
        kind = "underdetermined" if decomposition.n_rows - int(fit_intercept) < n_features else "singular"
        warnings.warn(
            f"the design matrix is rank deficient ({kind}): rank {rank} < {n_features} features"
            f"{' after centring for the intercept' if fit_intercept else ''}; infinitely many weights reach the "
            "same minimum and the minimum-norm one is returned",
            RankDeficiencyWarning,
            stacklevel=3,
        )


def solve(
    state: LeastSquaresState,
    fit_intercept: bool = True,
    l2_strength: float = 0.0,
    feature_scale: npt.ArrayLike | None = None,
    rcond: float | None = None,
) -> StreamingSolution:
    r"""Least squares (``l2_strength=0``) or ridge from a pass's state, in float64.

    Minimizes, for each target k,
    :math:`\frac{1}{N}\sum_i w_i (y_{ik} - x_i^\top w_k - b_k)^2 + \lambda_2 \lVert \sigma \odot w_k \rVert^2`
    (N the weight sum; :math:`w_i = 1` without weights), which is scikit-learn's ``Ridge(alpha=N * l2_strength)``
    on :math:`X / \sigma` with ``sample_weight=w`` (coefficients returned in original units). With
    ``l2_strength=0`` on a rank-deficient or underdetermined design the weights are the minimum-norm ones (of the
    centred problem when ``fit_intercept``, as :func:`lr_lightning.closed_form.least_squares`), with a
    :class:`~lr_lightning.closed_form.RankDeficiencyWarning` naming the rank.

    Args:
        state: the state of the rows to fit.
        fit_intercept: fit an unpenalized intercept (on the centred block; otherwise the raw one).
        l2_strength: :math:`\lambda_2 \ge 0`, the models' ``l2_strength`` (:mod:`lr_lightning.penalties`).
        feature_scale: :math:`\sigma` of shape (D,), > 0: the penalty falls on weights of ``features / sigma``
            (the models' standardized features: pass ``state.feature_std()``). None: on the raw weights.
        rcond: singular values at or below ``rcond`` times the largest count as zero; default
            ``numpy.linalg.lstsq``'s, machine epsilon times max(N, D).

    Returns:
        The solution: ``coef_`` (K, D), ``intercept_`` (K,), ``mse_`` (data MSE over rows and targets, weighted),
        ``rank_``, ``singular_values_`` (D,) and ``rss_`` (K,) (weighted: :math:`\sum_i w_i r_{ik}^2`).

    Warns:
        RankDeficiencyWarning: when the design has rank below D and ``l2_strength == 0``.

    """
    strength = _check_strength(l2_strength)
    decomposition = _decompose(state, fit_intercept, feature_scale, rcond)
    if strength == 0:
        _warn_if_rank_deficient(decomposition, state.n_features)
    return decomposition.solution(state.weight_sum * strength)


def ridge_path(
    state: LeastSquaresState,
    l2_strengths: Sequence[float],
    fit_intercept: bool = True,
    feature_scale: npt.ArrayLike | None = None,
    rcond: float | None = None,
) -> list[StreamingSolution]:
    r""":func:`solve` for every strength in ``l2_strengths``, from one SVD of R₁₁ (each further one is O(D² K)).

    Args:
        state: the state of the rows to fit.
        l2_strengths: the models' strengths, shape (A,), each >= 0 (scikit-learn's alpha is N, the weight sum,
            times each).
        fit_intercept: fit an unpenalized intercept.
        feature_scale: :math:`\sigma` (D,), as in :func:`solve`.
        rcond: as in :func:`solve`.

    Returns:
        One solution per strength, in the given order.

    Warns:
        RankDeficiencyWarning: once, when a strength is 0 and the design has rank below D.

    """
    strengths = [_check_strength(value) for value in l2_strengths]
    decomposition = _decompose(state, fit_intercept, feature_scale, rcond)
    if any(strength == 0 for strength in strengths):
        _warn_if_rank_deficient(decomposition, state.n_features)
    return [decomposition.solution(state.weight_sum * strength) for strength in strengths]
