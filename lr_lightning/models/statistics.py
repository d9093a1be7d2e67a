"""statsmodels-like attributes of a fitted model: the inference table of its last fit (:mod:`lr_lightning.summary`).

:class:`InferenceStatistics` is a base of every model (:class:`~lr_lightning.models.base.LinearModelBase`). The
:class:`~lr_lightning.summary.InferenceSummary` callback sets the table at the end of ``fit``; nothing is saved in
checkpoints, so a loaded model has none until it is fitted. Layouts are statsmodels', terms ``const`` first:

* linear regression (K targets, p = D + 1 terms, or D without a bias): ``params_``, ``bse_``, ``tvalues_``,
  ``pvalues_`` (K, p) (one row per target, as K statsmodels OLS fits); ``conf_int(alpha)`` (K, p, 2);
* binary logistic (statsmodels ``Logit``): (p,) and ``conf_int`` (p, 2);
* multi-class logistic (``MNLogit``, contrasts against the first class, M = C - 1): (p, M) and ``conf_int``
  (M, p, 2).

When inference was refused (a penalized fit, a fit away from its optimum: the table says why) the statistics
raise :class:`NoInferenceError` with the reason; :meth:`InferenceStatistics.summary` still returns the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lr_lightning.summary_format import InferenceTable

__all__ = ["InferenceStatistics", "NoInferenceError"]


class NoInferenceError(RuntimeError):
    """The model has no valid inference: not fitted (with the summary callback), or refused (the reason given)."""


class InferenceStatistics:
    """Mixin: ``summary()``, ``params_``, ``bse_``, ``tvalues_``, ``pvalues_``, ``conf_int()`` of the last fit."""

    #: The last fit's table, set by :class:`~lr_lightning.summary.InferenceSummary`; ``None`` before.
    _inference_table: InferenceTable | None = None

    @property
    def inference_(self) -> InferenceTable:
        """The last fit's :class:`~lr_lightning.summary_format.InferenceTable` (valid or refused)."""
        if self._inference_table is None:
            raise NoInferenceError(
                f"{type(self).__name__} has no inference table: fit it first (the InferenceSummary callback, which "
                "the models register, computes it at the end of fit; loaded checkpoints do not hold it)"
            )
        return self._inference_table

    def keep_inference(self, table: InferenceTable) -> None:
        """Keep ``table`` as the last fit's (the summary callback calls it at the end of fit)."""
        self._inference_table = table

    def summary(self) -> str:
        """Return the last fit's inference table as text (what ``summary.txt`` holds)."""
        return self.inference_.text()

    def _valid_results(self):  # type: ignore[no-untyped-def]
        table = self.inference_
        if table.results is None:
            raise NoInferenceError(f"no inference for this fit: {table.reason}")
        return table.results

    @property
    def params_(self) -> np.ndarray:
        """The estimated parameters, intercept first (layouts: the module docstring)."""
        return np.asarray(self._valid_results().params)

    @property
    def bse_(self) -> np.ndarray:
        """The parameters' standard errors (NaN for aliased terms)."""
        return np.asarray(self._valid_results().bse)

    @property
    def tvalues_(self) -> np.ndarray:
        """The statistics params / bse: t (nonrobust OLS) or z."""
        return np.asarray(self._valid_results().tvalues)

    @property
    def pvalues_(self) -> np.ndarray:
        """Two-sided p-values of the t (or z) statistics."""
        return np.asarray(self._valid_results().pvalues)

    def conf_int(self, alpha: float | None = None) -> np.ndarray:
        """Confidence intervals at level 1 - alpha (default: the summary's ``alpha``); ``[..., 0]`` lower."""
        results = self._valid_results()
        return np.asarray(results.conf_int(self.inference_.alpha if alpha is None else alpha))
