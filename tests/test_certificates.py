"""Certificates: how far a fit ended from its optimum, printed at the end of ``lr-lightning fit`` and logged.

* Least squares: ``optimality_gap``, the training MSE minus the exact least-squares optimum (OptimalityGap).
* Logistic regression: ``log_loss_certificate``, the Newton decrement λ²/2 at the final weights (LogLossCertificate),
  which estimates the objective's distance to its minimum whatever the optimizer.

The references are numpy's lstsq and scikit-learn's ``LogisticRegression(solver="newton-cholesky")``.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lr_lightning.callbacks import OptimalityGap
from lr_lightning.cli import cli, main
from lr_lightning.data import ArraysDataModule
from lr_lightning.models import LinearRegression, LogisticRegression
from lr_lightning.models.newton_fit import LogLossCertificate
from lr_lightning.penalties import sklearn_logistic_c
from tests.helpers import CONFIGS, fit, lbfgs


def _callback(trainer: pl.Trainer, kind: type) -> object:
    (callback,) = [c for c in trainer.callbacks if isinstance(c, kind)]  # type: ignore[attr-defined]
    return callback


def _certificate_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Certificate: ")]


def test_fit_prints_the_optimality_gap_for_sourdough(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["fit", "--config", str(CONFIGS / "sourdough.yaml"), "--trainer.max_epochs", "3"])
    (line,) = _certificate_lines(capsys.readouterr().out)
    assert line.startswith("Certificate: optimality gap ") and "over the 10 training rows" in line
    gap = float(line.removeprefix("Certificate: optimality gap ").split()[0])
    assert gap > 0  # three SGD steps are not least squares yet


def test_a_logistic_fit_prints_and_logs_the_log_loss_gap(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(["fit", "--config", str(CONFIGS / "logistic_synthetic.yaml"), "--trainer.max_epochs", "2"])
    (line,) = _certificate_lines(capsys.readouterr().out)
    assert line.startswith("Certificate: log-loss gap ")
    callback = _callback(run.trainer, LogLossCertificate)
    assert isinstance(callback, LogLossCertificate) and callback.certificate is not None
    gap, objective = callback.certificate
    assert 0 < gap < objective
    assert f"{gap:.3g}" in line
    # The certificate goes into TensorBoard's event file too, next to the losses.
    events = EventAccumulator(
        str(in_tmp_path / "runs" / "logistic_synthetic" / "version_0"), size_guidance={"scalars": 0}
    )
    events.Reload()
    assert "log_loss_certificate" in events.Tags()["scalars"]
    logged = events.Scalars("log_loss_certificate")
    assert logged[-1].value == pytest.approx(gap, rel=1e-6)  # TensorBoard keeps float32


def _logistic_problem() -> tuple[ArraysDataModule, np.ndarray, np.ndarray]:
    """600 rows of overlapping float64 clusters (5 features), all for training, in one batch."""
    features, labels = make_classification(n_samples=600, n_features=5, n_informative=3, random_state=0)
    return ArraysDataModule(features, labels, task="classification", batch_size=600), features, labels


def _objective(model: LogisticRegression, features: np.ndarray, labels: np.ndarray, l2: float) -> float:
    """Mean log-loss plus l2 ||W||² (W on standardized features), computed here from the model's probabilities."""
    with torch.no_grad():
        probabilities = model.predict_proba(features)
    return float(log_loss(labels, probabilities) + l2 * np.sum(model.linear.weight.detach().double().numpy() ** 2))


def test_a_gradient_fit_is_certified_by_the_newton_decrement() -> None:
    """Many LBFGS epochs: a gap at rounding level; one SGD epoch: a gap near the true excess objective."""
    l2 = 0.01
    data, features, labels = _logistic_problem()
    standardized = StandardScaler().fit_transform(features)
    reference = SkLogisticRegression(
        solver="newton-cholesky", C=sklearn_logistic_c(l2, len(labels)), tol=1e-12, max_iter=100
    ).fit(standardized, labels)
    optimum = log_loss(labels, reference.predict_proba(standardized)) + l2 * np.sum(reference.coef_**2)

    torch.manual_seed(0)
    converged = LogisticRegression(in_features=5, l2_strength=l2, optimizer=lbfgs)
    trainer = fit(converged, data, epochs=5)
    certificate = _callback(trainer, LogLossCertificate)
    assert isinstance(certificate, LogLossCertificate) and certificate.certificate is not None
    small, objective = certificate.certificate
    assert objective == pytest.approx(optimum, rel=1e-10)
    assert 0 <= small < 1e-12 * objective

    torch.manual_seed(0)
    sgd = LogisticRegression(in_features=5, l2_strength=l2, optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    data.batch_size = 64
    trainer = fit(sgd, data, epochs=1)
    certificate = _callback(trainer, LogLossCertificate)
    assert isinstance(certificate, LogLossCertificate) and certificate.certificate is not None
    large, objective = certificate.certificate
    excess = _objective(sgd, features, labels, l2) - optimum  # the true distance to the minimum
    assert objective == pytest.approx(_objective(sgd, features, labels, l2), rel=1e-10)
    assert large > 1e-4 * objective and large > 1e6 * small
    assert large == pytest.approx(excess, rel=0.2)  # λ²/2 estimates f - f* to leading order


def test_the_optimality_gap_on_a_memmap_is_the_mse_difference_against_lstsq(tmp_path: Path) -> None:
    """Gradient steps on rows that stay on disk: the gap equals the directly computed MSE minus lstsq's."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(900, 4)) * [1.0, 3.0, 0.5, 2.0] + [10.0, -5.0, 0.0, 40.0]
    y = x @ np.array([0.7, -1.2, 2.0, 0.1]) + 3.0 + 0.5 * rng.normal(size=900)
    path = tmp_path / "features.npy"
    np.save(path, x)
    data = ArraysDataModule(np.load(path, mmap_mode="r"), y, batch_size=128, block_rows=16)
    assert data.out_of_core
    model = LinearRegression(in_features=4, optimizer=lambda params: torch.optim.SGD(params, lr=0.05))
    trainer = fit(model, data, epochs=2)
    assert data.rows_in_memory("train") is None

    design = np.hstack([np.ones((900, 1)), x])
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    optimum_mse = np.mean((y - design @ solution) ** 2)
    model_mse = np.mean((y - x @ model.coef_[0] - model.intercept_[0]) ** 2)
    expected = model_mse - optimum_mse
    assert expected > 1e-3 * optimum_mse  # two SGD epochs stop short of the optimum

    callback = _callback(trainer, OptimalityGap)
    assert isinstance(callback, OptimalityGap) and callback.certificate is not None
    gap, relative = callback.certificate
    assert gap == pytest.approx(expected, rel=1e-8)
    assert relative == pytest.approx(expected / optimum_mse, rel=1e-8)
    assert callback.optimum_mse == pytest.approx(optimum_mse, rel=1e-12)
    assert float(trainer.callback_metrics["optimality_gap"]) == pytest.approx(expected, rel=1e-6)  # logged as float32
