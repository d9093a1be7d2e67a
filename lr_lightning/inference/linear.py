r"""statsmodels' OLS summary from a streaming state: coefficients' tests, fit statistics and prediction intervals.

For each target k, the same numbers as ``statsmodels.api.OLS(y_k, add_constant(X)).fit(cov_type=...)`` (or
``OLS(y_k, X, hasconst=False)`` without an intercept), from an :class:`~lr_lightning.inference.design.OLSFit`
(:func:`~lr_lightning.inference.design.fit_ols`, no pass over the data) and, for HC0 to HC3, one further pass
(:class:`~lr_lightning.inference.robust.HCAccumulator`). With n observations, rank p (the constant counted),
:math:`k_c` = 1 with an intercept and 0 without, the residual sum of squares SSR, the total sum of squares TSS
(about the mean with an intercept, about 0 without: statsmodels' uncentred convention) and ESS = TSS - SSR:

* ``df_resid`` = n - p, ``df_model`` = p - :math:`k_c`, ``scale`` = :math:`\hat\sigma^2` = SSR / df_resid
  (``resid_std_err`` is its square root);
* ``cov_params`` = :math:`\hat\sigma^2 (\tilde X^\top \tilde X)^{-1}` (nonrobust) or the sandwich of
  :mod:`~lr_lightning.inference.robust`; ``bse`` its diagonal's square root, ``tvalues`` = params / bse,
  ``pvalues`` = :math:`2 P(T > |t|)`, T Student's t with df_resid degrees of freedom (standard normal when
  ``use_t`` is False: statsmodels' default for the robust types), ``conf_int(alpha)`` = params :math:`\pm
  q_{1-\alpha/2}` bse with the same distribution's quantile;
* ``rsquared`` = ESS / TSS, ``rsquared_adj`` = 1 - (n - :math:`k_c`) / df_resid (1 - R²);
* ``fvalue``, the overall F test that every slope (every coefficient but the constant) is 0: nonrobust,
  (ESS / df_model) / (SSR / df_resid); robust, the Wald statistic :math:`w^\top V_w^{-1} w / J`, V the robust
  covariance of the tested coefficients w and J their number; ``f_pvalue`` from F(J, df_resid) (J = df_model);
* ``llf`` = :math:`-\frac n2 (\log 2\pi + \log(\mathrm{SSR}/n) + 1) + \frac12 \sum_i \log w_i`, ``aic`` =
  -2 llf + 2p, ``bic`` = -2 llf + p log n.

**Weighted least squares.** From a weighted state the fit is statsmodels' ``WLS(y_k, X~, weights=w)``
(:mod:`~lr_lightning.inference.design`): SSR, ESS and both TSS are the weighted sums of squares statsmodels' WLS
reports (the centred TSS about the weighted mean), n the number of rows of positive weight, and the
log-likelihood has the term :math:`\frac12 \sum_i \log w_i` (0 without weights), as statsmodels' has.

Aliased coefficients (:mod:`~lr_lightning.inference.design`) are 0 with NaN standard errors, statistics and
intervals, and NaN rows and columns in ``cov_params``. All fields are NumPy arrays (or plain scalars) so
:meth:`OLSResults.to_arrays` can store them as tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
from scipy import stats

from lr_lightning.inference.design import OLSFit
from lr_lightning.inference.robust import HC_TYPES, HCAccumulator

__all__ = ["COV_TYPES", "OLSResults", "PredictionIntervals", "ols_results", "prediction_intervals"]

#: The covariance types :func:`ols_results` computes, statsmodels' names.
COV_TYPES = ("nonrobust", *HC_TYPES)


def _quantile(alpha: float, df: float, use_t: bool) -> float:
    r"""Return the two-sided :math:`1 - \alpha` quantile of Student's t (df) or of the standard normal."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return float(stats.t.ppf(1.0 - alpha / 2.0, df) if use_t else stats.norm.ppf(1.0 - alpha / 2.0))


