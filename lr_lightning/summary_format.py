r"""The inference table of a fit, as a person reads it (statsmodels-like text) and as programs read it (JSON).

Pure formatting (NumPy, no Lightning): :class:`InferenceTable` holds what :mod:`lr_lightning.summary` computed
at the end of ``fit``, the statistics of :mod:`lr_lightning.inference` (``OLSResults`` for linear regression,
``LogisticInference`` for logistic) or, when inference is refused, only the fit's own coefficients and the
reason. Both layouts are normalized here to *equations*: one per target (OLS), one for a binary Logit, one per
class contrast ``class c vs class 0`` (MNLogit), each with its terms (``const`` first, statsmodels' order).

JSON (:meth:`InferenceTable.to_json`; NaN and infinities as ``null``)::

    {"model": "OLS" | "WLS" | "Logit" | "MNLogit", "valid": bool, "reason": str, "notes": [str], "alpha": 0.05,
     "cov_type": "nonrobust", "statistic": "t" | "z", "certificate": {...}, "aliased": [term, ...],
     "nobs": n, "df_model": ..., "df_resid": ...,
     "statistics": {...}   # logistic: llf, llnull, prsquared, llr, llr_pvalue, aic, bic
     "equations": [{"name": str,
                    "terms": [{"term", "coef", "std_err", "statistic", "p_value", "ci_lower", "ci_upper",
                               "aliased", (logistic) "odds_ratio", "odds_ratio_ci_lower", "odds_ratio_ci_upper"}],
                    "statistics": {...}}]}   # OLS: r_squared, r_squared_adj, f_statistic, f_pvalue,
                                             # resid_std_err, llf, aic, bic
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from lr_lightning.inference import OLSFit, OLSResults
from lr_lightning.inference.logistic import LogisticInference

__all__ = ["InferenceTable"]

Kind = Literal["OLS", "WLS", "Logit", "MNLogit"]

#: The kinds of a linear regression's table: least squares, and weighted least squares (rows with sample weights).
LINEAR_KINDS = ("OLS", "WLS")

#: Per-equation OLS statistics: JSON key, label in the text, OLSResults attribute.
_OLS_STATISTICS = (
    ("r_squared", "R-squared", "rsquared"),
    ("r_squared_adj", "Adj. R-squared", "rsquared_adj"),
    ("f_statistic", "F-statistic", "fvalue"),
    ("f_pvalue", "Prob (F-statistic)", "f_pvalue"),
    ("resid_std_err", "Residual std. error", "resid_std_err"),
    ("llf", "Log-likelihood", "llf"),
    ("aic", "AIC", "aic"),
    ("bic", "BIC", "bic"),
)

#: Logistic statistics: JSON key, label, LogisticInference attribute.
_LOGISTIC_STATISTICS = (
    ("llf", "Log-likelihood", "llf"),
    ("llnull", "LL-Null", "llnull"),
    ("prsquared", "Pseudo R-squ. (McFadden)", "prsquared"),
    ("llr", "LLR (likelihood ratio)", "llr"),
    ("llr_pvalue", "LLR p-value", "llr_pvalue"),
    ("aic", "AIC", "aic"),
    ("bic", "BIC", "bic"),
)


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _cell(value: float, width: int = 11) -> str:
    if not math.isfinite(value):
        return f"{'nan' if math.isnan(value) else value:>{width}}"
    return f"{value:>{width}.5g}" if abs(value) >= 1e-4 or value == 0 else f"{value:>{width}.3e}"


@dataclass
class InferenceTable:
    """The end-of-fit inference of one model (see the module docstring).

    Attributes:
        kind: ``"OLS"``, ``"WLS"`` (weighted rows), ``"Logit"`` or ``"MNLogit"``.
        term_names: the p terms, ``const`` first when the model has an intercept.
        equation_names: E names: the targets (OLS), ``"<class 1> vs <class 0>"`` (Logit) or one per contrast.
        valid: whether the statistics hold (an unpenalized fit at its optimum); else ``reason`` says why not.
        reason: why inference is refused ("" when valid).
        alpha: 1 - the confidence level of the intervals.
        cov_type: the covariance type (statsmodels' names).
        results: the statistics, ``None`` when refused.
        coefficients: (E, p), the fit's own coefficients in original units, shown when refused.
        certificate: how far the fit is from the optimum the statistics assume (JSON-ready).
        notes: further lines (what the table is, options that do not apply).
        fit: the OLS fit behind a valid OLS table (:class:`~lr_lightning.inference.OLSFit`): what the prediction
            intervals of new rows need (:func:`~lr_lightning.inference.prediction_intervals`); ``None`` otherwise,
            and in a table stored before lr_lightning kept it (record version 1).

    """

    kind: Kind
    term_names: list[str]
    equation_names: list[str]
    valid: bool
    reason: str
    alpha: float
    cov_type: str
    results: OLSResults | LogisticInference | None = None
    coefficients: np.ndarray | None = None
    certificate: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fit: OLSFit | None = None

    # -- the numbers, one row per equation ---------------------------------------------------------------------------

    @property
    def statistic_name(self) -> str:
        """``t`` (Student's t: nonrobust OLS) or ``z`` (the normal: robust OLS, logistic)."""
        results = self.results
        return "t" if isinstance(results, OLSResults) and results.use_t else "z"

    def _by_equation(self, values: np.ndarray) -> np.ndarray:
        """(E, p, ...) from the results' layout: OLS (K, p, ...), Logit (p, ...), MNLogit (p, M) or (M, p, 2)."""
        if isinstance(self.results, OLSResults) or self.kind == "Logit":
            return values if isinstance(self.results, OLSResults) else values[None]
        return values.T if values.ndim == 2 else values

    def arrays(self) -> dict[str, np.ndarray]:
        """Return ``coef``, ``bse``, ``statistic``, ``pvalue`` (E, p) and ``conf_int`` (E, p, 2); refused: coef only."""
        results = self.results
        if results is None:
            coefficients = self.coefficients if self.coefficients is not None else np.zeros((0, 0))
            return {"coef": coefficients}
        arrays = {
            "coef": self._by_equation(results.params),
            "bse": self._by_equation(results.bse),
            "statistic": self._by_equation(results.tvalues),
            "pvalue": self._by_equation(results.pvalues),
            "conf_int": self._by_equation(results.conf_int(self.alpha)),
        }
        if isinstance(results, LogisticInference):
            arrays["odds_ratio"] = np.exp(arrays["coef"])
            arrays["odds_ratio_conf_int"] = np.exp(arrays["conf_int"])
        return arrays

    @property
    def aliased(self) -> list[str]:
        """The aliased terms (linear combinations of earlier ones): no standard error."""
        results = self.results
        if isinstance(results, OLSResults):
            return [name for name, flag in zip(self.term_names, results.aliased, strict=True) if flag]
        if isinstance(results, LogisticInference):
            return list(results.check.aliased)
        return []

    def _equation_statistics(self, index: int) -> dict[str, float | None]:
        if not isinstance(self.results, OLSResults):
            return {}
        return {key: _number(getattr(self.results, name)[index]) for key, _, name in _OLS_STATISTICS}

    def _shared_statistics(self) -> dict[str, float | None]:
        results = self.results
        if isinstance(results, LogisticInference):
            return {key: _number(getattr(results, name)) for key, _, name in _LOGISTIC_STATISTICS}
        return {}

    # -- JSON ----------------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Return the table as plain JSON values (NaN as ``None``); the module docstring gives the keys."""
        arrays, aliased = self.arrays(), set(self.aliased)
        equations = []
        for e, name in enumerate(self.equation_names):
            terms = []
            for j, term in enumerate(self.term_names):
                row: dict[str, Any] = {"term": term, "coef": _number(arrays["coef"][e, j])}
                if "bse" in arrays:
                    row.update(
                        std_err=_number(arrays["bse"][e, j]),
                        statistic=_number(arrays["statistic"][e, j]),
                        p_value=_number(arrays["pvalue"][e, j]),
                        ci_lower=_number(arrays["conf_int"][e, j, 0]),
                        ci_upper=_number(arrays["conf_int"][e, j, 1]),
                    )
                if "odds_ratio" in arrays:
                    row.update(
                        odds_ratio=_number(arrays["odds_ratio"][e, j]),
                        odds_ratio_ci_lower=_number(arrays["odds_ratio_conf_int"][e, j, 0]),
                        odds_ratio_ci_upper=_number(arrays["odds_ratio_conf_int"][e, j, 1]),
                    )
                row["aliased"] = term in aliased
                terms.append(row)
            equations.append({"name": name, "terms": terms, "statistics": self._equation_statistics(e)})
        results = self.results
        counts: dict[str, float | None] = {}
        if results is not None:
            counts = {key: _number(getattr(results, key)) for key in ("nobs", "df_model", "df_resid")}
        return {
            "model": self.kind,
            "valid": self.valid,
            "reason": self.reason,
            "notes": list(self.notes),
            "alpha": self.alpha,
            "cov_type": self.cov_type,
            "statistic": self.statistic_name if results is not None else None,
            "certificate": {key: _number(v) if isinstance(v, float) else v for key, v in self.certificate.items()},
            "aliased": self.aliased,
            **counts,
            "statistics": self._shared_statistics(),
            "equations": equations,
        }

    # -- a checkpoint's record ---------------------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        """Return the table as plain values (str, bool, int, float, None, lists, str-keyed dicts) and NumPy arrays.

        :mod:`lr_lightning.models.checkpoint_record` stores the arrays as tensors, so the record loads with
        ``weights_only=True``; :meth:`from_record` rebuilds the same table (same text, same JSON). Keys: the
        fields' (``kind`` .. ``certificate``), ``version``, ``coefficients`` (refused), ``ols``
        (:meth:`OLSResults.to_arrays <lr_lightning.inference.OLSResults.to_arrays>`) or ``logistic`` (valid), and
        ``fit`` (:meth:`OLSFit.to_arrays <lr_lightning.inference.OLSFit.to_arrays>`: a valid OLS table's, else
        ``None``).
        """
        from lr_lightning.summary_record import table_to_record  # the record's module builds tables: imported late

        return table_to_record(self)

    @classmethod
    def from_record(cls, raw: Any) -> InferenceTable:
        """Rebuild, checked, a table :meth:`to_record` wrote (arrays as NumPy arrays).

        Raises:
            ~lr_lightning.summary_record.RecordError: anything that :meth:`to_record` does not write.

        """
        from lr_lightning.summary_record import table_from_record

        return table_from_record(raw)

    # -- text ----------------------------------------------------------------------------------------------------

    def text(self) -> str:
        """Return the table as statsmodels-like text, one block per equation, then the fit statistics."""
        arrays, aliased = self.arrays(), set(self.aliased)
        stat = self.statistic_name
        lower, upper = f"[{self.alpha / 2:.3g}", f"{1 - self.alpha / 2:.3g}]"
        width = max([len(name) for name in self.term_names] + [8])
        rule = "=" * (width + 6 * 12)
        covariance = f"{self.cov_type} covariance" if self.kind in LINEAR_KINDS else "Fisher information"
        title = f"Inference summary: {self.kind} ({covariance})"
        lines = [title]
        if not self.valid:
            lines.append(f"No inference: {self.reason}")
            lines.append("The fit's coefficients in original units (no standard errors or p-values: they do not hold):")
        lines += [f"Note: {note}" for note in self.notes]
        results = self.results
        if results is not None:
            counts = f"No. observations: {results.nobs:g}   Df model: {results.df_model:g}"
            lines.append(f"{counts}   Df residuals: {results.df_resid:g}")
        for e, name in enumerate(self.equation_names):
            lines += [rule, f"{self.kind} equation: {name}", "-" * len(rule)]
            if results is None:
                lines.append(f"{'term':<{width}} {'coef':>11}")
                lines += [f"{term:<{width}} {_cell(arrays['coef'][e, j])}" for j, term in enumerate(self.term_names)]
                continue
            columns = ["coef", "std err", stat, f"P>|{stat}|", lower, upper]
            header = f"{'term':<{width}} " + " ".join(f"{column:>11}" for column in columns)
            if "odds_ratio" in arrays:
                header += f" {'odds ratio':>11} {lower:>11} {upper:>11}"
            lines.append(header)
            for j, term in enumerate(self.term_names):
                if term in aliased:
                    lines.append(f"{term:<{width}} {'aliased':>11}")
                    continue
                values = [arrays[key][e, j] for key in ("coef", "bse", "statistic", "pvalue")]
                values += list(arrays["conf_int"][e, j])
                if "odds_ratio" in arrays:
                    values += [arrays["odds_ratio"][e, j], *arrays["odds_ratio_conf_int"][e, j]]
                lines.append(f"{term:<{width}} " + " ".join(_cell(float(v)) for v in values))
            if isinstance(results, OLSResults):
                stats = self._equation_statistics(e)
                lines.append("-" * len(rule))
                pairs = [f"{label}: {_text(stats[key])}" for key, label, _ in _OLS_STATISTICS]
                lines += ["   ".join(pairs[:4]), "   ".join(pairs[4:])]
        lines.append(rule)
        if isinstance(results, LogisticInference):
            shared = self._shared_statistics()
            pairs = [f"{label}: {_text(shared[key])}" for key, label, _ in _LOGISTIC_STATISTICS]
            lines += ["   ".join(pairs[:3]), "   ".join(pairs[3:]), rule]
        for term in self.aliased:
            lines.append(f"Aliased: {term} is a linear combination of earlier terms: no standard error")
        if self.certificate.get("line"):
            lines.append(str(self.certificate["line"]))
        return "\n".join(lines)


def _text(value: float | None) -> str:
    return "nan" if value is None else f"{value:.6g}"
