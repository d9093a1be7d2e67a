"""The inference table at the end of fit (lr_lightning.summary) against statsmodels' OLS, Logit and MNLogit.

The sourdough rows are stored in float32 under the default precision, so the least-squares state, and the OLS
it gives, is of the float32-rounded rows: the statsmodels reference is fitted on those same rows (the float64
table would differ in the seventh digit, the data's own rounding, not the inference's).
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import statsmodels.api as sm
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lr_lightning.cli import cli, main
from lr_lightning.data import ArraysDataModule, SourdoughDataModule
from lr_lightning.data.sourdough import SOURDOUGH_FEATURES, SOURDOUGH_TARGETS
from lr_lightning.models import LinearRegression, LogisticRegression
from lr_lightning.models.statistics import NoInferenceError
from lr_lightning.summary import InferenceSummary
from tests.helpers import CONFIGS, fit

RTOL = 1e-6


def _ols(cov_type: str = "nonrobust") -> list:
    features = sm.add_constant(SOURDOUGH_FEATURES.astype(np.float32).astype(np.float64))
    targets = SOURDOUGH_TARGETS.astype(np.float32).astype(np.float64)
    return [sm.OLS(targets[:, k], features).fit(cov_type=cov_type) for k in range(targets.shape[1])]


def _column(equation: dict, key: str) -> np.ndarray:
    return np.array([np.nan if term[key] is None else term[key] for term in equation["terms"]])


def _check_json(table: dict, references: list) -> None:
    assert table["valid"] and table["reason"] == "" and table["aliased"] == []
    assert [eq["name"] for eq in table["equations"]] == ["flavour", "crust"]
    for equation, ref in zip(table["equations"], references, strict=True):
        assert [t["term"] for t in equation["terms"]] == ["const", "proofing_time_h", "acidity_ph", "starter_age_days"]
        for key, expected in [("coef", ref.params), ("std_err", ref.bse), ("statistic", ref.tvalues)]:
            np.testing.assert_allclose(_column(equation, key), expected, rtol=RTOL, err_msg=key)
        np.testing.assert_allclose(_column(equation, "p_value"), ref.pvalues, rtol=RTOL)
        bounds = ref.conf_int(0.05)
        np.testing.assert_allclose(_column(equation, "ci_lower"), bounds[:, 0], rtol=RTOL)
        np.testing.assert_allclose(_column(equation, "ci_upper"), bounds[:, 1], rtol=RTOL)
        stats = equation["statistics"]
        expected = {
            "r_squared": ref.rsquared,
            "r_squared_adj": ref.rsquared_adj,
            "f_statistic": ref.fvalue,
            "f_pvalue": ref.f_pvalue,
            "resid_std_err": np.sqrt(ref.scale),
            "llf": ref.llf,
            "aic": ref.aic,
            "bic": ref.bic,
        }
        for key, value in expected.items():
            np.testing.assert_allclose(stats[key], float(value), rtol=RTOL, err_msg=key)
    assert table["nobs"] == 10 and table["df_resid"] == references[0].df_resid


def test_exact_fit_prints_writes_and_logs_the_ols_table(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(["fit", "--config", str(CONFIGS / "exact.yaml")])
    out = capsys.readouterr().out
    assert out.index("Certificate: optimality gap") < out.index("Inference summary: OLS (nonrobust covariance)")
    assert out.index("Inference summary") < out.index("Best checkpoint")
    assert "P>|t|" in out and "No inference" not in out
    folder = Path(run.trainer.log_dir)
    text = (folder / "summary.txt").read_text()
    table = json.loads((folder / "summary.json").read_text())
    references = _ols()
    _check_json(table, references)
    model = run.model
    assert model.summary() + "\n" == text and model.summary() in out
    params = np.stack([ref.params for ref in references])
    np.testing.assert_allclose(model.params_, params, rtol=RTOL)
    np.testing.assert_allclose(model.bse_, np.stack([ref.bse for ref in references]), rtol=RTOL)
    np.testing.assert_allclose(model.tvalues_, np.stack([ref.tvalues for ref in references]), rtol=RTOL)
    np.testing.assert_allclose(model.pvalues_, np.stack([ref.pvalues for ref in references]), rtol=RTOL)
    np.testing.assert_allclose(model.conf_int(), np.stack([ref.conf_int(0.05) for ref in references]), rtol=RTOL)
    np.testing.assert_allclose(model.conf_int(0.1), np.stack([ref.conf_int(0.1) for ref in references]), rtol=RTOL)
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    logged = events.Tensors("summary/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "Inference summary: OLS" in logged and "starter_age_days" in logged


def test_hc3_from_the_command_line(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(["fit", "--config", str(CONFIGS / "exact.yaml"), "--summary.cov_type", "HC3", "--summary.alpha", "0.1"])
    assert "Inference summary: OLS (HC3 covariance)" in capsys.readouterr().out
    table = json.loads((Path(run.trainer.log_dir) / "summary.json").read_text())
    assert table["cov_type"] == "HC3" and table["statistic"] == "z" and table["alpha"] == 0.1
    for equation, ref in zip(table["equations"], _ols("HC3"), strict=True):
        np.testing.assert_allclose(_column(equation, "std_err"), ref.bse, rtol=RTOL)
        np.testing.assert_allclose(_column(equation, "p_value"), ref.pvalues, rtol=RTOL)
        np.testing.assert_allclose(_column(equation, "ci_lower"), ref.conf_int(0.1)[:, 0], rtol=RTOL)
        np.testing.assert_allclose(equation["statistics"]["f_statistic"], ref.fvalue, rtol=RTOL)


def test_summary_enabled_false_computes_and_writes_no_table(
    in_tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = cli(["fit", "--config", str(CONFIGS / "sourdough.yaml"), "--summary.enabled", "false"])
    assert "Inference summary" not in capsys.readouterr().out
    assert not (Path(run.trainer.log_dir) / "summary.txt").exists()
    with pytest.raises(NoInferenceError):
        _ = run.model.bse_


def test_a_bad_cov_type_is_one_line_naming_the_option(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(CONFIGS / "exact.yaml"), "--summary.cov_type", "HC9"])
    assert stop.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lr-lightning: error")]
    assert "summary.cov_type" in line and "HC3" in line


def _summary(trainer) -> InferenceSummary:
    (callback,) = [c for c in trainer.callbacks if isinstance(c, InferenceSummary)]
    return callback


def test_no_intercept_on_raw_features_is_ols_through_the_origin() -> None:
    model = LinearRegression(in_features=3, out_features=2, solver="exact", bias=False)
    fit(model, SourdoughDataModule(standardize=False), epochs=1)
    references = [sm.OLS(SOURDOUGH_TARGETS[:, k], SOURDOUGH_FEATURES, hasconst=False).fit() for k in range(2)]
    np.testing.assert_allclose(model.bse_, np.stack([ref.bse for ref in references]), rtol=RTOL)
    table = model.inference_.to_json()
    for equation, ref in zip(table["equations"], references, strict=True):
        np.testing.assert_allclose(equation["statistics"]["r_squared"], ref.rsquared, rtol=RTOL)
    assert "no intercept" in model.summary()


def test_refused_for_a_penalty_an_unconverged_fit_and_no_bias_on_centred_data() -> None:
    cases = [
        (LinearRegression(in_features=3, out_features=2, solver="exact", l2_strength=0.1), 1, "penalized"),
        (LinearRegression(in_features=3, out_features=2), 3, "not at the least-squares optimum: relative"),
        (LinearRegression(in_features=3, out_features=2, solver="exact", bias=False), 1, "no bias on centred data"),
    ]
    for model, epochs, reason in cases:
        trainer = fit(model, SourdoughDataModule(), epochs=epochs, precision="32-true")
        table = _summary(trainer).table
        assert table is not None and not table.valid and reason in table.reason
        text = model.summary()
        assert f"No inference: {table.reason}" in text and "P>|" not in text and "std err" not in text
        with pytest.raises(NoInferenceError, match=reason.split(":")[0]):
            _ = model.pvalues_
        data = table.to_json()
        assert data["valid"] is False and "std_err" not in data["equations"][0]["terms"][0]


def _classes(num_classes: int, rows: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes: labels drawn from a softmax of a linear score (no separation)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    scores = features @ rng.normal(size=(3, num_classes)) * 0.8
    probabilities = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(num_classes, p=p) for p in probabilities])
    return features, labels


@pytest.mark.parametrize("num_classes", [2, 3])
def test_logistic_newton_fit_matches_statsmodels(num_classes: int) -> None:
    features, labels = _classes(num_classes)
    data = ArraysDataModule(features, labels, task="classification")
    model = LogisticRegression(in_features=3, num_classes=num_classes, solver="newton")
    fit(model, data, epochs=12)
    family = sm.Logit if num_classes == 2 else sm.MNLogit
    ref = family(labels, sm.add_constant(features)).fit(method="newton", tol=1e-12, maxiter=100, disp=0)
    ref.set_null_options(method="newton", tol=1e-12, maxiter=100)
    table = model.inference_
    assert table.valid and table.kind == ("Logit" if num_classes == 2 else "MNLogit"), table.reason
    np.testing.assert_allclose(model.params_, ref.params, rtol=RTOL)
    np.testing.assert_allclose(model.bse_, ref.bse, rtol=RTOL)
    np.testing.assert_allclose(model.tvalues_, ref.tvalues, rtol=RTOL)
    np.testing.assert_allclose(model.pvalues_, ref.pvalues, rtol=RTOL)
    np.testing.assert_allclose(model.conf_int(), np.asarray(ref.conf_int()).reshape(model.conf_int().shape), rtol=RTOL)
    shared = table.to_json()["statistics"]
    for key, name in [("llf", "llf"), ("llnull", "llnull"), ("prsquared", "prsquared"), ("llr", "llr")]:
        np.testing.assert_allclose(shared[key], getattr(ref, name), rtol=RTOL, err_msg=key)
    np.testing.assert_allclose(shared["llr_pvalue"], ref.llr_pvalue, rtol=1e-5, atol=1e-300)
    np.testing.assert_allclose([shared["aic"], shared["bic"]], [ref.aic, ref.bic], rtol=RTOL)
    first = table.to_json()["equations"][0]["terms"][1]
    assert first["odds_ratio"] == pytest.approx(np.exp(first["coef"]), rel=1e-12)
    assert "P>|z|" in model.summary() and "odds ratio" in model.summary()


def test_a_penalized_logistic_fit_is_refused() -> None:
    features, labels = _classes(3, rows=120)
    model = LogisticRegression(in_features=3, num_classes=3, solver="newton", l2_strength=0.01)
    fit(model, ArraysDataModule(features, labels, task="classification"), epochs=8)
    table = model.inference_
    assert not table.valid and "penalized" in table.reason and "P>|z|" not in model.summary()
    with pytest.raises(NoInferenceError, match="penalized"):
        _ = model.bse_


def test_no_table_before_a_fit() -> None:
    with pytest.raises(NoInferenceError, match="fit it first"):
        LinearRegression(in_features=3).summary()


def test_aliased_terms_are_named_and_get_no_standard_error() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 2))
    features = np.hstack([features, 2 * features[:, :1]])  # a2 = 2 a
    targets = features[:, 0] + 0.5 * features[:, 1] + rng.normal(size=40)
    model = LinearRegression(in_features=3, solver="exact", feature_names=["a", "b", "a2"])
    fit(model, ArraysDataModule(features, targets), epochs=1)
    reference = sm.OLS(targets, sm.add_constant(features[:, :2])).fit()  # the fit without the aliased column
    assert model.inference_.valid and model.inference_.aliased == ["a2"]
    np.testing.assert_allclose(model.bse_[0, :3], reference.bse, rtol=RTOL)
    assert np.isnan(model.bse_[0, 3]) and model.params_[0, 3] == 0
    assert "Aliased: a2 is a linear combination of earlier terms: no standard error" in model.summary()
    (a2,) = [t for t in model.inference_.to_json()["equations"][0]["terms"] if t["term"] == "a2"]
    assert a2["aliased"] and a2["std_err"] is None and a2["p_value"] is None


def test_on_a_memmapped_file_the_tables_equal_statsmodels(tmp_path: Path) -> None:
    """Rows that stay on disk: the state, the robust pass and the logistic sums stream the file."""
    rng = np.random.default_rng(5)
    features = rng.normal(size=(400, 3)) * [1.0, 4.0, 0.3] + [2.0, -1.0, 0.0]
    targets = features @ [1.5, -0.5, 2.0] + 3.0 + rng.normal(size=400) * (1.0 + np.abs(features[:, 0]))
    np.save(tmp_path / "x.npy", features)
    on_disk = np.load(tmp_path / "x.npy", mmap_mode="r")
    data = ArraysDataModule(on_disk, targets, batch_size=64)
    assert data.out_of_core
    model = LinearRegression(in_features=3, solver="exact")
    trainer = pl.Trainer(
        max_epochs=1,
        precision="64-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[InferenceSummary(cov_type="HC3")],
    )
    trainer.fit(model, datamodule=data)
    assert data.rows_in_memory("train") is None  # the fit read the file in chunks
    reference = sm.OLS(targets, sm.add_constant(features)).fit(cov_type="HC3")
    np.testing.assert_allclose(model.params_[0], reference.params, rtol=RTOL)
    np.testing.assert_allclose(model.bse_[0], reference.bse, rtol=RTOL)
    np.testing.assert_allclose(model.pvalues_[0], reference.pvalues, rtol=RTOL)
    assert _summary(trainer).table is model.inference_

    labels_features, labels = _classes(3)
    np.save(tmp_path / "c.npy", labels_features)
    classes = ArraysDataModule(np.load(tmp_path / "c.npy", mmap_mode="r"), labels, task="classification")
    assert classes.out_of_core
    classifier = LogisticRegression(in_features=3, num_classes=3, solver="newton")
    fit(classifier, classes, epochs=12, precision="64-true")
    logit = sm.MNLogit(labels, sm.add_constant(labels_features)).fit(method="newton", tol=1e-12, maxiter=100, disp=0)
    np.testing.assert_allclose(classifier.params_, logit.params, rtol=RTOL)
    np.testing.assert_allclose(classifier.bse_, logit.bse, rtol=RTOL)
