r"""Choosing the ridge strength: exact leave-one-out (a second pass) or generalized cross-validation (the state).

Leave-one-out needs each row's leverage, which R alone does not hold: :class:`LeaveOneOut` makes the second
pass over the same rows (mergeable by addition, so each DDP rank passes over its shard).
:func:`generalized_cross_validation` replaces each leverage by the average one and needs only the state. Both
score every strength from the one SVD of :math:`R_{11}` that :func:`lr_lightning.streaming.solve` uses.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lr_lightning.streaming.solve import _check_strength, _decompose
from lr_lightning.streaming.state import LeastSquaresState, _as_2d

__all__ = ["LeaveOneOut", "RidgeSelection", "generalized_cross_validation", "leave_one_out"]


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
