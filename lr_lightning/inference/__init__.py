r"""Statistical inference for the streamed least-squares fits: statsmodels' OLS summary without the data in memory.

From a :class:`~lr_lightning.streaming.LeastSquaresState` (one pass), per target of a multi-output regression:
the coefficients with their standard errors, t and p-values and confidence intervals, R², adjusted R², the
overall F test, the log-likelihood, AIC and BIC (:func:`ols_results`, nonrobust, no further pass), the
heteroskedasticity-robust HC0 to HC3 versions of the same from one more mergeable pass (:class:`HCAccumulator`),
and the mean's confidence and the observation's prediction intervals for new rows (:func:`prediction_intervals`).
NumPy arrays in and out, float64; no Lightning::

    state = LeastSquaresState.from_chunks(store.chunks("train"))
    fit = fit_ols(state, fit_intercept=True)
    summary = ols_results(fit)                       # nonrobust
    robust = HCAccumulator(fit)
    for features, targets in store.chunks("train"):  # any order, any split across processes (merge / to_vector)
        robust.update(features, targets)
    summary_hc3 = ols_results(fit, "HC3", robust)

* :mod:`~lr_lightning.inference.design`: :func:`fit_ols`, :class:`OLSFit` (the design's R factor, aliased columns).
* :mod:`~lr_lightning.inference.robust`: :class:`HCAccumulator`, the robust pass.
* :mod:`~lr_lightning.inference.linear`: :func:`ols_results`, :class:`OLSResults`, :func:`prediction_intervals`.
"""

from lr_lightning.inference.design import ALIAS_RTOL, OLSFit, fit_ols
from lr_lightning.inference.linear import (
    COV_TYPES,
    OLSResults,
    PredictionIntervals,
    ols_results,
    prediction_intervals,
)
from lr_lightning.inference.robust import HC_TYPES, HCAccumulator

__all__ = [
    "ALIAS_RTOL",
    "COV_TYPES",
    "HC_TYPES",
    "HCAccumulator",
    "OLSFit",
    "OLSResults",
    "PredictionIntervals",
    "fit_ols",
    "ols_results",
    "prediction_intervals",
]
