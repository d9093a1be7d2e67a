"""Sample weights through whole fits: the exact and Newton solvers, their certificates and the inference table.

References: scikit-learn's ``sample_weight`` fits and statsmodels' WLS and weighted GLM; integer weights must give
the fit of the rows repeated that many times.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm
import torch
from sklearn.linear_model import LinearRegression as SklearnLinearRegression
from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression
from sklearn.linear_model import Ridge

from lr_lightning.callbacks import OptimalityGap
from lr_lightning.checkpoint import load_checkpoint
from lr_lightning.cli import main
from lr_lightning.data import ArraysDataModule
from lr_lightning.errors import InputError
from lr_lightning.models import LinearRegression, LogisticRegression, MultiOutputRegression
from lr_lightning.penalties import sklearn_logistic_c, sklearn_ridge_alpha
from tests.helpers import CONFIGS, REPO, fit, write_csv

RTOL = 1e-6


def regression_rows(rows: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 3)) * [1.0, 3.0, 0.5] + [1.0, -2.0, 4.0]
    noise = rng.normal(size=rows) * (1 + rng.uniform(0, 2, rows))  # heteroskedastic: weights matter
    targets = features @ np.array([1.5, -0.5, 2.0]) + 3.0 + noise
    weights = rng.integers(0, 4, size=rows).astype(float)
    weights[:3] = [0.25, 2.5, 1.75]
    return features, targets, weights


def classification_rows(classes: int, rows: int = 150, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 3))
    logits = features @ rng.normal(size=(3, classes)) + rng.gumbel(size=(rows, classes)) * 1.5
    labels = logits.argmax(axis=1)
    weights = rng.integers(1, 4, size=rows).astype(float)
    return features, labels, weights


def test_the_exact_solver_equals_scikit_learn_with_sample_weight() -> None:
    features, targets, weights = regression_rows()
    model = LinearRegression(3, solver="exact")
    fit(model, ArraysDataModule(features, targets, weights=weights), epochs=1)
    reference = SklearnLinearRegression().fit(features, targets, sample_weight=weights)
    np.testing.assert_allclose(model.coef_[0], reference.coef_, rtol=1e-9)
    np.testing.assert_allclose(model.intercept_[0], reference.intercept_, rtol=1e-9)


def test_the_exact_ridge_equals_scikit_learn_with_sample_weight() -> None:
    features, targets, weights = regression_rows()
    data = ArraysDataModule(features, np.column_stack([targets, -targets]), weights=weights)
    model = MultiOutputRegression(3, 2, solver="exact", l2_strength=0.05)
    fit(model, data, epochs=1)
    scale = np.sqrt(np.cov(features.T, aweights=weights, ddof=0).diagonal())  # the weighted standardization
    alpha = sklearn_ridge_alpha(0.05, weights.sum())
    reference = Ridge(alpha=alpha).fit(features / scale, targets, sample_weight=weights)
    np.testing.assert_allclose(model.coef_[0] * scale, reference.coef_, rtol=1e-9)
    np.testing.assert_allclose(model.coef_[1], -model.coef_[0], rtol=1e-12)


def test_integer_weights_are_repeated_rows_and_zero_weights_are_absent_rows() -> None:
    features, targets, weights = regression_rows()
    whole = np.rint(weights)
    weighted = LinearRegression(3, solver="exact")
    fit(weighted, ArraysDataModule(features, targets, weights=whole), epochs=1)
    repeated = LinearRegression(3, solver="exact")
    rows = np.repeat(np.arange(len(whole)), whole.astype(int))
    fit(repeated, ArraysDataModule(features[rows], targets[rows]), epochs=1)
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-10)
    np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, rtol=1e-10)


def test_the_wls_table_equals_statsmodels() -> None:
    features, targets, weights = regression_rows()
    model = LinearRegression(3, solver="exact")
    fit(model, ArraysDataModule(features, targets, weights=weights), epochs=1)
    kept = weights > 0  # statsmodels counts rows of weight 0 in its degrees of freedom; the package, as R, does not
    reference = sm.WLS(targets[kept], sm.add_constant(features[kept]), weights=weights[kept]).fit()
    table = model.inference_
    assert table.valid and table.kind == "WLS", table.reason
    assert model.summary().startswith("Inference summary: WLS (nonrobust covariance)")
    np.testing.assert_allclose(model.params_[0], reference.params, rtol=RTOL)
    np.testing.assert_allclose(model.bse_[0], reference.bse, rtol=RTOL)
    np.testing.assert_allclose(model.pvalues_[0], reference.pvalues, rtol=RTOL)
    statistics = table.to_json()["equations"][0]["statistics"]
    for key, value in [("r_squared", reference.rsquared), ("llf", reference.llf), ("aic", reference.aic)]:
        np.testing.assert_allclose(statistics[key], value, rtol=RTOL, err_msg=key)
    assert table.to_json()["nobs"] == int(kept.sum())


def test_the_optimality_gap_is_the_weighted_excess_over_weighted_least_squares() -> None:
    features, targets, weights = regression_rows()
    model = LinearRegression(3)  # two epochs of SGD: not at the optimum yet
    trainer = fit(model, ArraysDataModule(features, targets, weights=weights, batch_size=16), epochs=2)
    optimum = SklearnLinearRegression().fit(features, targets, sample_weight=weights)
    [gap] = [callback for callback in trainer.callbacks if isinstance(callback, OptimalityGap)]  # the model's own

    def weighted_mse(predicted: np.ndarray) -> float:
        return float(np.average((targets - predicted) ** 2, weights=weights))

    ours = features @ model.coef_[0] + model.intercept_[0]
    expected = weighted_mse(ours) - weighted_mse(optimum.predict(features))
    assert gap.certificate is not None and expected > 1e-6
    assert gap.certificate[0] == pytest.approx(expected, rel=1e-6)


def test_a_ridge_path_refuses_weights_in_one_line() -> None:
    features, targets, weights = regression_rows()
    model = LinearRegression(3, solver="exact", l2_path=[0.01, 0.1], l2_selection="gcv")
    with pytest.raises(InputError, match="l2_path: choosing l2_strength by leave-one-out or GCV does not take"):
        fit(model, ArraysDataModule(features, targets, weights=weights), epochs=1)


@pytest.mark.parametrize("classes", [2, 3])
def test_newton_equals_scikit_learn_with_sample_weight(classes: int) -> None:
    features, labels, weights = classification_rows(classes)
    model = LogisticRegression(3, num_classes=classes, solver="newton", l2_strength=0.01)
    data = ArraysDataModule(features, labels, task="classification", weights=weights, standardize=False)
    fit(model, data, epochs=12)
    c = sklearn_logistic_c(0.01, weights.sum())
    reference = SklearnLogisticRegression(C=c, solver="newton-cholesky", tol=1e-12, max_iter=200)
    reference.fit(features, labels, sample_weight=weights)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=RTOL, atol=1e-9)
    # Softmax intercepts are unpenalized, so only their differences are identified: compare them centred.
    centred = (lambda values: values - values.mean()) if classes > 2 else (lambda values: values)
    np.testing.assert_allclose(centred(model.intercept_), centred(reference.intercept_), rtol=RTOL, atol=1e-9)


@pytest.mark.parametrize("classes", [2, 3])
def test_newton_with_balanced_class_weights_equals_scikit_learn(classes: int) -> None:
    features, labels, _ = classification_rows(classes, seed=4)
    keep = np.flatnonzero((labels != 0) | (np.arange(len(labels)) % 3 == 0))  # class 0 made rare
    features, labels = features[keep], labels[keep]
    model = LogisticRegression(3, num_classes=classes, solver="newton", l2_strength=0.01, class_weight="balanced")
    fit(model, ArraysDataModule(features, labels, task="classification", standardize=False), epochs=12)
    # With class weights, scikit-learn's C multiplies the class-weighted sum: its N is the sum of the row weights.
    row_weights = (len(labels) / (classes * np.bincount(labels)))[labels]
    c = sklearn_logistic_c(0.01, row_weights.sum())
    reference = SklearnLogisticRegression(C=c, class_weight="balanced", solver="newton-cholesky", tol=1e-12)
    reference.fit(features, labels)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=RTOL, atol=1e-9)
    assert "class_weight" in model.inference_.reason


def test_the_weighted_logit_table_equals_statsmodels_glm() -> None:
    features, labels, weights = classification_rows(2)
    model = LogisticRegression(3, num_classes=2, solver="newton")
    fit(model, ArraysDataModule(features, labels, task="classification", weights=weights), epochs=12)
    design = sm.add_constant(features)
    reference = sm.GLM(labels, design, family=sm.families.Binomial(), var_weights=weights).fit(tol=1e-12)
    assert model.inference_.valid, model.inference_.reason
    np.testing.assert_allclose(model.params_, reference.params, rtol=RTOL)
    np.testing.assert_allclose(model.bse_, reference.bse, rtol=RTOL)
    np.testing.assert_allclose(model.inference_.to_json()["statistics"]["llf"], reference.llf, rtol=RTOL)


def test_a_class_weighted_checkpoint_is_tested_and_predicted_from_the_command_line(
    in_tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp_path / "data").mkdir()
    shutil.copy(REPO / "data" / "iris.csv", in_tmp_path / "data" / "iris.csv")
    fit_args = ["fit", "--config", str(CONFIGS / "logistic_newton.yaml"), "--model.init_args.class_weight"]
    main([*fit_args, "{setosa: 1, versicolor: 2, virginica: 0.5}"])
    ckpt = in_tmp_path / "runs" / "logistic_newton" / "version_0" / "checkpoints" / "latest.ckpt"
    stored = load_checkpoint(ckpt)
    assert stored["hyper_parameters"]["class_weight"] == {"setosa": 1, "versicolor": 2, "virginica": 0.5}
    assert stored["state_dict"]["class_weights"].tolist() == [1.0, 2.0, 0.5]
    capsys.readouterr()
    main(["test", "--ckpt_path", str(ckpt), "--data.path", "data/iris.csv"])  # the checkpoint's record and buffer
    assert "test_acc" in capsys.readouterr().out
    main(["predict", "--ckpt_path", str(ckpt), "--data.path", "data/iris.csv"])
    model = LogisticRegression.load_from_checkpoint(ckpt)
    assert model.class_weights.tolist() == [1.0, 2.0, 0.5]


def test_mini_batches_estimate_the_weighted_objective_without_bias() -> None:
    # Two groups of rows with opposite slopes: the heavy group must win in small batches as in one whole batch.
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 1))
    heavy = np.arange(40) < 20
    weights = np.where(heavy, 10.0, 1.0)
    targets = np.where(heavy, 3.0, -3.0) * features[:, 0] + 0.1 * rng.normal(size=40)
    wls = SklearnLinearRegression().fit(features, targets, sample_weight=weights).coef_[0]
    ols = SklearnLinearRegression().fit(features, targets).coef_[0]
    assert wls - ols > 2  # the weights decide the answer
    model = LinearRegression(1, optimizer=lambda params: torch.optim.SGD(params, lr=0.02), optimality_gap=False)
    data = ArraysDataModule(features, targets, weights=weights, batch_size=4, standardize=False)
    fit(model, data, epochs=150)
    assert model.coef_[0, 0] == pytest.approx(wls, rel=0.02)


def test_a_ridge_path_on_weighted_rows_is_refused_before_a_run_folder_exists(
    in_tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    features, targets, weights = regression_rows()
    rows = np.column_stack([features, weights, targets]).tolist()
    write_csv(in_tmp_path / "rows.csv", ["a", "b", "c", "w", "y"], rows)
    args = ["fit", "--config", str(CONFIGS / "ridge_path.yaml"), "--data", "lr_lightning.data.FileDataModule"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--data.path", "rows.csv", "--data.weights", "w", "--data.targets", "y"])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "l2_path: choosing l2_strength by leave-one-out or GCV does not take sample weights" in line
    assert not (in_tmp_path / "runs").exists()
