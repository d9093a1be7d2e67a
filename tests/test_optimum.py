"""Training reaches the optimum a closed-form or reference solver finds: NIST, ill-conditioned, penalties, logistic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

from lr_lightning import least_squares
from lr_lightning.cli import cli
from lr_lightning.data import ArraysDataModule, SyntheticClassificationDataModule
from lr_lightning.models import LinearRegression, LogisticRegression
from lr_lightning.penalties import (
    sklearn_elastic_net_params,
    sklearn_lasso_alpha,
    sklearn_logistic_c,
    sklearn_ridge_alpha,
)
from tests.helpers import CONFIGS, NORRIS_B0, NORRIS_B1, NORRIS_CSV, fit, lbfgs, run_cli


def test_nist_norris_certified_values() -> None:
    table = np.loadtxt(NORRIS_CSV, delimiter=",", skiprows=1)
    x, y = table[:, :1], table[:, 1]
    data = ArraysDataModule(x, y, batch_size=len(x), shuffle=False)
    model = LinearRegression(in_features=1, optimizer=lbfgs)
    fit(model, data, epochs=3)
    np.testing.assert_allclose(model.intercept_[0], NORRIS_B0, rtol=1e-6)
    np.testing.assert_allclose(model.coef_[0, 0], NORRIS_B1, rtol=1e-6)


def test_ill_conditioned_design_matches_float64_lstsq() -> None:
    """A design with an intercept column whose condition number is >= 1e6 (1.4e6, checked below).

    Two sources, as in real data: columns on scales from 0.01 to 100 with one far from zero (a "year" around
    1000), which standardization removes, and two nearly collinear columns (they differ by 1e-3 of their scale),
    which it does not: the standardized design still has a condition number of about 2e3.
    """
    rng = np.random.default_rng(0)
    base = rng.normal(size=(400, 1))
    x = np.hstack([base, base + 1e-3 * rng.normal(size=(400, 1)), rng.normal(size=(400, 3)) * [1, 100, 0.01]])
    x[:, 3] += 1000.0
    y = x @ np.array([2.0, -1.0, 0.5, 0.03, 40.0]) + 5.0 + 0.1 * rng.normal(size=400)
    assert np.linalg.cond(np.hstack([x, np.ones((400, 1))])) >= 1e6
    assert np.linalg.cond(StandardScaler().fit_transform(x)) >= 1e3
    data = ArraysDataModule(x, y, batch_size=len(x), shuffle=False)
    model = LinearRegression(in_features=5, optimizer=lbfgs)
    fit(model, data, epochs=5)
    reference = least_squares(x, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-6)


def _regression_problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6)) * [1, 2, 0.5, 3, 1, 1]
    y = x @ np.array([1.5, -0.7, 0.0, 0.2, 0.0, 2.0]) + 1.0 + 0.5 * rng.normal(size=200)
    return x, y


def test_l2_matches_sklearn_ridge() -> None:
    """L2 matches Ridge with alpha from penalties.sklearn_ridge_alpha (the mapping's statement); rtol 1e-6."""
    x, y = _regression_problem()
    l2 = 0.05
    data = ArraysDataModule(x, y, batch_size=len(x), shuffle=False)
    model = LinearRegression(in_features=6, l2_strength=l2, optimizer=lbfgs)
    fit(model, data, epochs=3)
    reference = Ridge(alpha=sklearn_ridge_alpha(l2, len(x))).fit(StandardScaler().fit_transform(x), y)
    np.testing.assert_allclose(model.linear.weight.detach().numpy()[0], reference.coef_, rtol=1e-6)
    np.testing.assert_allclose(model.linear.bias.item(), reference.intercept_, rtol=1e-6)


def test_l1_matches_sklearn_lasso_with_exact_zeros() -> None:
    """L1 matches Lasso (penalties.sklearn_lasso_alpha); proximal SGD (ISTA), 400 full-batch steps; atol 1e-6."""
    x, y = _regression_problem()
    l1 = 0.2
    data = ArraysDataModule(x, y, batch_size=len(x), shuffle=False)
    model = LinearRegression(
        in_features=6, l1_strength=l1, init="zeros", optimizer=lambda params: torch.optim.SGD(params, lr=0.25)
    )
    fit(model, data, epochs=400)
    reference = Lasso(alpha=sklearn_lasso_alpha(l1), tol=1e-12, max_iter=100_000)
    reference.fit(StandardScaler().fit_transform(x), y)
    weight = model.linear.weight.detach().numpy()[0]
    np.testing.assert_allclose(weight, reference.coef_, atol=1e-6)
    assert (reference.coef_ == 0).any(), "the strength should zero at least one weight"
    np.testing.assert_array_equal(weight == 0, reference.coef_ == 0)  # exact zeros, where Lasso has them


def test_elastic_net_on_two_targets_matches_sklearn_elastic_net() -> None:
    """Both penalties, two targets: each target solves ElasticNet (penalties.sklearn_elastic_net_params) alone.

    The MSE and the penalty are both means over the K = 2 targets, so the mapping does not depend on K; proximal
    SGD (ISTA) reaches the exact zeros ElasticNet has. Weights to atol 1e-6.
    """
    x, y = _regression_problem()
    y = np.column_stack([y, x @ np.array([0.0, 0.4, -1.2, 0.0, 0.05, 0.0]) - 2.0])
    l1, l2 = 0.2, 0.05
    data = ArraysDataModule(x, y, batch_size=len(x), shuffle=False)
    model = LinearRegression(
        in_features=6,
        out_features=2,
        l1_strength=l1,
        l2_strength=l2,
        init="zeros",
        optimizer=lambda params: torch.optim.SGD(params, lr=0.4),
    )
    fit(model, data, epochs=800)
    alpha, l1_ratio = sklearn_elastic_net_params(l1, l2)
    reference = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-12, max_iter=100_000)
    reference.fit(StandardScaler().fit_transform(x), y)
    weight = model.linear.weight.detach().numpy()
    np.testing.assert_allclose(weight, reference.coef_, atol=1e-6)
    assert (reference.coef_ == 0).any(), "the strengths should zero at least one weight"
    np.testing.assert_array_equal(weight == 0, reference.coef_ == 0)


