"""The end-of-fit inference table under DDP: two gloo processes, each streaming its own shard, merged statistics.

Rank 0 alone prints the table and writes ``summary.json``; the merged float64 statistics of the two shards must
give statsmodels' table of all the rows (OLS with HC3 covariance for sourdough, Logit for a two-class table).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm

from lr_lightning.data.sourdough import SOURDOUGH_FEATURES, SOURDOUGH_TARGETS
from tests.helpers import CONFIGS, run_cli

RTOL = 1e-6
DDP = ("--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2")


def _column(equation: dict, key: str) -> np.ndarray:
    return np.array([np.nan if term[key] is None else term[key] for term in equation["terms"]])


def _check_terms(equation: dict, ref) -> None:
    """Coefficients, standard errors, statistics, p-values and the 95% interval of one equation."""
    params, bse = np.asarray(ref.params).ravel(), np.asarray(ref.bse).ravel()
    for key, expected in [("coef", params), ("std_err", bse), ("statistic", np.asarray(ref.tvalues).ravel())]:
        np.testing.assert_allclose(_column(equation, key), expected, rtol=RTOL, err_msg=key)
    np.testing.assert_allclose(_column(equation, "p_value"), np.asarray(ref.pvalues).ravel(), rtol=RTOL)
    bounds = np.asarray(ref.conf_int(0.05))
    np.testing.assert_allclose(_column(equation, "ci_lower"), bounds[:, 0], rtol=RTOL, err_msg="ci_lower")
    np.testing.assert_allclose(_column(equation, "ci_upper"), bounds[:, 1], rtol=RTOL, err_msg="ci_upper")


def _overlapping_classes(rows: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping classes: labels drawn from the logistic of a linear score (no separation)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    score = features @ [0.8, -0.5, 1.2] + 0.3
    labels = (rng.uniform(size=rows) < 1 / (1 + np.exp(-score))).astype(np.int64)
    return features, labels


def _printed_once(stdout: str, title: str) -> None:
    """Rank 0 alone prints the table (the other rank's stdout goes to the same pipe)."""
    assert stdout.count(title) == 1, stdout[-4000:]
    assert stdout.count("Inference summary:") == 1 and "No inference" not in stdout


@pytest.mark.slow
def test_ddp_tables_of_two_shards_equal_statsmodels_of_all_rows(tmp_path: Path) -> None:
    # OLS, HC3: sourdough's ten loaves, 5/5 over two ranks, solved exactly in float64.
    sourdough = tmp_path / "sourdough"
    sourdough.mkdir()
    options = [*DDP, "--trainer.precision", "64-true", "--summary.cov_type", "HC3"]
    result = run_cli(["fit", "--config", str(CONFIGS / "exact.yaml"), *options], cwd=sourdough)
    _printed_once(result.stdout, "Inference summary: OLS (HC3 covariance)")
    folder = sourdough / "runs" / "exact" / "version_0"
    table = json.loads((folder / "summary.json").read_text())
    assert table["model"] == "OLS" and table["valid"] and table["reason"] == "" and table["aliased"] == []
    assert table["cov_type"] == "HC3" and table["statistic"] == "z"
    features = sm.add_constant(SOURDOUGH_FEATURES.astype(np.float64))
    references = [
        sm.OLS(SOURDOUGH_TARGETS[:, k].astype(np.float64), features).fit(cov_type="HC3")
        for k in range(SOURDOUGH_TARGETS.shape[1])
    ]
    assert table["nobs"] == 10 and table["df_resid"] == references[0].df_resid
    assert [eq["name"] for eq in table["equations"]] == ["flavour", "crust"]
    for equation, ref in zip(table["equations"], references, strict=True):
        assert [t["term"] for t in equation["terms"]] == ["const", "proofing_time_h", "acidity_ph", "starter_age_days"]
        _check_terms(equation, ref)
        stats = equation["statistics"]
        for key, value in [
            ("r_squared", ref.rsquared),
            ("r_squared_adj", ref.rsquared_adj),
            ("f_statistic", ref.fvalue),
            ("f_pvalue", ref.f_pvalue),
        ]:
            np.testing.assert_allclose(stats[key], float(value), rtol=RTOL, err_msg=key)
    assert (folder / "summary.txt").read_text().startswith("Inference summary: OLS (HC3 covariance)")

    # Logit: 300 rows of two overlapping classes, unpenalized Newton, every row a training row, 150/150.
    features, labels = _overlapping_classes()
    csv = tmp_path / "classes.csv"
    rows = np.column_stack([features, labels])
    np.savetxt(csv, rows, delimiter=",", fmt=["%.17g"] * 3 + ["%d"], header="x0,x1,x2,label", comments="")
    logistic = tmp_path / "logistic"
    logistic.mkdir()
    options = [
        *DDP,
        *("--trainer.precision", "64-true", "--trainer.max_epochs", "12"),
        *("--model.class_path", "lr_lightning.models.LogisticRegression", "--model.init_args.solver", "newton"),
        *("--model.init_args.l2_strength", "0"),
        *("--data.class_path", "lr_lightning.data.FileDataModule", "--data.init_args.path", str(csv)),
        *("--data.init_args.targets", "label", "--data.init_args.task", "classification"),
        *("--data.init_args.val_fraction", "0", "--data.init_args.test_fraction", "0"),
    ]
    result = run_cli(["fit", "--config", str(CONFIGS / "logistic_newton.yaml"), *options], cwd=logistic)
    _printed_once(result.stdout, "Inference summary: Logit (Fisher information)")
    table = json.loads((logistic / "runs" / "logistic_newton" / "version_0" / "summary.json").read_text())
    assert table["model"] == "Logit" and table["valid"] and table["reason"] == "", table["reason"]
    ref = sm.Logit(labels, sm.add_constant(features)).fit(method="newton", tol=1e-12, maxiter=100, disp=0)
    ref.set_null_options(method="newton", tol=1e-12, maxiter=100)  # llnull, llr and its p-value to 1e-12 too
    assert table["nobs"] == 300 and table["df_resid"] == ref.df_resid
    (equation,) = table["equations"]
    assert [t["term"] for t in equation["terms"]] == ["const", "x0", "x1", "x2"]
    _check_terms(equation, ref)
    shared = table["statistics"]
    for key in ("llf", "llnull", "prsquared", "llr", "llr_pvalue", "aic", "bic"):
        np.testing.assert_allclose(shared[key], getattr(ref, key), rtol=RTOL, err_msg=key)
