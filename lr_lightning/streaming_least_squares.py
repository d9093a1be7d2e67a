r"""Exact least squares and ridge regression from one streaming pass over row chunks, mergeable across processes.

Pure NumPy, no Lightning and no torch. For features :math:`X` of shape (N, D) and targets :math:`Y` of shape
(N, K), read a chunk at a time (:meth:`lr_lightning.data.stores.base.RowStore.chunks`), this module gives the
same answers as :mod:`lr_lightning.closed_form` (``numpy.linalg.lstsq`` on the whole matrix in memory): least
squares, the minimum-norm solution of a rank-deficient or underdetermined design, ridge for one strength or a
whole path of strengths, and the choice of the ridge strength by exact leave-one-out (scikit-learn's
``RidgeCV``) or by generalized cross-validation.

**The method: a streaming (TSQR) QR of the centred, augmented block.** The state of a pass is the row count
:math:`n`, the column means :math:`m` of the augmented block :math:`Z = [X, Y]` (N, P) with P = D + K, and an
upper-triangular :math:`R` (P, P) with :math:`R^\top R = (Z - 1 m^\top)^\top (Z - 1 m^\top)`: the R factor of
the centred block. A chunk is centred on its own mean, stacked under the current R and re-factored
(``numpy.linalg.qr(..., mode="r")``); two states merge the same way, by stacking their R factors, so ranks (or
threads, or files) merge in any order and any tree. Centring is merged with the pairwise update of Chan, Golub
and LeVeque: for blocks a and b with counts :math:`n_a, n_b` and means :math:`m_a, m_b`,

.. math::

    S_{a \cup b} = S_a + S_b + \frac{n_a n_b}{n_a + n_b} (m_a - m_b)(m_a - m_b)^\top,
    \qquad m_{a \cup b} = m_a + \frac{n_b}{n_a + n_b} (m_b - m_a),

where :math:`S = \sum_i (z_i - m)(z_i - m)^\top` is a block's centred scatter matrix. (Write
:math:`z_i - m_{a \cup b} = (z_i - m_a) + (m_a - m_{a \cup b})` for the rows of a, expand, use
:math:`\sum_{i \in a} (z_i - m_a) = 0`, and add the same for b: the cross terms vanish and
:math:`n_a (m_a - m)(m_a - m)^\top + n_b (m_b - m)(m_b - m)^\top` is the rank-one term above.) As
:math:`S = R^\top R`, the scatter of the union is that of the stacked rows
:math:`[R_a; R_b; \sqrt{n_a n_b / (n_a + n_b)}\,(m_a - m_b)^\top]`, so its R factor is the R factor of those
P + P + 1 rows: one correction row carries the change of mean, and the data are never re-centred.

Why this method:

* **Stability.** Orthogonal transformations do not change the condition number, so solving from R is as
  accurate as a QR or SVD of the whole matrix (``numpy.linalg.lstsq``): the error grows like
  :math:`\varepsilon\,\kappa(X)` (plus :math:`\varepsilon\,\kappa(X)^2` times the relative residual, the
  problem's own sensitivity). The normal equations :math:`X^\top X w = X^\top y` square the condition number
  before anything is solved, so their error grows like :math:`\varepsilon\,\kappa^2` even when the residual
  is zero: on columns :math:`[x, x + 10^{-7} \text{noise}]` (:math:`\kappa \approx 2 \cdot 10^7`) they keep
  at most two digits where the QR keeps about nine, and on the NIST Longley design (:math:`\kappa \approx 5 \cdot
  10^9` with the intercept column, so :math:`\kappa^2 \varepsilon > 1`: no digit is guaranteed) they miss the
  certified values by about :math:`4 \cdot 10^{-8}` relative where the streaming QR is within
  :math:`10^{-13}` (``tests/test_streaming_least_squares.py`` checks both). Centring on the running mean, rather
  than forming a raw sum of squares, avoids the same cancellation for the intercept.
* **Memory O(P²), independent of N.** The state is P² + P + 1 numbers whatever the number of rows; a chunk of
  n rows costs :math:`O(n P^2)` flops, like a pass of the normal equations, with one chunk in memory at a time.
  (The state is dense: D = 10,000 features hold an 800 MB R.)
* **Mergeable.** :meth:`LeastSquaresState.merge` is associative (and commutative) up to rounding, so DDP ranks
  each stream their shard, all-gather :meth:`LeastSquaresState.to_arrays` and merge; a checkpoint stores the
  same plain arrays. R factors are kept with a non-negative diagonal, which makes R unique for a full-rank
  block, so the result does not depend on the merge tree beyond rounding.

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
D-by-D matrix serves every alpha. Without an intercept the uncentred R is the R factor of
:math:`[R; \sqrt{n}\, m^\top]` (the same identity with the mean of an empty block), so one state serves both.

**The penalty.** ``l2_strength`` is the models' :math:`\lambda_2` (:mod:`lr_lightning.penalties`): each target
solves :math:`\frac{1}{N}\lVert y_k - X w_k - b_k \rVert^2 + \lambda_2 \lVert w_k \rVert^2`, whose minimizer is
that of scikit-learn's ``Ridge(alpha=N * l2_strength)`` (:func:`lr_lightning.penalties.sklearn_ridge_alpha`),
N the state's row count (every rank's, once merged).
The models penalize weights on *standardized* features: pass ``feature_scale`` (for instance
:meth:`LeastSquaresState.feature_std`, the population standard deviation that ``StandardScaler`` uses) and the
penalty falls on :math:`\sigma \odot w_k` while the coefficients come back in original units. Scaling the columns of
R by :math:`1/\sigma` is the R factor of the scaled design, so no second pass is needed.

**float32-stored data.** The arithmetic here is float64 throughout (chunks are converted on the way in), so the
answer is the exact least-squares answer *for the stored numbers*. Data stored in float32 have already been
rounded to about 7 significant digits (relative error :math:`6 \cdot 10^{-8}` per entry), and that perturbation
of the problem moves the solution by up to about :math:`\kappa \cdot 6 \cdot 10^{-8}` relative: harmless for
a well-conditioned standardized design (:math:`\kappa` of 10 to 100), fatal for Longley's raw columns, where a
column like GNP (about 234,289) loses its last digits before any solver sees it. Certified accuracy needs the
data stored in float64; no algorithm recovers digits the storage dropped.

Leave-one-out needs each row's leverage, which R alone does not hold: :class:`LeaveOneOut` makes the second
pass (mergeable too). :func:`generalized_cross_validation` needs only the state.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lr_lightning.closed_form import LeastSquaresSolution, RankDeficiencyWarning

__all__ = [
    "LeastSquaresState",
    "LeaveOneOut",
    "RidgeSelection",
    "StreamingSolution",
    "generalized_cross_validation",
    "leave_one_out",
    "merge_all",
    "ridge_path",
    "solve",
]


def _as_2d(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as float64, (n,) -> (n, 1); anything but 1-D or 2-D, or a non-finite value, is an error."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite: the chunk holds NaN or infinite values")
    return array


def _r_factor(rows: np.ndarray, width: int) -> np.ndarray:
    """Return the R factor (width, width) of ``rows`` (m, width): non-negative diagonal, zero-padded if m < width.

    R is unique up to the signs of its rows; fixing them makes R unique for a full-rank block, so merge trees that
    differ only in order agree to rounding.
    """
    r = np.asarray(np.linalg.qr(rows, mode="r"), dtype=np.float64)  # (min(m, width), width)
    if r.shape[0] < width:
        r = np.vstack([r, np.zeros((width - r.shape[0], width))])
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return r * signs[:, None]


class LeastSquaresState:
    r"""What one pass over rows keeps: the count, the column means and the R factor of the centred block.

    For the rows seen so far, :math:`Z = [X, Y]` of shape (n, P) with P = D + K:

    * ``n_rows``: n;
    * ``mean``: :math:`m` of shape (P,), the column means of Z (the features' means, then the targets');
    * ``r_factor``: :math:`R` of shape (P, P), upper triangular with a non-negative diagonal, with
      :math:`R^\top R = (Z - 1 m^\top)^\top (Z - 1 m^\top)`.

    A new state is empty (n = 0). :meth:`update` folds a chunk in place; :meth:`merge` returns the state of the
    union of two disjoint sets of rows and leaves both alone. Memory is P² + P + 1 float64 numbers whatever n.

    Args:
        n_features: D >= 0.
        n_targets: K >= 1.

    """

    def __init__(self, n_features: int, n_targets: int) -> None:
        if n_features < 0 or n_targets < 1:
            raise ValueError(f"need n_features >= 0 and n_targets >= 1, got {n_features} and {n_targets}")
        self.n_features = int(n_features)
        self.n_targets = int(n_targets)
        width = self.n_features + self.n_targets
        self.n_rows = 0
        self.mean = np.zeros(width)  # (P,)
        self.r_factor = np.zeros((width, width))  # (P, P)

    @property
    def width(self) -> int:
        """P = D + K, the columns of the augmented block [X, Y]."""
        return self.n_features + self.n_targets

    @classmethod
    def from_chunk(cls, features: np.ndarray, targets: np.ndarray) -> LeastSquaresState:
        """Build the state of one chunk: features (n, D) and targets (n,) or (n, K)."""
        x = _as_2d(features, "features")
        y = _as_2d(targets, "targets")
        state = cls(x.shape[1], y.shape[1])
        state.update(x, y)
        return state

    @classmethod
    def from_chunks(cls, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> LeastSquaresState:
        """Build the state of a whole pass, e.g. ``LeastSquaresState.from_chunks(store.chunks("train"))``.

        Raises:
            ValueError: when ``chunks`` is empty (D and K are then unknown: build ``LeastSquaresState(D, K)``).

        """
        state: LeastSquaresState | None = None
        for features, targets in chunks:
            if state is None:
                state = cls.from_chunk(features, targets)
            else:
                state.update(features, targets)
        if state is None:
            raise ValueError("no chunks: build an empty LeastSquaresState(n_features, n_targets) instead")
        return state

    def update(self, features: np.ndarray, targets: np.ndarray) -> None:
        r"""Fold a chunk into this state, in place.

        The chunk is centred on its own mean :math:`m_b` (it is in memory, so this is the accurate two-pass
        centring), then merged with the pairwise update: R becomes the R factor of
        :math:`[R; Z_b - 1 m_b^\top; \sqrt{n n_b / (n + n_b)}\,(m - m_b)^\top]`.

        Args:
            features: X of shape (n_b, D), any float dtype (computed in float64).
            targets: Y of shape (n_b,) or (n_b, K).

        """
        x = _as_2d(features, "features")
        y = _as_2d(targets, "targets")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"features have {x.shape[0]} rows but targets have {y.shape[0]}")
        if x.shape[1] != self.n_features or y.shape[1] != self.n_targets:
            raise ValueError(
                f"the state has {self.n_features} features and {self.n_targets} targets, "
                f"the chunk {x.shape[1]} and {y.shape[1]}"
            )
        n_chunk = x.shape[0]
        if n_chunk == 0:
            return
        block = np.hstack([x, y])  # (n_b, P)
        chunk_mean = block.mean(axis=0)  # (P,)
        self._absorb(n_chunk, chunk_mean, block - chunk_mean)

    def _absorb(self, n_other: int, other_mean: np.ndarray, other_rows: np.ndarray) -> None:
        """Merge in place a block of ``n_other`` rows, its mean (P,) and rows (m, P) whose scatter is its own."""
        n_total = self.n_rows + n_other
        correction = math.sqrt(self.n_rows * n_other / n_total) * (self.mean - other_mean)  # (P,)
        stacked = np.vstack([self.r_factor, other_rows, correction[None, :]])  # (P + m + 1, P)
        self.r_factor = _r_factor(stacked, self.width)
        self.mean = self.mean + (n_other / n_total) * (other_mean - self.mean)
        self.n_rows = n_total

    def merge(self, other: LeastSquaresState) -> LeastSquaresState:
        """Return the state of this state's rows and ``other``'s (disjoint sets of rows); both are left unchanged.

        Associative and commutative up to rounding, so any reduction tree over ranks gives the same answer.
        """
        if (other.n_features, other.n_targets) != (self.n_features, self.n_targets):
            raise ValueError(
                f"cannot merge a state of {self.n_features} features and {self.n_targets} targets with one of "
                f"{other.n_features} and {other.n_targets}"
            )
        merged = self.copy()
        if other.n_rows:
            merged._absorb(other.n_rows, other.mean, other.r_factor)
        return merged

    def copy(self) -> LeastSquaresState:
        """Return an independent copy."""
        clone = LeastSquaresState(self.n_features, self.n_targets)
        clone.n_rows = self.n_rows
        clone.mean = self.mean.copy()
        clone.r_factor = self.r_factor.copy()
        return clone

    def feature_std(self) -> np.ndarray:
        r"""Return the population standard deviation of each feature, (D,): :math:`\lVert R_{:, j} \rVert / \sqrt{n}`.

        The diagonal of :math:`R^\top R` is the centred sum of squares, so this is exact and free. It is the scale
        ``StandardScaler`` (and :mod:`lr_lightning.data.scaling`) uses. A constant column has scale 0: replace it
        by 1 before passing the scales as ``feature_scale``, as :mod:`lr_lightning.data.scaling` does.
        """
        if self.n_rows == 0:
            raise ValueError("the state holds no rows")
        columns = self.r_factor[:, : self.n_features]  # (P, D)
        return np.sqrt(np.sum(columns**2, axis=0) / self.n_rows)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Return plain arrays for all-gather and checkpoints.

        Returns:
            ``n_rows`` (), ``n_features`` () (int64), ``mean`` (P,) and ``r_factor`` (P, P) (float64).

        """
        return {
            "n_rows": np.asarray(self.n_rows, dtype=np.int64),
            "n_features": np.asarray(self.n_features, dtype=np.int64),
            "mean": self.mean.copy(),
            "r_factor": self.r_factor.copy(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.ArrayLike]) -> LeastSquaresState:
        """Rebuild the state :meth:`to_arrays` wrote (NumPy arrays, CPU tensors: anything ``numpy.asarray`` reads)."""
        n_rows = int(np.asarray(arrays["n_rows"]))
        n_features = int(np.asarray(arrays["n_features"]))
        mean = np.asarray(arrays["mean"], dtype=np.float64)
        r_factor = np.asarray(arrays["r_factor"], dtype=np.float64)
        width = mean.shape[0] if mean.ndim == 1 else -1
        if width <= n_features or r_factor.shape != (width, width) or n_rows < 0:
            raise ValueError(
                f"not a LeastSquaresState: n_rows {n_rows}, n_features {n_features}, mean of shape {mean.shape}, "
                f"r_factor of shape {r_factor.shape}"
            )
        state = cls(n_features, width - n_features)
        state.n_rows = n_rows
        state.mean = mean.copy()
        state.r_factor = np.triu(r_factor)
        return state

    def __repr__(self) -> str:
        return f"LeastSquaresState(n_rows={self.n_rows}, n_features={self.n_features}, n_targets={self.n_targets})"


