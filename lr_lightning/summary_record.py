"""The inference table in a checkpoint: plain values and float64 arrays (tensors once saved), nothing pickled.

:func:`table_to_record` writes what :meth:`lr_lightning.summary_format.InferenceTable.to_record` returns;
:func:`table_from_record` reads it back, checking every key, type, shape and dtype, so a forged table is a
:class:`RecordError` (the checkpoint's reader turns it into a one-line ``InputError``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lr_lightning.inference import OLSFit, OLSResults
from lr_lightning.inference.logistic import LogisticInference
from lr_lightning.summary_format import LINEAR_KINDS, InferenceTable

__all__ = ["RECORD_VERSION", "RecordError", "table_from_record", "table_to_record"]


def table_to_record(table: InferenceTable) -> dict[str, Any]:
    """Return ``table`` as plain values and NumPy arrays (:meth:`InferenceTable.to_record`'s layout)."""
    ols, logistic = _record_of(table.results)
    coefficients = None
    if table.results is None and table.coefficients is not None:
        coefficients = np.array(table.coefficients, dtype=np.float64, copy=True)
    return {
        "version": RECORD_VERSION,
        "kind": str(table.kind),
        "term_names": [str(name) for name in table.term_names],
        "equation_names": [str(name) for name in table.equation_names],
        "valid": bool(table.valid),
        "reason": str(table.reason),
        "alpha": float(table.alpha),
        "cov_type": str(table.cov_type),
        "notes": [str(note) for note in table.notes],
        "certificate": {str(key): _plain(value) for key, value in table.certificate.items()},
        "coefficients": coefficients,
        "ols": ols,
        "logistic": logistic,
        "fit": _fit_record(table.fit) if isinstance(table.results, OLSResults) else None,
    }


#: The version of :meth:`InferenceTable.to_record`'s layout: 2 added ``fit``; a version 1 record (without it) still
#: reads, as a table without its fit (no prediction intervals).
RECORD_VERSION = 2

_KINDS = ("OLS", "WLS", "Logit", "MNLogit")
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
#: The sums a weighted (WLS) fit adds to its record (:meth:`OLSFit.to_arrays`); an unweighted fit has neither.
_WEIGHTED_FIT_KEYS = ("weight_sum", "log_weight_sum")
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
            "nobs": float(results.nobs),  # the sum of the weights when weighted
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
        nobs=float(_number_of(record["nobs"], "logistic.nobs")),
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
    weighted = [key for key in _WEIGHTED_FIT_KEYS if isinstance(raw, dict) and key in raw]
    _require(len(weighted) in (0, len(_WEIGHTED_FIT_KEYS)), f"['fit'] holds {weighted} without the other weight sum")
    arrays = _keys(raw, (*_FIT_KEYS, *weighted), "['fit']")
    for key in weighted:
        value = _array(arrays[key], f"fit.{key}", ())
        _require(bool(np.isfinite(value)), f"['fit'][{key!r}] is not finite")
    if weighted:
        _require(float(arrays["weight_sum"]) > 0, "['fit']['weight_sum'] is not positive")
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
    if kind in LINEAR_KINDS:
        _require(logistic is None, f"an {kind} table holds ['logistic']")
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
