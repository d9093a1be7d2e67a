r"""The one further streaming pass for heteroskedasticity-robust covariances (HC0 to HC3), mergeable across processes.

statsmodels' definitions, with :math:`\tilde X` the design (n, p), :math:`e_i` the residuals of target k and
:math:`h_{ii} = \tilde x_i^\top (\tilde X^\top \tilde X)^{-1} \tilde x_i` the leverages:

.. math::

    \mathrm{HC}j = (\tilde X^\top \tilde X)^{-1} \Big(\sum_i \omega_i \tilde x_i \tilde x_i^\top\Big)
        (\tilde X^\top \tilde X)^{-1},
    \qquad \omega_i = e_i^2 \;(\mathrm{HC0}),\quad \tfrac{n}{n - p}\, e_i^2 \;(\mathrm{HC1}),\quad
        \tfrac{e_i^2}{1 - h_{ii}} \;(\mathrm{HC2}),\quad \tfrac{e_i^2}{(1 - h_{ii})^2} \;(\mathrm{HC3}),

p the rank (the constant counted). With :math:`(\tilde X^\top \tilde X)^{-1} = G G^\top`, :math:`G = T R_c^{-1}`
(:mod:`lr_lightning.inference.design`) and :math:`\tilde x_i = T^{-\top} \tilde x_{c,i}` (the row centred on the
design's centre), the sandwich is :math:`G M G^\top` with the *whitened* meat

.. math::

    M = \sum_i \omega_i a_i a_i^\top, \qquad a_i = R_c^{-\top} \tilde x_{c,i}, \qquad h_{ii} = \lVert a_i \rVert^2,

where the :math:`a_i` are the rows of the design's thin Q factor (:math:`\sum_i a_i a_i^\top = I`). A weighted fit
is statsmodels' ``WLS(..., weights=w).fit(cov_type=...)``, the above on the whitened rows: :math:`a_i` and
:math:`e_i` scaled by :math:`\sqrt{w_i}`, so :math:`\omega_i` has :math:`w_i e_i^2` and :math:`h_{ii} = w_i
\lVert a_i \rVert^2`, n the number of rows of positive weight (rows of weight 0 add nothing). So the pass
needs only :math:`R_c`, the centre and the coefficients (an :class:`~lr_lightning.inference.design.OLSFit`), and
accumulates plain sums of positive semi-definite terms, p' x p' per target and weighting, with no cancellation:
states merge by addition (:meth:`HCAccumulator.merge`), or as flat vectors summed by an all-reduce
(:meth:`HCAccumulator.to_vector`, :meth:`HCAccumulator.from_vector`). HC1 is HC0 rescaled, so three sums serve the
four covariances. A chunk of m rows costs two triangular solves and O(m p'² K) flops.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from lr_lightning.inference.design import OLSFit
from lr_lightning.streaming.state import _row_weights

__all__ = ["HC_TYPES", "HCAccumulator"]

#: The heteroskedasticity-robust covariance types, statsmodels' names.
HC_TYPES = ("HC0", "HC1", "HC2", "HC3")

#: The weighting each type's meat is summed with (HC1 reuses HC0's).
_WEIGHTING = {"HC0": "HC0", "HC1": "HC0", "HC2": "HC2", "HC3": "HC3"}


class HCAccumulator:
    r"""The sums of the robust pass over the fitted rows: the whitened meats, the count and the residual sums.

    Feed it every row the state was built from (in the same units, shifted the same way), a chunk at a time,
    in any order and split in any way across processes; then :func:`~lr_lightning.inference.linear.ols_results`
    reads :meth:`meat`. Per target k and weighting: :math:`M_k = \sum_i \omega_{ik} a_i a_i^\top` (p', p').

    Args:
        fit: the fit (from the state of the same rows) whose residuals and leverages the pass weighs.
        cov_types: the types wanted later, a subset of :data:`HC_TYPES` (HC0 and HC1 share one sum).

    """

    def __init__(self, fit: OLSFit, cov_types: Iterable[str] = HC_TYPES) -> None:
        wanted = list(cov_types)
        unknown = [name for name in wanted if name not in _WEIGHTING]
        if unknown or not wanted:
            raise ValueError(f"cov_types must be a non-empty subset of {HC_TYPES}, got {wanted}")
        self.fit = fit
        self.weightings = tuple(sorted({_WEIGHTING[name] for name in wanted}))
        self.n_rows = 0
        self.ssr = np.zeros(fit.n_targets)  # (K,), a check that the pass saw the fitted rows
        self.sums = {name: np.zeros((fit.n_targets, fit.rank, fit.rank)) for name in self.weightings}

    def update(self, features: npt.ArrayLike, targets: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> None:
        """Add a chunk's rows, in place: features (m, D), targets (m,) or (m, K) and weights (m,), as fed to the state.

        ``weights`` None: every row weighs 1. Rows of weight 0 are left out, as the state leaves them out.
        """
        fit = self.fit
        centred_x = fit.centred_features(features)  # (m, D)
        centred_y = fit.centred_targets(targets)  # (m, K)
        if centred_x.shape[0] != centred_y.shape[0]:
            raise ValueError(f"features have {centred_x.shape[0]} rows but targets have {centred_y.shape[0]}")
        if centred_x.shape[0] == 0:
            return
        whitened = fit.whitened_rows(features)  # (m, p')
        if weights is not None:
            # The rows of the whitened design and targets, sqrt(w) [x, y], of positive weight.
            root = np.sqrt(_row_weights(weights, centred_x.shape[0]))[:, None]  # (m, 1)
            positive = root[:, 0] > 0
            root = root[positive]
            centred_x, centred_y, whitened = (
                centred_x[positive] * root,
                centred_y[positive] * root,
                whitened[positive] * root,
            )
        # Centred on the design's centre, the centred intercept is 0 (y - b - W x = y_c - W x_c).
        residuals = centred_y - centred_x @ fit.coef.T  # (m, K)
        complement = 1.0 - np.sum(whitened**2, axis=1)  # (m,), 1 - h_ii
        squared = residuals**2
        factors = {"HC0": np.ones_like(complement), "HC2": 1.0 / complement, "HC3": 1.0 / complement**2}
        for name in self.weightings:
            omega = squared * factors[name][:, None]  # (m, K)
            for k in range(fit.n_targets):
                self.sums[name][k] += (whitened * omega[:, k : k + 1]).T @ whitened
        self.n_rows += int(centred_x.shape[0])
        self.ssr += np.sum(squared, axis=0)

    def merge(self, other: HCAccumulator) -> HCAccumulator:
        """Return the sums of the union of two disjoint sets of rows (the same fit and types); both unchanged."""
        if other.weightings != self.weightings or other.fit.rank != self.fit.rank:
            raise ValueError("cannot merge accumulators of different fits or covariance types")
        merged = HCAccumulator(self.fit, self.weightings)
        merged.n_rows = self.n_rows + other.n_rows
        merged.ssr = self.ssr + other.ssr
        merged.sums = {name: self.sums[name] + other.sums[name] for name in self.weightings}
        return merged

    def meat(self, cov_type: str) -> np.ndarray:
        r"""Return the whitened meat (K, p', p') of ``cov_type`` (HC1: HC0's, rescaled by :math:`n/(n-p)`).

        Raises:
            ValueError: when the pass did not see the fit's n rows, or did not sum this type's weighting.

        """
        if cov_type not in _WEIGHTING or _WEIGHTING[cov_type] not in self.sums:
            raise ValueError(f"{cov_type} was not accumulated: this pass summed {self.weightings}")
        fit = self.fit
        if self.n_rows != fit.n_rows:
            raise ValueError(f"the robust pass saw {self.n_rows} rows, the fit {fit.n_rows}: feed it every fitted row")
        tolerance = 1e-6 * np.maximum(fit.ssr, 1e-12 * fit.centered_tss)
        if np.any(np.abs(self.ssr - fit.ssr) > tolerance):
            warnings.warn(
                f"the robust pass's residual sums of squares {self.ssr} differ from the fit's {fit.ssr}: "
                "were the same rows, shifted the same way, fed to both?",
                stacklevel=2,
            )
        meat = self.sums[_WEIGHTING[cov_type]]
        return meat * (fit.n_rows / fit.df_resid) if cov_type == "HC1" else meat.copy()

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Return ``n_rows`` () int64, ``ssr`` (K,) and one (K, p', p') sum per weighting (``HC0``, ...)."""
        arrays = {"n_rows": np.asarray(self.n_rows, dtype=np.int64), "ssr": self.ssr.copy()}
        arrays.update({name: total.copy() for name, total in self.sums.items()})
        return arrays

    @classmethod
    def from_arrays(cls, fit: OLSFit, arrays: Mapping[str, npt.ArrayLike]) -> HCAccumulator:
        """Rebuild the accumulator :meth:`to_arrays` wrote, for the same ``fit``."""
        names = [name for name in ("HC0", "HC2", "HC3") if name in arrays]
        accumulator = cls(fit, names)
        accumulator.n_rows = int(np.asarray(arrays["n_rows"]))
        accumulator.ssr = np.asarray(arrays["ssr"], dtype=np.float64).copy()
        for name in names:
            accumulator.sums[name] = np.asarray(arrays[name], dtype=np.float64).reshape(
                fit.n_targets, fit.rank, fit.rank
            )
        return accumulator

    def to_vector(self) -> np.ndarray:
        """Return every sum as one float64 vector, [n, ssr, sums...]: the sum of the ranks' vectors is the merge."""
        parts = [np.asarray([float(self.n_rows)]), self.ssr] + [self.sums[name].ravel() for name in self.weightings]
        return np.concatenate(parts)

    @classmethod
    def from_vector(cls, fit: OLSFit, vector: npt.ArrayLike, cov_types: Iterable[str] = HC_TYPES) -> HCAccumulator:
        """Rebuild from :meth:`to_vector` (or the sum of several), for the same ``fit`` and ``cov_types``."""
        accumulator = cls(fit, cov_types)
        values = np.asarray(vector, dtype=np.float64).reshape(-1)
        size = fit.n_targets * fit.rank * fit.rank
        expected = 1 + fit.n_targets + size * len(accumulator.weightings)
        if values.shape != (expected,):
            raise ValueError(f"expected {expected} numbers for this fit and these types, got {values.shape}")
        accumulator.n_rows = round(float(values[0]))
        accumulator.ssr = values[1 : 1 + fit.n_targets].copy()
        start = 1 + fit.n_targets
        for name in accumulator.weightings:
            accumulator.sums[name] = values[start : start + size].reshape(fit.n_targets, fit.rank, fit.rank).copy()
            start += size
        return accumulator

    def __repr__(self) -> str:
        return f"HCAccumulator(n_rows={self.n_rows}, weightings={self.weightings})"