def merge_all(states: Sequence[LeastSquaresState]) -> LeastSquaresState:
    """Merge states pairwise in a balanced tree (e.g. the all-gathered states of every rank, in rank order)."""
    if not states:
        raise ValueError("no states to merge")
    level = list(states)
    while len(level) > 1:
        level = [level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0].copy()


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
            mse_=float(np.sum(rss) / (self.n_rows * rss.shape[0])),
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


def _decompose(
    state: LeastSquaresState, fit_intercept: bool, feature_scale: np.ndarray | None, rcond: float | None
) -> _Decomposition:
    n_rows, n_features = state.n_rows, state.n_features
    if n_rows == 0:
        raise ValueError("the state holds no rows: there is nothing to solve")
    if fit_intercept:
        r = state.r_factor
        x_offset, y_offset = state.mean[:n_features], state.mean[n_features:]
    else:
        # The raw scatter is the centred one plus n m m^T: one more row, sqrt(n) m.
        r = _r_factor(np.vstack([state.r_factor, math.sqrt(n_rows) * state.mean[None, :]]), state.width)
        x_offset, y_offset = np.zeros(n_features), np.zeros(state.n_targets)
    if feature_scale is None:
        scale = np.ones(n_features)
    else:
        scale = np.asarray(feature_scale, dtype=np.float64).reshape(-1)
        if scale.shape != (n_features,) or not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError(f"feature_scale must hold {n_features} finite numbers > 0, got {feature_scale!r}")
    r11 = r[:n_features, :n_features] / scale[None, :]  # (D, D): the R factor of the scaled design
    r12 = r[:n_features, n_features:]  # (D, K)
    r22 = r[n_features:, n_features:]  # (K, K)
    u, s, vt = np.linalg.svd(r11)  # (D, D), (D,), (D, D)
    # numpy.linalg.lstsq's default cut-off on the (N, D) design, which has the same singular values.
    cutoff_ratio = np.finfo(np.float64).eps * max(n_rows, n_features) if rcond is None else rcond
    kept = s > cutoff_ratio * (s[0] if s.size else 0.0)
    return _Decomposition(
        n_rows=n_rows,
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
    feature_scale: np.ndarray | None = None,
    rcond: float | None = None,
) -> StreamingSolution:
    r"""Least squares (``l2_strength=0``) or ridge from a pass's state, in float64.

    Minimizes, for each target k,
    :math:`\frac{1}{N}\lVert y_k - X w_k - b_k \rVert^2 + \lambda_2 \lVert \sigma \odot w_k \rVert^2` — the
    penalty on the weights :math:`\sigma \odot w_k` of the scaled features :math:`X / \sigma` — which is scikit-learn's
    ``Ridge(alpha=N * l2_strength)`` on :math:`X / \sigma` (coefficients returned in original units). With
    ``l2_strength=0`` on a rank-deficient or underdetermined design the weights are the minimum-norm ones (of
    the centred problem when ``fit_intercept``, as :func:`lr_lightning.closed_form.least_squares`), with a
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
        The solution: ``coef_`` (K, D), ``intercept_`` (K,), ``mse_`` (data MSE over rows and targets),
        ``rank_``, ``singular_values_`` (D,) and ``rss_`` (K,).

    Warns:
        RankDeficiencyWarning: when the design has rank below D and ``l2_strength == 0``.

    """
    strength = _check_strength(l2_strength)
    decomposition = _decompose(state, fit_intercept, feature_scale, rcond)
    if strength == 0:
        _warn_if_rank_deficient(decomposition, state.n_features)
    return decomposition.solution(state.n_rows * strength)