def test_binary_logistic_matches_sklearn_with_mapped_c() -> None:
    """L2 matches sklearn's C (penalties.sklearn_logistic_c): coefficients to rtol 1e-3, log-loss to 1e-4 (issue 4)."""
    data = SyntheticClassificationDataModule(
        n_samples=600, n_features=5, n_informative=3, val_fraction=0.0, test_fraction=0.0, batch_size=600
    )
    l2 = 0.01
    model = LogisticRegression(in_features=5, l2_strength=l2, optimizer=lbfgs)
    fit(model, data, epochs=3)
    features, labels = (t.numpy() for t in data.split_tensors("train"))
    standardized = StandardScaler().fit_transform(features)
    reference = SkLogisticRegression(C=sklearn_logistic_c(l2, len(labels)), tol=1e-12, max_iter=10_000)
    reference.fit(standardized, labels)
    np.testing.assert_allclose(model.linear.weight.detach().numpy(), reference.coef_, rtol=1e-3)
    with torch.no_grad():
        ours = log_loss(labels, model(torch.as_tensor(features)).numpy())
    assert ours == pytest.approx(log_loss(labels, reference.predict_proba(standardized)), rel=1e-4)


def test_multiclass_held_out_accuracy_within_one_point_of_sklearn() -> None:
    data = SyntheticClassificationDataModule(
        n_samples=3000, n_features=6, n_informative=3, n_classes=4, class_sep=1.0, batch_size=4000, seed=2
    )
    model = LogisticRegression(in_features=6, num_classes=4, optimizer=lbfgs)
    fit(model, data, epochs=3)
    x_train, y_train = (t.numpy() for t in data.split_tensors("train"))
    x_test, y_test = (t.numpy() for t in data.split_tensors("test"))
    scaler = StandardScaler().fit(x_train)
    reference = SkLogisticRegression(C=1e6, max_iter=10_000).fit(scaler.transform(x_train), y_train)
    sklearn_accuracy = reference.score(scaler.transform(x_test), y_test)
    with torch.no_grad():
        ours = float((model(torch.as_tensor(x_test)).argmax(dim=1).numpy() == y_test).mean())
    assert abs(ours - sklearn_accuracy) <= 0.01, (ours, sklearn_accuracy)


