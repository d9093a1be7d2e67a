r"""Statistical inference for unpenalized logistic regression from streamed sums, as statsmodels' Logit and MNLogit.

Pure maths (NumPy, SciPy), no Lightning. Input: one :class:`~lr_lightning.streaming.logistic_sums.NewtonSums`
pass (merged over chunks and ranks) at the fitted parameters theta of the model of
:mod:`lr_lightning.streaming.newton_logistic` (one logit for 2 classes, C softmax logits for C >= 3, on
standardized features :math:`(x - \mu) / \sigma`), and the class counts :math:`n_c` (another mergeable sum:
:func:`class_counts`). The sums hold the summed log-loss :math:`-\ell(\theta)` and its summed Hessian, which at the
maximum likelihood estimate is the observed (here also expected) Fisher information :math:`I`.

* **Binary** (statsmodels ``Logit(y, add_constant(X))``): params (K,) = [const, beta_1 .. beta_D] in original
  units, K = D + 1; covariance :math:`J I^{-1} J^\top` (K, K), J the linear map from the standardized
  parametrization (:func:`~lr_lightning.inference.logistic_contrasts.original_units_map`).
* **Multi-class** (``MNLogit``): the full softmax is not identifiable without a penalty, so the parameters are
  the contrasts :math:`\beta_c - \beta_0` against the first class, params (K, C - 1) (column c - 1 is class c),
  covariance ((C - 1) K, (C - 1) K) class-major (statsmodels' ``cov_params`` order), from the information of the
  contrasts: the Hessian without its first class block
  (:func:`~lr_lightning.inference.logistic_contrasts.contrasts`).

Then, as statsmodels (``statsmodels/discrete/discrete_model.py``): bse :math:`= \sqrt{\mathrm{diag\,cov}}`,
tvalues :math:`z = \hat\beta / \mathrm{se}` (normal: statsmodels' name), pvalues :math:`2\,\Phi(-|z|)`, conf_int
:math:`\hat\beta \pm \Phi^{-1}(1 - \alpha/2)\,\mathrm{se}`; llf :math:`= -\sum_i w_i \ell_i`, llnull
:math:`= \sum_c n_c \log(n_c / N)` (the intercept-only maximum), prsquared :math:`= 1 - \mathrm{llf}/\mathrm{llnull}`
(McFadden), llr :math:`= 2 (\mathrm{llf} - \mathrm{llnull})` with llr_pvalue its :math:`\chi^2_{\text{df\_model}}`
tail; with r the number of non-aliased terms and M = C - 1 (1 binary): nobs = N, df_model = (r - 1) M, df_resid =
N - r M, aic :math:`= -2\,\mathrm{llf} + 2 r M`, bic :math:`= -2\,\mathrm{llf} + \log(N)\, r M`.

**Row weights** :math:`w_i \ge 0` (sums taken with ``weights``; all 1 otherwise) weigh every row's
log-likelihood, :math:`\ell(\theta) = \sum_i w_i \log p_{i y_i}`, as statsmodels' ``GLM(y, X,
family=Binomial(), freq_weights=w)`` (binary; ``var_weights=w`` gives the same params, bse and llf, the scale
being fixed at 1): :math:`n_c` are then the weighted class sums :math:`\sum_{y_i = c} w_i` and N is
:math:`N_w = \sum_i w_i`. So every statistic above (nobs, df_resid, bic included) follows the ``freq_weights``
convention, under which integer weights give exactly the statistics of the rows repeated that many times
(``var_weights`` would count nobs, df_resid and bic's :math:`\log N` in rows instead).

**Validity** (:func:`check_inference`): the formulas hold at the unpenalized maximum only. Refused: a penalized fit,
separable rows (no maximum), parameters whose relative gap estimate, the Newton decrement :math:`\lambda^2 / 2` over the
(weighted) mean log-loss, exceeds ``tol`` (:math:`\sqrt{N \lambda^2}` is, to leading order, the parameters' distance to
the maximum in standard-error units, N being :math:`N_w` with weights). Flagged: aliased terms (singular information),
whose params, bse and the rest are NaN, the others being the fit without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from lr_lightning.errors import InputError
from lr_lightning.inference.logistic_contrasts import (
    contrasts,
    covariance,
    fold_aliased,
    kept_terms,
    original_units_map,
    to_original,
)
from lr_lightning.streaming.logistic_sums import NewtonSums
from lr_lightning.streaming.newton_logistic import newton_step

__all__ = [
    "CONVERGENCE_TOLERANCE",
    "InferenceCheck",
    "LogisticInference",
    "check_inference",
    "class_counts",
    "logistic_inference",
    "term_names",
]

#: Largest relative gap estimate :math:`(\lambda^2 / 2) / f` accepted as the maximum.
CONVERGENCE_TOLERANCE = 1e-8


@dataclass(frozen=True)
class InferenceCheck:
    """Whether the statistics are valid; ``reason`` says why not ("" when valid), one clause per failure."""

    valid: bool
    reason: str
    penalized: bool
    separable: bool
    converged: bool
    relative_gap: float
    aliased: tuple[str, ...]

    @property
    def refused(self) -> bool:
        """True when no statistic means anything (penalized, separable or not converged); aliasing is not."""
        return self.penalized or self.separable or not self.converged


def term_names(num_features: int, feature_names: Sequence[str] | None = None) -> list[str]:
    """Return the K term names: ``const``, then the feature names (statsmodels' ``x1 .. xD`` by default)."""
    names = [f"x{j + 1}" for j in range(num_features)] if feature_names is None else [str(n) for n in feature_names]
    if len(names) != num_features:
        raise InputError(f"{len(names)} feature names for {num_features} features")
    return ["const", *names]


def class_counts(labels: ArrayLike, num_classes: int, weights: ArrayLike | None = None) -> np.ndarray:
    """Return the counts (C,) float64 of labels (n,) 0 .. C-1 in one chunk: sum them over chunks and ranks.

    With row ``weights`` (n,), the weighted counts: class c's sum of weights, as the sums' ``weight``.
    """
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    if weights is None:
        return np.bincount(y, minlength=num_classes).astype(np.float64)
    return np.bincount(y, weights=np.asarray(weights, dtype=np.float64).reshape(-1), minlength=num_classes)


def check_inference(
    sums: NewtonSums,
    theta: ArrayLike,
    *,
    l2_strength: float = 0.0,
    tol: float = CONVERGENCE_TOLERANCE,
    feature_names: Sequence[str] | None = None,
) -> InferenceCheck:
    r"""Say whether inference from ``sums`` at ``theta`` (P,) is valid, and why not.

    The gap is the unpenalized one, :math:`\lambda^2 = g^\top H^{+} g` from
    :func:`~lr_lightning.streaming.newton_logistic.newton_step` at ``l2_strength`` 0, relative to the mean
    log-loss: the distance from the maximum likelihood, whatever the fit minimized.
    """
    layout = sums.layout
    if not layout.fit_intercept:
        raise InputError("inference needs a fit with an intercept (statsmodels' add_constant)")
    theta = np.asarray(theta, dtype=np.float64)
    step = newton_step(sums, theta, 0.0)
    gap = step.decrement / 2 / step.objective if step.objective > 0 else np.inf
    names = term_names(layout.num_features, feature_names)
    _, information = contrasts(layout, theta, sums.hessian)
    kept = kept_terms(information[: layout.width, : layout.width])
    in_order = np.concatenate([kept[-1:], kept[:-1]])  # statsmodels' order: the bias first
    aliased = tuple(name for name, keep in zip(names, in_order, strict=True) if not keep)
    penalized, separable, converged = l2_strength != 0, sums.nonpositive == 0, bool(gap <= tol)
    reasons = []
    if penalized:
        reasons.append(f"the fit is penalized (l2_strength={l2_strength}): standard errors need l2_strength=0")
    if separable:
        reasons.append("the rows are linearly separable: the likelihood has no maximum")
    if not converged:
        reasons.append(
            f"the parameters are not at the unpenalized maximum of the likelihood: relative gap estimate {gap:.3g} "
            f"> tol {tol:.3g} (fit longer, or with a smaller tol)"
        )
    if aliased:
        reasons.append(f"aliased terms (linear combinations of earlier ones, NaN statistics): {', '.join(aliased)}")
    return InferenceCheck(not reasons, "; ".join(reasons), penalized, separable, converged, float(gap), aliased)


@dataclass
class LogisticInference:
    """Statistics of a fitted logistic regression, statsmodels' names; K = D + 1 terms, M = C - 1 contrasts.

    ``params`` and ``bse`` are (K,) binary or (K, M) multi-class (column c - 1: class c against class 0);
    ``cov`` (M K, M K) is contrast-major, terms in ``term_names`` order. ``nobs`` is the rows' total weight (their
    number without weights), as GLM's ``wnobs`` with ``freq_weights``.
    """

    params: np.ndarray
    bse: np.ndarray
    cov: np.ndarray
    llf: float
    llnull: float
    nobs: float
    df_model: float
    df_resid: float
    term_names: list[str]
    check: InferenceCheck

    @property
    def num_contrasts(self) -> int:
        """M: 1 binary, C - 1 multi-class."""
        return 1 if self.params.ndim == 1 else self.params.shape[1]

    def cov_params(self) -> np.ndarray:
        """Return the covariance (M K, M K) of the params (statsmodels' order)."""
        return self.cov

    @property
    def tvalues(self) -> np.ndarray:
        """Wald statistics params / bse (normal; statsmodels' name for them)."""
        return self.params / self.bse

    @property
    def zvalues(self) -> np.ndarray:
        """Same as :attr:`tvalues`."""
        return self.tvalues

    @property
    def pvalues(self) -> np.ndarray:
        r"""Two-sided normal p-values :math:`2 \Phi(-|z|)`."""
        return 2 * stats.norm.sf(np.abs(self.tvalues))

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        r"""Wald intervals at level 1 - alpha: (K, 2) binary, (M, K, 2) multi-class (statsmodels' layouts)."""
        half = stats.norm.ppf(1 - alpha / 2) * self.bse
        bounds = np.stack([self.params - half, self.params + half], axis=-1)
        return bounds if self.params.ndim == 1 else bounds.transpose(1, 0, 2)

    def odds_ratios(self) -> np.ndarray:
        """Return exp(params): odds ratios (binary), relative risk ratios against class 0 (multi-class)."""
        return np.exp(self.params)

    def odds_ratio_conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Return exp of :meth:`conf_int`'s ends (exact: exp is monotone)."""
        return np.exp(self.conf_int(alpha))

    @property
    def prsquared(self) -> float:
        """McFadden's pseudo R² 1 - llf / llnull."""
        return 1 - self.llf / self.llnull

    @property
    def llr(self) -> float:
        """Likelihood-ratio statistic 2 (llf - llnull) against the intercept-only model."""
        return 2 * (self.llf - self.llnull)

    @property
    def llr_pvalue(self) -> float:
        """Chi-squared tail of :attr:`llr` with ``df_model`` degrees of freedom."""
        return float(stats.chi2.sf(self.llr, self.df_model))

    @property
    def aic(self) -> float:
        """-2 llf + 2 (df_model + M)."""
        return -2 * (self.llf - (self.df_model + self.num_contrasts))

    @property
    def bic(self) -> float:
        """-2 llf + log(nobs) (df_model + M)."""
        return -2 * self.llf + np.log(self.nobs) * (self.df_model + self.num_contrasts)


def logistic_inference(
    sums: NewtonSums,
    theta: ArrayLike,
    counts: ArrayLike,
    *,
    mean: ArrayLike | None = None,
    scale: ArrayLike | None = None,
    l2_strength: float = 0.0,
    tol: float = CONVERGENCE_TOLERANCE,
    feature_names: Sequence[str] | None = None,
    refuse: bool = True,
) -> LogisticInference:
    """Return the statistics of the fit theta (P,) from its merged ``sums`` and class ``counts`` (C,).

    With weighted sums, ``counts`` are the weighted ones (:func:`class_counts` with the same ``weights``).

    ``mean`` and ``scale`` (D,) are the standardization the sums were taken with (None: 0 and 1). Raises
    :class:`InputError` with :attr:`InferenceCheck.reason` if ``refuse`` and the check refuses (penalized,
    separable, unconverged); aliased terms are never refused, only flagged (NaN).
    """
    layout = sums.layout
    check = check_inference(sums, theta, l2_strength=l2_strength, tol=tol, feature_names=feature_names)
    if refuse and check.refused:
        raise InputError(f"no inference: {check.reason}")
    num_classes = 2 if layout.num_outputs == 1 else layout.num_outputs
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    total = sums.weight
    if len(counts) != num_classes or not np.isclose(counts.sum(), total, rtol=1e-9, atol=0) or (counts < 0).any():
        raise InputError(
            f"class counts {counts.tolist()} of {num_classes} classes do not add up to the sums' {total:g} rows "
            "(their total weight, with row weights)"
        )
    params_std, information = contrasts(layout, theta, sums.hessian)
    block = information[: layout.width, : layout.width]
    kept = kept_terms(block)
    params_std = fold_aliased(params_std, block, kept)
    jacobian = original_units_map(layout.num_features, mean, scale)
    params, cov = to_original(params_std, covariance(information, kept), jacobian, kept)
    bse = np.sqrt(np.diag(cov)).reshape(params.shape)
    rank, contrast_count, binary = int(kept.sum()), len(params), layout.num_outputs == 1
    return LogisticInference(
        params=params[0] if binary else params.T,
        bse=bse[0] if binary else bse.T,
        cov=cov,
        llf=-sums.loss,
        llnull=float(special.xlogy(counts, counts / total).sum()),
        nobs=total,
        df_model=float((rank - 1) * contrast_count),
        df_resid=float(total - rank * contrast_count),
        term_names=term_names(layout.num_features, feature_names),
        check=check,
    )
