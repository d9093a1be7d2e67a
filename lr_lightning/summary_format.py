r"""The inference table of a fit, as a person reads it (statsmodels-like text) and as programs read it (JSON).

Pure formatting (NumPy, no Lightning): :class:`InferenceTable` holds what :mod:`lr_lightning.summary` computed
at the end of ``fit``, the statistics of :mod:`lr_lightning.inference` (``OLSResults`` for linear regression,
``LogisticInference`` for logistic) or, when inference is refused, only the fit's own coefficients and the
reason. Both layouts are normalized here to *equations*: one per target (OLS), one for a binary Logit, one per
class contrast ``class c vs class 0`` (MNLogit), each with its terms (``const`` first, statsmodels' order).

JSON (:meth:`InferenceTable.to_json`; NaN and infinities as ``null``)::

    {"model": "OLS" | "Logit" | "MNLogit", "valid": bool, "reason": str, "notes": [str], "alpha": 0.05,
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

__all__ = ["InferenceTable", "RecordError"]

Kind = Literal["OLS", "Logit", "MNLogit"]

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
        kind: ``"OLS"``, ``"Logit"`` or ``"MNLogit"``.
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
        ols, logistic = _record_of(self.results)
        coefficients = None
        if self.results is None and self.coefficients is not None:
            coefficients = np.array(self.coefficients, dtype=np.float64, copy=True)
        return {
            "version": RECORD_VERSION,
            "kind": str(self.kind),
            "term_names": [str(name) for name in self.term_names],
            "equation_names": [str(name) for name in self.equation_names],
            "valid": bool(self.valid),
            "reason": str(self.reason),
            "alpha": float(self.alpha),
            "cov_type": str(self.cov_type),
            "notes": [str(note) for note in self.notes],
            "certificate": {str(key): _plain(value) for key, value in self.certificate.items()},
            "coefficients": coefficients,
            "ols": ols,
            "logistic": logistic,
            "fit": _fit_record(self.fit) if isinstance(self.results, OLSResults) else None,
        }

    @classmethod
    def from_record(cls, raw: Any) -> InferenceTable:
        """Rebuild, checked, a table :meth:`to_record` wrote (arrays as NumPy arrays); :class:`RecordError` if not."""
        return table_from_record(raw)

    # -- text ----------------------------------------------------------------------------------------------------

    def text(self) -> str:
        """Return the table as statsmodels-like text, one block per equation, then the fit statistics."""
        arrays, aliased = self.arrays(), set(self.aliased)
        stat = self.statistic_name
        lower, upper = f"[{self.alpha / 2:.3g}", f"{1 - self.alpha / 2:.3g}]"
        width = max([len(name) for name in self.term_names] + [8])
        rule = "=" * (width + 6 * 12)
        covariance = f"{self.cov_type} covariance" if self.kind == "OLS" else "Fisher information"
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


# -- the table in a checkpoint: plain values and float64 arrays (tensors once saved), nothing pickled ------------------

#: The version of :meth:`InferenceTable.to_record`'s layout: 2 added ``fit``; a version 1 record (without it) still
#: reads, as a table without its fit (no prediction intervals).
RECORD_VERSION = 2

_KINDS = ("OLS", "Logit", "MNLogit")
_RECORD_KEYS = (
    "version",
    "kind",
    "term_names",
    "equation_names",
    "valid",
    "reason",
    "alpha",
    "cov_type",
    "notes",
    "certificate",
    "coefficients",
    "ols",
    "logistic",
    "fit",
)
#: OLSFit fields (:meth:`OLSFit.to_arrays <lr_lightning.inference.OLSFit.to_arrays>`) of shape (K,) in a record.
_FIT_BY_TARGET = ("intercept", "ssr", "ess", "centered_tss", "uncentered_tss")
_FIT_KEYS = ("fit_intercept", "n_rows", "center", "shift", "aliased", "r_design", "coef", *_FIT_BY_TARGET)
#: OLSResults fields of shape (E, p), (E, p, p) and (E,) in a record.
_OLS_BY_TERM = ("params", "bse", "tvalues", "pvalues")
_OLS_BY_EQUATION = (
    "rsquared",
    "rsquared_adj",
    "fvalue",
    "f_pvalue",
    "scale",
    "ssr",
    "ess",
    "centered_tss",
    "uncentered_tss",
    "mse_model",
    "mse_resid",
    "llf",
    "aic",
    "bic",
)
_OLS_SCALARS = ("nobs", "df_model", "df_resid")
_LOGISTIC_KEYS = ("params", "bse", "cov", "llf", "llnull", "nobs", "df_model", "df_resid", "term_names", "check")
_CHECK_KEYS = ("valid", "reason", "penalized", "separable", "converged", "relative_gap", "aliased")


class RecordError(ValueError):
    """A stored table that is not what :meth:`InferenceTable.to_record` writes (the message says what)."""


def _plain(value: Any) -> Any:
    """Return a NumPy scalar as the Python one (a checkpoint loaded with weights_only=True holds no NumPy objects)."""
    return value.item() if isinstance(value, np.generic) else value


def _record_of(results: OLSResults | LogisticInference | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if isinstance(results, OLSResults):
        return {key: np.array(value, copy=True) for key, value in results.to_arrays().items()}, None
    if isinstance(results, LogisticInference):
        check = results.check
        logistic = {
            "params": np.array(results.params, dtype=np.float64, copy=True),
            "bse": np.array(results.bse, dtype=np.float64, copy=True),
            "cov": np.array(results.cov, dtype=np.float64, copy=True),
            "llf": float(results.llf),
            "llnull": float(results.llnull),
            "nobs": int(results.nobs),
            "df_model": float(results.df_model),
            "df_resid": float(results.df_resid),
            "term_names": [str(name) for name in results.term_names],
            "check": {
                "valid": bool(check.valid),
                "reason": str(check.reason),
                "penalized": bool(check.penalized),
                "separable": bool(check.separable),
                "converged": bool(check.converged),
                "relative_gap": float(check.relative_gap),
                "aliased": [str(name) for name in check.aliased],
            },
        }
        return None, logistic
    return None, None


def _fit_record(fit: OLSFit | None) -> dict[str, Any] | None:
    return None if fit is None else {key: np.array(value, copy=True) for key, value in fit.to_arrays().items()}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise RecordError(message)


def _strings(value: Any, key: str, empty: bool = True) -> list[str]:
    _require(
        isinstance(value, list) and (empty or bool(value)) and all(isinstance(item, str) for item in value),
        f"[{key!r}] is not a list of strings",
    )
    return list(value)


def _array(value: Any, key: str, shape: tuple[int, ...], kind: str = "f") -> np.ndarray:
    """Check an array of the record (a tensor once loaded, NumPy here): its dtype kind and shape."""
    _require(isinstance(value, np.ndarray), f"[{key!r}] is a {type(value).__name__}, not an array")
    wanted = {"f": "float", "b": "bool", "i": "int"}[kind]
    _require(value.dtype.kind == kind, f"[{key!r}] is a {value.dtype} array, not {wanted}")
    _require(value.shape == shape, f"[{key!r}] has shape {value.shape}, not {shape}")
    return value


def _number_of(value: Any, key: str, types: tuple[type, ...] = (int, float)) -> Any:
    _require(isinstance(value, types) and not isinstance(value, bool), f"[{key!r}] is {value!r}, not a number")
    return value


def _keys(raw: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    _require(isinstance(raw, dict), f"{where} is a {type(raw).__name__}, not a dict")
    missing = [key for key in keys if key not in raw]
    extra = [key for key in raw if key not in keys]
    _require(not missing, f"{where} has no {missing[0]!r}" if missing else "")
    _require(not extra, f"{where} holds {extra[0]!r}, which a stored table does not have" if extra else "")
    return dict(raw)


def _ols_from_record(raw: Any, equations: int, terms: int) -> OLSResults:
    from lr_lightning.inference import COV_TYPES

    names = (*_OLS_BY_TERM, "cov_params_default", *_OLS_BY_EQUATION, "aliased", *_OLS_SCALARS)
    arrays = _keys(raw, (*names, "k_constant", "cov_type", "use_t"), "['ols']")
    for key in _OLS_BY_TERM:
        _array(arrays[key], f"ols.{key}", (equations, terms))
    _array(arrays["cov_params_default"], "ols.cov_params_default", (equations, terms, terms))
    for key in _OLS_BY_EQUATION:
        _array(arrays[key], f"ols.{key}", (equations,))
    _array(arrays["aliased"], "ols.aliased", (terms,), "b")
    for key in _OLS_SCALARS:
        _array(arrays[key], f"ols.{key}", ())
    _array(arrays["use_t"], "ols.use_t", (), "b")
    constant = _array(arrays["k_constant"], "ols.k_constant", (), "i")
    cov_type = _array(arrays["cov_type"], "ols.cov_type", (), "i")
    _require(int(constant) in (0, 1), "['ols']['k_constant'] is not 0 or 1")
    _require(0 <= int(cov_type) < len(COV_TYPES), "['ols']['cov_type'] is not a covariance type")
    return OLSResults.from_arrays(arrays)


def _logistic_from_record(raw: Any, kind: str, equations: int, term_names: list[str]) -> LogisticInference:
    from lr_lightning.inference.logistic import InferenceCheck

    record = _keys(raw, _LOGISTIC_KEYS, "['logistic']")
    terms = len(term_names)
    shape = (terms,) if kind == "Logit" else (terms, equations)
    params = _array(record["params"], "logistic.params", shape)
    bse = _array(record["bse"], "logistic.bse", shape)
    cov = _array(record["cov"], "logistic.cov", (equations * terms, equations * terms))
    _require(_strings(record["term_names"], "logistic.term_names") == term_names, "['logistic']['term_names'] differ")
    check = _keys(record["check"], _CHECK_KEYS, "['logistic']['check']")
    for key in ("valid", "penalized", "separable", "converged"):
        _require(isinstance(check[key], bool), f"['logistic']['check'][{key!r}] is not a bool")
    _require(isinstance(check["reason"], str), "['logistic']['check']['reason'] is not a string")
    return LogisticInference(
        params=params.astype(np.float64),
        bse=bse.astype(np.float64),
        cov=cov.astype(np.float64),
        llf=float(_number_of(record["llf"], "logistic.llf")),
        llnull=float(_number_of(record["llnull"], "logistic.llnull")),
        nobs=int(_number_of(record["nobs"], "logistic.nobs", (int,))),
        df_model=float(_number_of(record["df_model"], "logistic.df_model")),
        df_resid=float(_number_of(record["df_resid"], "logistic.df_resid")),
        term_names=term_names,
        check=InferenceCheck(
            valid=check["valid"],
            reason=check["reason"],
            penalized=check["penalized"],
            separable=check["separable"],
            converged=check["converged"],
            relative_gap=float(_number_of(check["relative_gap"], "logistic.check.relative_gap")),
            aliased=tuple(_strings(check["aliased"], "logistic.check.aliased")),
        ),
    )


def _fit_from_record(raw: Any, results: OLSResults, equations: int, terms: int) -> OLSFit:
    """Rebuild, checked, the OLS fit of a valid OLS table: shapes, finiteness and agreement with its results."""
    arrays = _keys(raw, _FIT_KEYS, "['fit']")
    intercept = bool(_array(arrays["fit_intercept"], "fit.fit_intercept", (), "b"))
    _require(int(intercept) == results.k_constant, "['fit']['fit_intercept'] differs from ['ols']['k_constant']")
    features = terms - int(intercept)
    _require(features >= 0, "['fit'] has no features")
    rows = int(_array(arrays["n_rows"], "fit.n_rows", (), "i"))
    _require(rows == results.nobs, f"['fit']['n_rows'] is {rows}, not the table's {results.nobs:g} observations")
    aliased = _array(arrays["aliased"], "fit.aliased", (features,), "b")
    kept = np.concatenate([[True], ~aliased]) if intercept else ~aliased
    _require(bool(np.array_equal(kept, ~np.asarray(results.aliased))), "['fit']['aliased'] differs from the table's")
    rank = int(np.sum(kept))
    _require(rows > rank, "['fit'] leaves no residual degree of freedom")
    shapes = {
        "center": (features + equations,),
        "shift": (features + equations,),
        "r_design": (rank, rank),
        "coef": (equations, features),
        **{key: (equations,) for key in _FIT_BY_TARGET},
    }
    for key, shape in shapes.items():
        value = _array(arrays[key], f"fit.{key}", shape)
        _require(bool(np.all(np.isfinite(value))), f"['fit'][{key!r}] holds a value that is not finite")
    r_design = arrays["r_design"]
    _require(not np.any(np.tril(r_design, -1)), "['fit']['r_design'] is not upper triangular")
    _require(bool(np.all(np.diag(r_design) > 0)), "['fit']['r_design'] has a diagonal entry that is not positive")
    _require(bool(np.all(arrays["ssr"] >= 0)), "['fit']['ssr'] holds a negative sum of squares")
    return OLSFit.from_arrays(arrays)


def table_from_record(raw: Any) -> InferenceTable:
    """Rebuild, checked, the table :meth:`InferenceTable.to_record` wrote; arrays as NumPy arrays.

    Raises:
        RecordError: anything that :meth:`InferenceTable.to_record` does not write (a key, a type, a shape).

    """
    _require(isinstance(raw, dict), f"the stored table is a {type(raw).__name__}, not a dict")
    version = raw.get("version")
    _require(type(version) is int and version in (1, RECORD_VERSION), f"['version'] is {version!r}, not 1 or 2")
    record = _keys(raw, _RECORD_KEYS if version == RECORD_VERSION else _RECORD_KEYS[:-1], "the stored table")
    record.setdefault("fit", None)
    kind = record["kind"]
    _require(kind in _KINDS, f"['kind'] is {kind!r}, not one of {_KINDS}")
    terms = _strings(record["term_names"], "term_names", empty=False)
    equations = _strings(record["equation_names"], "equation_names", empty=False)
    _require(isinstance(record["valid"], bool), "['valid'] is not a bool")
    for key in ("reason", "cov_type"):
        _require(isinstance(record[key], str), f"[{key!r}] is not a string")
    alpha = _number_of(record["alpha"], "alpha", (float,))
    _require(0.0 < alpha < 1.0, f"['alpha'] is {alpha!r}, not in (0, 1)")
    notes = _strings(record["notes"], "notes")
    certificate = record["certificate"]
    _require(isinstance(certificate, dict), "['certificate'] is not a dict")
    for key, value in certificate.items():
        plain = value is None or isinstance(value, bool | int | float | str)
        _require(isinstance(key, str) and plain, f"['certificate'] holds {key!r}: {type(value).__name__}")
    table = InferenceTable(kind, terms, equations, record["valid"], record["reason"], alpha, record["cov_type"])
    table.notes, table.certificate = notes, dict(certificate)
    ols, logistic, coefficients = record["ols"], record["logistic"], record["coefficients"]
    if not table.valid:
        _require(ols is None and logistic is None and record["fit"] is None, "a refused table holds statistics")
        table.coefficients = _array(coefficients, "coefficients", (len(equations), len(terms))).astype(np.float64)
        return table
    _require(coefficients is None, "a valid table holds ['coefficients']")
    if kind == "OLS":
        _require(logistic is None, "an OLS table holds ['logistic']")
        results = _ols_from_record(ols, len(equations), len(terms))
        table.results = results
        if record["fit"] is not None:  # None: stored before lr_lightning kept the fit (version 1), or built without
            table.fit = _fit_from_record(record["fit"], results, len(equations), len(terms))
    else:
        _require(record["fit"] is None, f"a {kind} table holds ['fit']")
        _require(ols is None, f"a {kind} table holds ['ols']")
        _require(kind == "MNLogit" or len(equations) == 1, "a Logit table has one equation")
        table.results = _logistic_from_record(logistic, kind, len(equations), terms)
    return table