def test_line_config_reaches_3e_3_within_50_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = cli(["fit", "--config", str(CONFIGS / "line.yaml"), "--trainer.logger=false"])
    assert run.trainer.global_step <= 50
    features, targets = run.datamodule.split_tensors("train")
    with torch.no_grad():
        mse = float(torch.nn.functional.mse_loss(run.model(features), targets))
    assert mse < 3e-3
    np.testing.assert_allclose(run.model.coef_[0, 0], 3.0, rtol=1e-4)


def test_sourdough_config_within_0_1_percent_in_100_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = cli(["fit", "--config", str(CONFIGS / "sourdough.yaml"), "--trainer.logger=false"])
    assert run.trainer.global_step <= 100
    features, targets = run.datamodule.split_tensors("train")
    with torch.no_grad():
        mse = float(torch.nn.functional.mse_loss(run.model(features).double(), targets.double()))
    optimum = least_squares(features.double().numpy(), targets.double().numpy()).mse_
    assert mse <= 1.001 * optimum
    gap = run.trainer.callback_metrics["optimality_gap"]  # logged by the model's OptimalityGap callback
    assert float(gap) == pytest.approx(mse - optimum, abs=1e-3)


def test_diverging_run_stops_with_an_error_and_no_non_finite_checkpoint(tmp_path: Path) -> None:
    args = ["fit", "--config", str(CONFIGS / "sourdough.yaml"), "--data.init_args.standardize", "false"]
    result = run_cli([*args, "--optimizer.init_args.lr", "0.01"], cwd=tmp_path, check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "lr-lightning: error: training diverged at epoch" in result.stderr
    assert "learning rate" in result.stderr and "not standardized" in result.stderr
    assert "Traceback" not in result.stderr
    for checkpoint in tmp_path.rglob("*.ckpt"):
        state = torch.load(checkpoint, weights_only=True)["state_dict"]
        assert all(torch.isfinite(value).all() for value in state.values()), checkpoint


def test_float64_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = cli(
        [
            "fit",
            "--config",
            str(CONFIGS / "sourdough.yaml"),
            "--trainer.precision",
            "64-true",
            "--trainer.max_epochs",
            "3",
        ]
    )
    assert run.model.linear.weight.dtype == torch.float64
    assert run.model.feature_mean.dtype == torch.float64
    assert all(state.dtype == torch.float64 for state in run.model.metrics["val_metrics"]["mse"].metric_state.values())
    checkpoint = torch.load(run.latest_checkpoint_path, weights_only=True)
    assert all(v.dtype == torch.float64 for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_multiclass_penalty_mapping_matches_sklearn() -> None:
    """The same C (penalties.sklearn_logistic_c) holds for softmax regression (the penalty is not divided by C)."""
    data = SyntheticClassificationDataModule(
        n_samples=800, n_features=5, n_informative=3, n_classes=3, val_fraction=0.0, test_fraction=0.0, batch_size=800
    )
    l2 = 0.005
    model = LogisticRegression(in_features=5, num_classes=3, l2_strength=l2, optimizer=lbfgs)
    fit(model, data, epochs=3)
    features, labels = (t.numpy() for t in data.split_tensors("train"))
    standardized = StandardScaler().fit_transform(features)
    reference = SkLogisticRegression(C=sklearn_logistic_c(l2, len(labels)), tol=1e-12, max_iter=10_000)
    reference.fit(standardized, labels)
    np.testing.assert_allclose(model.linear.weight.detach().numpy(), reference.coef_, rtol=1e-3, atol=1e-6)
    with torch.no_grad():
        ours = log_loss(labels, model(torch.as_tensor(features)).numpy())
    assert ours == pytest.approx(log_loss(labels, reference.predict_proba(standardized)), rel=1e-4)