def ridge_path(
    state: LeastSquaresState,
    l2_strengths: Sequence[float],
    fit_intercept: bool = True,
    feature_scale: np.ndarray | None = None,
    rcond: float | None = None,
) -> list[StreamingSolution]:
    """:func:`solve` for every strength in ``l2_strengths``, from one SVD of R₁₁ (each further one is O(D² K)).

    Args:
        state: the state of the rows to fit.
        l2_strengths: the models' strengths, each >= 0 (scikit-learn's alpha is N times each).
        fit_intercept: fit an unpenalized intercept.
        feature_scale: as in :func:`solve`.
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
    return [decomposition.solution(state.n_rows * strength) for strength in strengths]


@dataclass(frozen=True)
class RidgeSelection:
    """Cross-validation scores of ridge strengths and the strength they choose.

    Attributes:
        l2_strengths_: the models' strengths, shape (A,).
        alphas_: scikit-learn's equivalent ``Ridge`` alphas, N times the strengths, shape (A,).
        scores_: the criterion per strength (lower is better), averaged over targets, shape (A,).
        scores_per_target_: the criterion per strength and target, shape (A, K).
        best_index_: the index of the first strength with the lowest score (scikit-learn's tie rule).
        l2_strength_: the chosen strength; ``alpha_``: its scikit-learn alpha.

    """

    l2_strengths_: np.ndarray
    alphas_: np.ndarray
    scores_: np.ndarray
    scores_per_target_: np.ndarray
    best_index_: int
    l2_strength_: float
    alpha_: float


def _selection(strengths: np.ndarray, n_rows: int, per_target: np.ndarray) -> RidgeSelection:
    scores = per_target.mean(axis=1)  # (A,)
    best = int(np.argmin(scores))  # the first minimum, like RidgeCV's strict "score > best_score"
    return RidgeSelection(
        l2_strengths_=strengths,
        alphas_=n_rows * strengths,
        scores_=scores,
        scores_per_target_=per_target,
        best_index_=best,
        l2_strength_=float(strengths[best]),
        alpha_=float(n_rows * strengths[best]),
    )


class LeaveOneOut:
    r"""The second pass for exact leave-one-out errors of ridge, as scikit-learn's ``RidgeCV`` computes them.

    With the hat matrix :math:`H_\alpha = X_c (X_c^\top X_c + \alpha I)^{-1} X_c^\top` of the centred (scaled)
    design, row i's leave-one-out error for each target is

    .. math::

        \tilde e_{ik} = \frac{e_{ik}}{1 - h_{ii} - 1/N}, \qquad
        h_{ii} = \sum_j \frac{p_{ij}^2}{s_j^2 + \alpha}, \qquad p_i = V^\top x_{c,i},

    where :math:`e_{ik}` is the residual of the ridge fit on all N rows and the :math:`1/N` is the leverage of
    the unpenalized intercept (orthogonal to the centred columns); without an intercept it is left out. This is
    the exact error of refitting on the other N - 1 rows with the *same* scikit-learn alpha (what ``RidgeCV``
    with ``cv=None`` does), the intercept refitted too; ``feature_scale`` stays fixed, as when ``RidgeCV`` is
    given pre-standardized features. R holds no row's leverage, so this needs a second pass over the same rows
    (in any chunking and order): each chunk is projected on V, and only the sums of squared errors per strength
    and target are kept, so accumulators of different ranks merge by addition.

    Args:
        state: the first pass's state over all the rows (after merging every rank's).
        l2_strengths: the models' strengths, shape (A,), each >= 0 (``RidgeCV`` refuses 0; here 0 is the
            leave-one-out error of least squares, on the numerical rank).
        fit_intercept: as the fit whose strength is being chosen.
        feature_scale: as in :func:`solve`.
        rcond: as in :func:`solve`.

    """

    def __init__(
        self,
        state: LeastSquaresState,
        l2_strengths: Sequence[float],
        fit_intercept: bool = True,
        feature_scale: np.ndarray | None = None,
        rcond: float | None = None,
    ) -> None:
        self.l2_strengths = np.asarray([_check_strength(value) for value in l2_strengths], dtype=np.float64)
        if self.l2_strengths.size == 0:
            raise ValueError("l2_strengths is empty")
        if state.n_rows < 2:
            raise ValueError(f"leave-one-out needs at least 2 rows, the state holds {state.n_rows}")
        self.n_features, self.n_targets = state.n_features, state.n_targets
        self.expected_rows = state.n_rows
        self._decomposition = _decompose(state, fit_intercept, feature_scale, rcond)
        alphas = state.n_rows * self.l2_strengths  # (A,)
        self._factors = np.stack([self._decomposition.filter_factors(alpha) for alpha in alphas])  # (A, D)
        self._weights = self._factors[:, :, None] * self._decomposition.projected_targets[None]  # (A, D, K)
        s = self._decomposition.singular_values
        safe = np.where(self._decomposition.kept, s, 1.0)
        # h_ii = sum_j p_ij^2 * s_j f_j / s_j^2 (= 1 / (s_j^2 + alpha)), on the kept directions.
        self._leverage_weights = self._factors / safe[None, :]  # (A, D)
        self.n_rows = 0
        self.squared_error_sum = np.zeros((alphas.size, self.n_targets))  # (A, K)

    @property
    def fit_intercept(self) -> bool:
        """Whether the errors are those of a fit with an intercept."""
        return self._decomposition.fit_intercept

    def errors(self, features: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Return the leave-one-out errors (not squared) of a chunk's rows, shape (n, K, A).

        Their squares are ``RidgeCV``'s ``cv_results_`` (``store_cv_results=True``).

        Args:
            features: X of shape (n, D): rows of the state's data.
            targets: Y of shape (n,) or (n, K).

        """
        x = _as_2d(features, "features")
        y = _as_2d(targets, "targets")
        if x.shape[0] != y.shape[0] or x.shape[1] != self.n_features or y.shape[1] != self.n_targets:
            raise ValueError(
                f"expected features (n, {self.n_features}) and targets (n, {self.n_targets}), "
                f"got {x.shape} and {y.shape}"
            )
        decomposition = self._decomposition
        projected = decomposition.project(x)  # (n, D)
        centred_targets = y - decomposition.y_offset  # (n, K)
        # Residuals of the fit on all N rows, y_c - p diag(f) B, for every strength at once.
        fitted = np.tensordot(projected, self._weights, axes=([1], [1]))  # (n, D) x (A, D, K) -> (n, A, K)
        residuals = centred_targets[:, None, :] - fitted  # (n, A, K)
        leverage = (projected**2) @ self._leverage_weights.T  # (n, A)
        if decomposition.fit_intercept:
            leverage = leverage + 1.0 / decomposition.n_rows
        return np.transpose(residuals / (1.0 - leverage)[:, :, None], (0, 2, 1))  # (n, K, A)

    def update(self, features: np.ndarray, targets: np.ndarray) -> None:
        """Add a chunk's squared leave-one-out errors to the sums, in place."""
        errors = self.errors(features, targets)  # (n, K, A)
        self.squared_error_sum = self.squared_error_sum + np.sum(errors**2, axis=0).T  # (A, K)
        self.n_rows += errors.shape[0]

    def merge(self, other: LeaveOneOut) -> LeaveOneOut:
        """Return the sums over both passes' disjoint rows; both must come from the same state and strengths."""
        self._check_compatible(other.l2_strengths, other.expected_rows, other.squared_error_sum.shape)
        merged = self._shallow_copy()
        merged.n_rows = self.n_rows + other.n_rows
        merged.squared_error_sum = self.squared_error_sum + other.squared_error_sum
        return merged

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for all-gather: ``n_rows`` (), ``l2_strengths`` (A,), ``squared_error_sum`` (A, K)."""
        return {
            "n_rows": np.asarray(self.n_rows, dtype=np.int64),
            "l2_strengths": self.l2_strengths.copy(),
            "squared_error_sum": self.squared_error_sum.copy(),
        }

    def merge_arrays(self, arrays: Mapping[str, npt.ArrayLike]) -> LeaveOneOut:
        """:meth:`merge` with the :meth:`to_arrays` of another rank's accumulator (same state and strengths)."""
        sums = np.asarray(arrays["squared_error_sum"], dtype=np.float64)
        self._check_compatible(np.asarray(arrays["l2_strengths"], dtype=np.float64), self.expected_rows, sums.shape)
        merged = self._shallow_copy()
        merged.n_rows = self.n_rows + int(np.asarray(arrays["n_rows"]))
        merged.squared_error_sum = self.squared_error_sum + sums
        return merged

    def _check_compatible(self, strengths: np.ndarray, expected_rows: int, shape: tuple[int, ...]) -> None:
        if not np.array_equal(strengths, self.l2_strengths) or expected_rows != self.expected_rows:
            raise ValueError("cannot merge leave-one-out passes of different states or strengths")
        if shape != self.squared_error_sum.shape:
            raise ValueError(f"squared_error_sum has shape {shape}, expected {self.squared_error_sum.shape}")

    def _shallow_copy(self) -> LeaveOneOut:
        return copy.copy(self)  # shares the decomposition; the sums are replaced, never mutated

    def result(self) -> RidgeSelection:
        """Mean squared leave-one-out error per strength (over rows and targets) and the strength it chooses.

        ``scores_`` is minus ``RidgeCV``'s score (``scoring=None``) and ``l2_strength_`` its ``alpha_`` over N.

        Raises:
            ValueError: when the second pass did not see exactly the state's rows.

        """
        if self.n_rows != self.expected_rows:
            raise ValueError(
                f"the leave-one-out pass saw {self.n_rows} rows but the state holds {self.expected_rows}: "
                "pass over exactly the rows of the first pass"
            )
        return _selection(self.l2_strengths, self.expected_rows, self.squared_error_sum / self.n_rows)


