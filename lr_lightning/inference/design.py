r"""The ordinary least-squares fit behind the inference, from a :class:`LeastSquaresState` and no further pass.

For features :math:`X` (n, D) and targets :math:`Y` (n, K) the design is :math:`\tilde X = [1, X]` (n, p), p = D + 1,
with an intercept (statsmodels' ``add_constant`` order: the constant first) and :math:`\tilde X = X` (p = D)
without; each target k is its own regression :math:`y_k = \tilde X \beta_k + \varepsilon_k` on the same design.

**Weighted least squares.** A state of weighted rows (:class:`~lr_lightning.streaming.LeastSquaresState` with
weights :math:`w`) gives statsmodels' ``WLS(y_k, X~, weights=w)``: the OLS fit of the whitened rows
:math:`\sqrt{w_i}\,[\tilde x_i, y_i]`, whose R factor the state holds. Everything below reads so, with n the
weight sum :math:`\sum_i w_i` wherever it weighs the mean (:math:`\sqrt n` in :math:`R_c`, :math:`n m m^\top`)
and the sums of squares weighted (:math:`\sum_i w_i e_i^2`, the weighted centred TSS, statsmodels' WLS ones).
The number of observations is the number of rows of positive weight (rows of weight 0 are as if absent, R's
``lm`` convention; statsmodels would count them in ``nobs``). Without weights every :math:`w_i` is 1.

**The design's R factor, from the state.** The state holds the count n, the column means :math:`m = [m_x; m_y]`
and the R factor :math:`R` (P, P) of the centred block :math:`Z - 1 m^\top`, :math:`Z = [X, Y]`. With an
intercept the design is reparametrized around the means, :math:`[1, X - 1 m_x^\top]`, whose columns are orthogonal
to the constant, so its R factor is block diagonal, :math:`R_c = \operatorname{diag}(\sqrt n, R_{11})`; the
original parameters are :math:`\beta = T \beta_c` with :math:`T = \begin{bmatrix} 1 & -m_x^\top \\ 0 & I
\end{bmatrix}` (the slopes w are the same; the intercept is :math:`b = b_c - m_x^\top w` with :math:`b_c = m_y`,
and 0 once the targets are centred too). Hence the R factor of :math:`[1, X]` is :math:`R_c T^{-1}` and

.. math::

    G = (R_c T^{-1})^{-1} = T R_c^{-1}
      = \begin{bmatrix} 1/\sqrt n & -m_x^\top R_{11}^{-1} \\ 0 & R_{11}^{-1} \end{bmatrix},
    \qquad (\tilde X^\top \tilde X)^{-1} = G G^\top,

with :math:`R_{11}^{-1}` from a triangular solve: :math:`\tilde X^\top \tilde X` is never formed, let alone
inverted, and no element of :math:`G G^\top` is a difference of large numbers (the intercept's variance is
:math:`1/n + \lVert R_{11}^{-\top} m_x \rVert^2`). Without an intercept :math:`R_c` is :math:`R_{11}` of the raw
block (:meth:`LeastSquaresState.raw_r_factor`) and T = I. The coefficients are :math:`W^\top = R_{11}^{-1}
R_{12}`, the residual sum of squares of target k is :math:`\lVert R_{22, :k} \rVert^2` and the explained one
:math:`\lVert R_{12, :k} \rVert^2` (centred with an intercept, raw without: statsmodels' ``ess``).

**Aliased columns.** Column j of the R factor of a matrix holds, on the diagonal, the norm of the part of column j
orthogonal to the columns before it. Feature j is *aliased* (a linear combination of the constant, when there is
one, and the features before it) when :math:`R_{jj} \le \text{rtol} \cdot \lVert \tilde x_j \rVert`, the norm of
the column as it enters the design (:math:`\sqrt{\lVert R_{:, j} \rVert^2 + n m_j^2}` with an intercept): R's
``lm`` convention (sequential, in the given order), with a tighter default tolerance. Aliased features are dropped:
the R factor of the remaining columns of :math:`[X, Y]` is that of the kept columns of R (one small QR), the fit
is the full-rank fit on the kept features, aliased coefficients are 0 and their standard errors NaN. statsmodels
instead reports the minimum-norm (pseudo-inverse) solution; the two agree on the fitted values, the fit statistics
(the robust F tests too, when the constant takes no part in a dependency) and every coefficient, with its
standard errors of every type, whose column takes no part in a dependency.

**Units.** Everything is in the units of the data that were fed to the state. A caller that fed shifted data
:math:`X - 1 s_x^\top`, :math:`Y - 1 s_y^\top` (for accuracy: the R factor does not depend on the shift, only the
means do) passes ``feature_shift`` = :math:`s_x` and ``target_shift`` = :math:`s_y`; the fit is then in the
original units, and the robust pass (:class:`~lr_lightning.inference.robust.HCAccumulator`) is fed the same
shifted rows as the state was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import linalg

from lr_lightning.streaming.state import LeastSquaresState, _as_matrix

__all__ = ["ALIAS_RTOL", "OLSFit", "fit_ols"]

#: Default relative tolerance for aliased columns: :math:`R_{jj} \le` this times the column's norm. An exactly
#: duplicated column leaves about 1e-16 after rounding; Longley's most collinear column keeps 9e-5.
ALIAS_RTOL = 1e-10


def _sign_fixed_r(matrix: np.ndarray) -> np.ndarray:
    """Return the R factor (c, c) of ``matrix`` (r, c), r >= c, with a non-negative diagonal."""
    r_factor = np.linalg.qr(matrix, mode="r")
    signs = np.where(np.diag(r_factor) < 0, -1.0, 1.0)
    return np.asarray(r_factor * signs[:, None], dtype=np.float64)


def _shift(value: npt.ArrayLike | None, size: int, name: str) -> np.ndarray:
    if value is None:
        return np.zeros(size)
    shift = np.asarray(value, dtype=np.float64).reshape(-1)
    if shift.shape != (size,) or not np.all(np.isfinite(shift)):
        raise ValueError(f"{name} must hold {size} finite numbers, got shape {shift.shape}")
    return shift


@dataclass(frozen=True)
class OLSFit:
    r"""An OLS fit from a state: what the statistics, the robust pass and the prediction intervals need.

    Plain arrays (and three scalars), so it can be broadcast to the ranks of the robust pass and stored
    (:meth:`to_arrays`). D features, K targets; D' <= D kept (non-aliased) features; p = D + 1 parameters with an
    intercept, D without; p' = D' + 1 or D' the rank of the design.

    Attributes:
        fit_intercept: whether the design has the constant column (first).
        n_rows: n, the number of observations (rows of positive weight).
        center: (D + K,), the point the design is centred on, in original units: the column means of [X, Y]
            with an intercept, zeros without.
        shift: (D + K,), :math:`[s_x; s_y]`, what the caller subtracted from the rows it fed (zeros by default).
        aliased: (D,) bool, the features that are linear combinations of the constant and earlier features.
        r_design: (p', p') upper triangular, :math:`R_c`: the R factor of the kept design centred on ``center``
            (``diag(sqrt(n), R11)`` with an intercept).
        coef: (K, D), the slopes W in original units, 0 for aliased features.
        intercept: (K,), the intercepts b in original units (zeros without an intercept).
        ssr: (K,), the residual sums of squares :math:`\lVert y_k - \hat y_k \rVert^2`.
        ess: (K,), the explained sums of squares (about the mean with an intercept, about 0 without).
        centered_tss: (K,), :math:`\lVert y_k - \bar y_k \rVert^2`.
        uncentered_tss: (K,), :math:`\lVert y_k \rVert^2`.
        weight_sum: :math:`\sum_i w_i` over the fitted rows (n when unweighted). The sums of squares above are
            weighted, :math:`\sum_i w_i e_{ik}^2` and so on, and ``center`` holds weighted means.
        log_weight_sum: :math:`\sum_i \log w_i` (0 when unweighted), the log-likelihood's term of the weights.

    """

    fit_intercept: bool
    n_rows: int
    center: np.ndarray
    shift: np.ndarray
    aliased: np.ndarray
    r_design: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    ssr: np.ndarray
    ess: np.ndarray
    centered_tss: np.ndarray
    uncentered_tss: np.ndarray
    weight_sum: float
    log_weight_sum: float

    @property
    def weighted(self) -> bool:
        """Whether the fit is weighted least squares with weights other than all 1 (see ``LeastSquaresState``)."""
        return self.weight_sum != self.n_rows or self.log_weight_sum != 0.0

    @property
    def n_features(self) -> int:
        """D."""
        return int(self.coef.shape[1])

    @property
    def n_targets(self) -> int:
        """K."""
        return int(self.coef.shape[0])

    @property
    def k_constant(self) -> int:
        """1 with an intercept, 0 without (statsmodels' ``k_constant``)."""
        return int(self.fit_intercept)

    @property
    def rank(self) -> int:
        """p', the rank of the design (the constant included)."""
        return int(self.r_design.shape[0])

    @property
    def df_model(self) -> float:
        """The model degrees of freedom, rank - k_constant."""
        return float(self.rank - self.k_constant)

    @property
    def df_resid(self) -> float:
        """The residual degrees of freedom, n - rank."""
        return float(self.n_rows - self.rank)

    @property
    def param_kept(self) -> np.ndarray:
        """(p,) bool, the estimable parameters' positions in the params layout (the constant first)."""
        kept = ~self.aliased
        return np.concatenate([[True], kept]) if self.fit_intercept else kept

    @property
    def params(self) -> np.ndarray:
        r"""(K, p), :math:`\beta_k` in statsmodels' layout: the intercept first (with one), then the slopes."""
        return np.concatenate([self.intercept[:, None], self.coef], axis=1) if self.fit_intercept else self.coef.copy()

    def design_inverse(self) -> np.ndarray:
        r"""Return :math:`G = T R_c^{-1}` (p', p'), upper triangular.

        :math:`(\tilde X^\top \tilde X)^{-1} = G G^\top` on the kept columns; from one triangular solve with the
        identity (the module docstring gives T).
        """
        inverse = linalg.solve_triangular(self.r_design, np.eye(self.rank), lower=False)  # R_c^{-1}
        if self.fit_intercept:
            kept_center = self.center[: self.n_features][~self.aliased]  # (D',)
            inverse[0] -= kept_center @ inverse[1:]  # T R_c^{-1}: row 0 minus m_x^T times the slope rows
        return np.asarray(inverse, dtype=np.float64)

    def whitened_rows(self, features: npt.ArrayLike, fed: bool = True) -> np.ndarray:
        r"""Return the whitened rows :math:`a_i = R_c^{-\top} \tilde x_{c,i}` (m, p') of rows (m, D).

        :math:`\tilde x_{c,i}` is the row's kept design entries centred on ``center`` (with the constant 1 first
        when there is an intercept). For the fitted rows the :math:`a_i` are the rows of the thin Q factor of the
        design, so :math:`\sum_i a_i a_i^\top = I` and :math:`h_{ii} = \lVert a_i \rVert^2` is the leverage (of a
        weighted fit: :math:`\sqrt{w_i}\, a_i` are, and :math:`h_{ii} = w_i \lVert a_i \rVert^2`).

        Args:
            features: rows (m, D); in the units fed to the state (shifted by ``shift``) when ``fed``, else in
                original units.
            fed: whether the rows carry the caller's shift.

        """
        centred = self.centred_features(features, fed)[:, ~self.aliased]  # (m, D')
        if self.fit_intercept:
            centred = np.concatenate([np.ones((centred.shape[0], 1)), centred], axis=1)  # (m, p')
        solved = linalg.solve_triangular(self.r_design, centred.T, trans="T", lower=False)  # (p', m)
        return np.asarray(solved.T, dtype=np.float64)

    def centred_features(self, features: npt.ArrayLike, fed: bool = True) -> np.ndarray:
        """Rows (m, D) minus ``center``'s features, float64 (the shift accounted for when ``fed``)."""
        matrix = np.asarray(_as_matrix(features, "features"), dtype=np.float64)
        if matrix.shape[1] != self.n_features:
            raise ValueError(f"features must have {self.n_features} columns, got {matrix.shape[1]}")
        return matrix - (self.center[: self.n_features] - (self.shift[: self.n_features] if fed else 0.0))

    def centred_targets(self, targets: npt.ArrayLike, fed: bool = True) -> np.ndarray:
        """Targets (m, K) minus ``center``'s targets, float64 (the shift accounted for when ``fed``)."""
        matrix = np.asarray(_as_matrix(targets, "targets"), dtype=np.float64)
        if matrix.shape[1] != self.n_targets:
            raise ValueError(f"targets must have {self.n_targets} columns, got {matrix.shape[1]}")
        return matrix - (self.center[self.n_features :] - (self.shift[self.n_features :] if fed else 0.0))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Return the fields as NumPy arrays (``fit_intercept`` as a bool array, ``n_rows`` as int64).

        ``weight_sum`` and ``log_weight_sum`` (float64 scalars) only for a :attr:`weighted` fit: an unweighted
        fit's arrays are those written before weights existed.
        """
        arrays = {name: np.asarray(getattr(self, name)).copy() for name in _ARRAY_FIELDS}
        arrays["fit_intercept"] = np.asarray(self.fit_intercept)
        arrays["n_rows"] = np.asarray(self.n_rows, dtype=np.int64)
        if self.weighted:
            arrays["weight_sum"] = np.asarray(self.weight_sum, dtype=np.float64)
            arrays["log_weight_sum"] = np.asarray(self.log_weight_sum, dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.ArrayLike]) -> OLSFit:
        """Rebuild the fit :meth:`to_arrays` wrote (NumPy arrays or CPU tensors); no weight sums: unweighted."""
        values = {name: np.asarray(arrays[name], dtype=np.float64) for name in _ARRAY_FIELDS if name != "aliased"}
        n_rows = int(np.asarray(arrays["n_rows"]))
        weighted = "weight_sum" in arrays
        return cls(
            fit_intercept=bool(np.asarray(arrays["fit_intercept"])),
            n_rows=n_rows,
            aliased=np.asarray(arrays["aliased"], dtype=bool),
            weight_sum=float(np.asarray(arrays["weight_sum"])) if weighted else float(n_rows),
            log_weight_sum=float(np.asarray(arrays["log_weight_sum"])) if weighted else 0.0,
            **values,
        )


_ARRAY_FIELDS = (
    "center",
    "shift",
    "aliased",
    "r_design",
    "coef",
    "intercept",
    "ssr",
    "ess",
    "centered_tss",
    "uncentered_tss",
)


def _aliased_columns(r11: np.ndarray, column_norms: np.ndarray, rtol: float) -> np.ndarray:
    r"""Flag (D,) the aliased columns: :math:`|R_{jj}| \le` rtol times the column's norm (a zero column is aliased)."""
    return np.asarray(np.abs(np.diag(r11)) <= rtol * column_norms, dtype=bool)


def fit_ols(
    state: LeastSquaresState,
    fit_intercept: bool = True,
    *,
    feature_shift: npt.ArrayLike | None = None,
    target_shift: npt.ArrayLike | None = None,
    alias_rtol: float = ALIAS_RTOL,
) -> OLSFit:
    r"""Return the OLS fit of every target on the state's rows, in O(P³), without another pass.

    Args:
        state: the state of the fitted rows, n > rank; a weighted state gives the weighted least-squares fit.
        fit_intercept: add the constant column first (statsmodels' ``add_constant``); otherwise the regression
            goes through the origin of the original units (statsmodels' ``hasconst=False``).
        feature_shift: :math:`s_x` (D,), what the caller subtracted from the features it fed; None for zeros.
        target_shift: :math:`s_y` (K,), what it subtracted from the targets; None for zeros.
        alias_rtol: a feature is aliased when its R diagonal is at most this times its column's norm.

    Returns:
        The fit (the module docstring gives the formulas).

    Raises:
        ValueError: on an empty state, or when no residual degree of freedom is left (n <= rank).

    """
    n_rows, n_features, n_targets = state.n_rows, state.n_features, state.n_targets
    weight_sum = state.weight_sum  # weighs the mean where n_rows counts the observations
    if n_rows == 0:
        raise ValueError("the state holds no rows: there is nothing to fit")
    shift = np.concatenate(
        [_shift(feature_shift, n_features, "feature_shift"), _shift(target_shift, n_targets, "target_shift")]
    )
    mean = state.mean + shift  # (P,), original units
    if fit_intercept:
        r_full = state.r_factor  # shift-invariant
        column_norms = np.sqrt(np.sum(r_full[:, :n_features] ** 2, axis=0) + weight_sum * mean[:n_features] ** 2)
        center = mean.copy()
    else:
        original = state.copy()
        original.mean = mean
        r_full = original.raw_r_factor()  # (P, P), of the raw block in original units
        column_norms = np.sqrt(np.sum(r_full[:, :n_features] ** 2, axis=0))
        center = np.zeros_like(mean)
    aliased = _aliased_columns(r_full[:n_features, :n_features], column_norms, alias_rtol)
    if np.any(aliased):
        columns = np.concatenate([np.flatnonzero(~aliased), np.arange(n_features, n_features + n_targets)])
        r_full = _sign_fixed_r(r_full[:, columns])  # the R factor of [X_kept, Y]
    n_kept = n_features - int(np.sum(aliased))
    r11, r12, r22 = r_full[:n_kept, :n_kept], r_full[:n_kept, n_kept:], r_full[n_kept:, n_kept:]
    rank = n_kept + int(fit_intercept)
    if n_rows <= rank:
        raise ValueError(f"{n_rows} observations leave no residual degree of freedom for a design of rank {rank}")
    coef = np.zeros((n_targets, n_features))
    coef[:, ~aliased] = linalg.solve_triangular(r11, r12, lower=False).T  # W^T = R11^{-1} R12
    intercept = mean[n_features:] - coef @ mean[:n_features] if fit_intercept else np.zeros(n_targets)
    r_design = r11.copy()
    if fit_intercept:
        r_design = np.zeros((rank, rank))
        r_design[0, 0] = np.sqrt(weight_sum)
        r_design[1:, 1:] = r11
    centered_tss = np.sum(state.r_factor[:, n_features:] ** 2, axis=0)  # (K,), the centred scatter's diagonal
    return OLSFit(
        fit_intercept=bool(fit_intercept),
        n_rows=int(n_rows),
        center=center,
        shift=shift,
        aliased=aliased,
        r_design=r_design,
        coef=coef,
        intercept=np.asarray(intercept, dtype=np.float64),
        ssr=np.sum(r22**2, axis=0),
        ess=np.sum(r12**2, axis=0),
        centered_tss=centered_tss,
        uncentered_tss=centered_tss + weight_sum * mean[n_features:] ** 2,
        weight_sum=float(weight_sum),
        log_weight_sum=float(state.log_weight_sum),
    )