@dataclass(frozen=True)
class OLSResults:
    """The summary of K regressions on one design, statsmodels' ``RegressionResults`` vocabulary.

    Per parameter, (K, p) with p = D + 1 (the intercept first, statsmodels' ``add_constant`` order) or D without
    an intercept: ``params``, ``bse``, ``tvalues``, ``pvalues``; ``cov_params_default`` (K, p, p). Per target,
    (K,): ``rsquared``, ``rsquared_adj``, ``fvalue``, ``f_pvalue``, ``scale``, ``ssr``, ``ess``, ``centered_tss``,
    ``uncentered_tss``, ``mse_model``, ``mse_resid``, ``llf``, ``aic``, ``bic``. Shared: ``nobs``, ``df_model``,
    ``df_resid``, ``k_constant``, ``cov_type``, ``use_t`` and ``aliased`` (p,) bool. Formulas: the module docstring.
    """

    params: np.ndarray
    bse: np.ndarray
    tvalues: np.ndarray
    pvalues: np.ndarray
    cov_params_default: np.ndarray
    rsquared: np.ndarray
    rsquared_adj: np.ndarray
    fvalue: np.ndarray
    f_pvalue: np.ndarray
    scale: np.ndarray
    ssr: np.ndarray
    ess: np.ndarray
    centered_tss: np.ndarray
    uncentered_tss: np.ndarray
    mse_model: np.ndarray
    mse_resid: np.ndarray
    llf: np.ndarray
    aic: np.ndarray
    bic: np.ndarray
    aliased: np.ndarray
    nobs: float
    df_model: float
    df_resid: float
    k_constant: int
    cov_type: str
    use_t: bool

    @property
    def resid_std_err(self) -> np.ndarray:
        r"""(K,), the residual standard error :math:`\hat\sigma = \sqrt{\mathrm{SSR} / \mathrm{df\_resid}}`."""
        return np.sqrt(self.scale)

    def cov_params(self) -> np.ndarray:
        """Return the parameters' covariance (K, p, p) of ``cov_type``."""
        return self.cov_params_default.copy()

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        r"""Return the (1 - alpha) confidence intervals (K, p, 2): params :math:`\mp q_{1-\alpha/2}` bse.

        q is Student's t quantile with df_resid degrees of freedom, or the standard normal's when ``use_t`` is
        False (statsmodels' ``conf_int``); ``[..., 0]`` the lower bounds, ``[..., 1]`` the upper.
        """
        half = _quantile(alpha, self.df_resid, self.use_t) * self.bse
        return np.stack([self.params - half, self.params + half], axis=-1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Return every field as a NumPy array (``cov_type`` as its int64 index in :data:`COV_TYPES`)."""
        arrays = {item.name: np.asarray(getattr(self, item.name)).copy() for item in fields(self)}
        arrays["cov_type"] = np.asarray(COV_TYPES.index(self.cov_type), dtype=np.int64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.ArrayLike]) -> OLSResults:
        """Rebuild the results :meth:`to_arrays` wrote (NumPy arrays or CPU tensors)."""
        special = ("aliased", "nobs", "df_model", "df_resid", "k_constant", "cov_type", "use_t")
        floats = {
            item.name: np.asarray(arrays[item.name], dtype=np.float64)
            for item in fields(cls)
            if item.name not in special
        }
        return cls(
            **floats,
            aliased=np.asarray(arrays["aliased"], dtype=bool),
            nobs=float(np.asarray(arrays["nobs"])),
            df_model=float(np.asarray(arrays["df_model"])),
            df_resid=float(np.asarray(arrays["df_resid"])),
            k_constant=int(np.asarray(arrays["k_constant"])),
            cov_type=COV_TYPES[int(np.asarray(arrays["cov_type"]))],
            use_t=bool(np.asarray(arrays["use_t"])),
        )


def _expand(kept: np.ndarray, values: np.ndarray, axes: int) -> np.ndarray:
    """Spread (K, p', ...) over the p positions of ``kept`` (p,) on the last ``axes`` axes, NaN elsewhere."""
    size = kept.shape[0]
    full = np.full(values.shape[: values.ndim - axes] + (size,) * axes, np.nan)
    index = np.flatnonzero(kept)
    if axes == 1:
        full[..., index] = values
    else:
        full[..., index[:, None], index[None, :]] = values
    return full


def _wald_slopes(fit: OLSFit, meat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Return the robust Wald statistics (K,) that every slope is 0, divided by J, and J (K,).

    The slopes' covariance is :math:`V = R_{11}^{-1} M_{ss} R_{11}^{-\top}` (the slope block of G is
    :math:`R_{11}^{-1}`, with or without an intercept), so :math:`w^\top V^{+} w = u^\top M_{ss}^{+} u` with
    :math:`u = R_{11} w`: the ill-conditioned covariance is never inverted. J is the rank of :math:`M_{ss}`, the
    number of slopes unless the meat is singular (statsmodels: the rank of V, through ``pinv``).
    """
    start = fit.k_constant
    r11 = fit.r_design[start:, start:]  # (D', D')
    statistics = np.full(fit.n_targets, np.nan)
    ranks = np.zeros(fit.n_targets)
    if r11.shape[0] == 0:
        return statistics, ranks
    for k in range(fit.n_targets):
        projected = r11 @ fit.coef[k, ~fit.aliased]  # (D',)
        block = meat[k, start:, start:]  # (D', D')
        ranks[k] = np.linalg.matrix_rank(block, hermitian=True)
        if ranks[k] > 0:
            statistics[k] = projected @ np.linalg.pinv(block, hermitian=True) @ projected / ranks[k]
    return statistics, ranks


def ols_results(
    fit: OLSFit,
    cov_type: str = "nonrobust",
    robust: HCAccumulator | None = None,
    use_t: bool | None = None,
) -> OLSResults:
    """Return the summary of every target's regression (the module docstring gives the statistics).

    Args:
        fit: the fit, :func:`~lr_lightning.inference.design.fit_ols`.
        cov_type: one of :data:`COV_TYPES`.
        robust: the robust pass over the fitted rows, required for HC0 to HC3 (ignored for nonrobust).
        use_t: Student's t (True) or the normal (False) for ``pvalues`` and ``conf_int``; None for statsmodels'
            default, t for nonrobust and the normal for the robust types. The F test uses F(J, df_resid) always.

    """
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type must be one of {COV_TYPES}, got {cov_type!r}")
    use_t = cov_type == "nonrobust" if use_t is None else bool(use_t)
    n_rows, df_resid, df_model = float(fit.n_rows), fit.df_resid, fit.df_model
    inverse = fit.design_inverse()  # G (p', p')
    scale = fit.ssr / df_resid  # (K,)
    if cov_type == "nonrobust":
        meat = scale[:, None, None] * np.eye(fit.rank)  # the nonrobust covariance is sigma² G G^T
    elif robust is None:
        raise ValueError(f"{cov_type} needs the robust pass: pass robust=HCAccumulator(fit) fed every fitted row")
    else:
        meat = robust.meat(cov_type)  # (K, p', p')
    covariance = inverse @ meat @ inverse.T  # (K, p', p')
    kept = fit.param_kept
    params = fit.params
    cov_full = _expand(kept, covariance, 2)  # (K, p, p)
    bse = np.sqrt(np.diagonal(cov_full, axis1=1, axis2=2))  # (K, p)
    tvalues = params / bse
    distribution = stats.t(df_resid) if use_t else stats.norm()
    pvalues = 2.0 * distribution.sf(np.abs(tvalues))
    tss = fit.centered_tss if fit.fit_intercept else fit.uncentered_tss
    with np.errstate(divide="ignore", invalid="ignore"):
        mse_model = fit.ess / df_model if df_model > 0 else np.full(fit.n_targets, np.nan)
        mse_resid = scale
        if cov_type == "nonrobust":
            fvalue, df_num = mse_model / mse_resid, np.full(fit.n_targets, df_model)
        else:
            fvalue, df_num = _wald_slopes(fit, meat)
        f_pvalue = np.where(df_num > 0, stats.f.sf(fvalue, np.maximum(df_num, 1.0), df_resid), np.nan)
        rsquared = fit.ess / tss
        rsquared_adj = 1.0 - (n_rows - fit.k_constant) / df_resid * (fit.ssr / tss)
    llf = -n_rows / 2.0 * (np.log(2.0 * np.pi) + np.log(fit.ssr / n_rows) + 1.0) + 0.5 * fit.log_weight_sum
    n_params = df_model + fit.k_constant
    return OLSResults(
        params=params,
        bse=bse,
        tvalues=tvalues,
        pvalues=pvalues,
        cov_params_default=cov_full,
        rsquared=rsquared,
        rsquared_adj=rsquared_adj,
        fvalue=np.asarray(fvalue, dtype=np.float64),
        f_pvalue=np.asarray(f_pvalue, dtype=np.float64),
        scale=scale,
        ssr=fit.ssr.copy(),
        ess=fit.ess.copy(),
        centered_tss=fit.centered_tss.copy(),
        uncentered_tss=fit.uncentered_tss.copy(),
        mse_model=mse_model,
        mse_resid=mse_resid,
        llf=llf,
        aic=-2.0 * llf + 2.0 * n_params,
        bic=-2.0 * llf + np.log(n_rows) * n_params,
        aliased=~kept,
        nobs=n_rows,
        df_model=df_model,
        df_resid=df_resid,
        k_constant=fit.k_constant,
        cov_type=cov_type,
        use_t=use_t,
    )


@dataclass(frozen=True)
class PredictionIntervals:
    r"""statsmodels' ``get_prediction(exog).summary_frame(alpha)`` for m new rows and K targets, each (m, K).

    ``mean`` :math:`\hat y_0 = \tilde x_0^\top \beta`; ``mean_se`` :math:`\hat\sigma \lVert a_0 \rVert` with
    :math:`a_0 = R_c^{-\top} \tilde x_{c,0}` (that is :math:`\sqrt{\tilde x_0^\top \hat\sigma^2 (\tilde X^\top
    \tilde X)^{-1} \tilde x_0}`); ``mean_ci_*`` :math:`\hat y_0 \mp q\,` mean_se and ``obs_ci_*`` :math:`\hat y_0
    \mp q \sqrt{\text{mean\_se}^2 + \hat\sigma^2}`, q Student's t quantile :math:`q_{1-\alpha/2}` with df_resid
    degrees of freedom. For a weighted fit, statsmodels' WLS ``get_prediction`` with its default weight 1 for the
    new rows: :math:`\tilde X^\top W \tilde X` in place of :math:`\tilde X^\top \tilde X` and :math:`\hat\sigma^2`
    the weighted SSR over df_resid, the variance of an observation of weight 1.
    """

    mean: np.ndarray
    mean_se: np.ndarray
    mean_ci_lower: np.ndarray
    mean_ci_upper: np.ndarray
    obs_ci_lower: np.ndarray
    obs_ci_upper: np.ndarray


def prediction_intervals(fit: OLSFit, features: npt.ArrayLike, alpha: float = 0.05) -> PredictionIntervals:
    """Return the mean's confidence and the observation's prediction intervals at level 1 - alpha, nonrobust.

    Args:
        fit: the fit.
        features: new rows X0 (m, D) in original units (the shift does not apply). Aliased features' values are
            ignored: the rows are taken to satisfy the fitted rows' linear dependencies (statsmodels' minimum-norm
            predictions differ for rows that do not).
        alpha: 1 - the level; 0.05 for 95% intervals.

    """
    quantile = _quantile(alpha, fit.df_resid, True)
    sigma = np.sqrt(fit.ssr / fit.df_resid)  # (K,)
    mean = fit.centred_features(features, fed=False) @ fit.coef.T + (
        fit.center[fit.n_features :] if fit.fit_intercept else 0.0
    )  # (m, K): b + W x = m_y + W (x - m_x) with an intercept
    leverage_norm = np.linalg.norm(fit.whitened_rows(features, fed=False), axis=1)  # (m,)
    mean_se = leverage_norm[:, None] * sigma[None, :]  # (m, K)
    obs_se = np.sqrt(mean_se**2 + sigma[None, :] ** 2)
    return PredictionIntervals(
        mean=mean,
        mean_se=mean_se,
        mean_ci_lower=mean - quantile * mean_se,
        mean_ci_upper=mean + quantile * mean_se,
        obs_ci_lower=mean - quantile * obs_se,
        obs_ci_upper=mean + quantile * obs_se,
    )