def leave_one_out(
    state: LeastSquaresState,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    l2_strengths: Sequence[float],
    fit_intercept: bool = True,
    feature_scale: np.ndarray | None = None,
) -> RidgeSelection:
    """Choose the ridge strength by exact leave-one-out in one second pass over ``chunks`` (the state's rows).

    ``RidgeCV(alphas=N * l2_strengths, fit_intercept=fit_intercept)`` on the same rows picks the same strength
    (:class:`LeaveOneOut` says what is computed; under DDP run it per rank and merge).
    """
    accumulator = LeaveOneOut(state, l2_strengths, fit_intercept=fit_intercept, feature_scale=feature_scale)
    for features, targets in chunks:
        accumulator.update(features, targets)
    return accumulator.result()


def generalized_cross_validation(
    state: LeastSquaresState,
    l2_strengths: Sequence[float],
    fit_intercept: bool = True,
    feature_scale: np.ndarray | None = None,
    rcond: float | None = None,
) -> RidgeSelection:
    r"""Choose the ridge strength by generalized cross-validation (Golub, Heath and Wahba), from the state alone.

    GCV replaces each row's leverage in the leave-one-out formula by the average one:

    .. math::

        \mathrm{GCV}_k(\alpha) = \frac{\mathrm{RSS}_k(\alpha) / N}{\left(1 - \mathrm{df}(\alpha) / N\right)^2},
        \qquad \mathrm{df}(\alpha) = \operatorname{tr} H_\alpha = \sum_j \frac{s_j^2}{s_j^2 + \alpha}
        + [\text{fit\_intercept}],

    which needs only the singular values and the residual sums of squares, so no second pass. (scikit-learn's
    ``RidgeCV`` calls its criterion GCV but computes the exact leave-one-out error: see :class:`LeaveOneOut`.)

    Args:
        state: the state of the rows.
        l2_strengths: the models' strengths, each >= 0.
        fit_intercept: as the fit whose strength is being chosen.
        feature_scale: as in :func:`solve`.
        rcond: as in :func:`solve`.

    Returns:
        ``scores_`` the GCV criterion per strength (averaged over targets) and the strength it chooses.

    """
    strengths = np.asarray([_check_strength(value) for value in l2_strengths], dtype=np.float64)
    if strengths.size == 0:
        raise ValueError("l2_strengths is empty")
    decomposition = _decompose(state, fit_intercept, feature_scale, rcond)
    n_rows = state.n_rows
    per_target = []
    for strength in strengths:
        factors = decomposition.filter_factors(n_rows * strength)
        dof = float(np.sum(decomposition.singular_values * factors)) + int(fit_intercept)
        rss = decomposition.solution(n_rows * strength).rss_  # (K,)
        per_target.append((rss / n_rows) / (1.0 - dof / n_rows) ** 2)
    return _selection(strengths, n_rows, np.stack(per_target))
