"""``solver="newton"`` on LogisticRegression: scikit-learn's penalized optimum in a few epochs, no optimizer steps.

The references are scikit-learn's ``LogisticRegression(solver="newton-cholesky")`` on the standardized features
with the mapped ``C = 1 / (2 N l2_strength)`` (:mod:`lr_lightning.penalties`). Its multinomial intercepts are
centred (they are unique only up to a common shift, which the unpenalized bias keeps from the initialisation), so
multi-class intercepts are compared after centring; weights and coefficients are unique and compared directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

from lr_lightning.cli import main
from lr_lightning.data import ArraysDataModule, SyntheticClassificationDataModule
from lr_lightning.errors import InputError
from lr_lightning.models import LogisticRegression
from lr_lightning.models.newton_fit import LogLossCertificate
from lr_lightning.penalties import sklearn_logistic_c
from tests.helpers import CONFIGS, REPO, run_cli

EPOCHS = 10


class EpochGaps(pl.Callback):
    """The ``log_loss_gap`` the Newton solver logged for each epoch (at the epoch's starting weights)."""

    def __init__(self) -> None:
        self.gaps: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.gaps.append(float(trainer.callback_metrics["log_loss_gap"]))


def _newton_fit(
    data: pl.LightningDataModule, in_features: int, num_classes: int, l2: float, epochs: int = EPOCHS
) -> tuple[LogisticRegression, pl.Trainer, EpochGaps]:
    torch.manual_seed(0)  # PyTorch's default initialisation: Newton starts from random weights and bias
    model = LogisticRegression(
        in_features=in_features,
        num_classes=num_classes,
        solver="newton",
        l2_strength=l2,
        # If this optimizer ever stepped, the weights would be garbage: the solver must not step it.
        optimizer=lambda params: torch.optim.SGD(params, lr=1e9),
    )
    gaps = EpochGaps()
    trainer = pl.Trainer(
        max_epochs=epochs,
        precision="64-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[gaps],
    )
    trainer.fit(model, datamodule=data)
    return model, trainer, gaps


def _certificate(trainer: pl.Trainer) -> tuple[float, float]:
    (callback,) = [c for c in trainer.callbacks if isinstance(c, LogLossCertificate)]  # type: ignore[attr-defined]
    assert callback.certificate is not None
    return callback.certificate


CASES: dict[str, tuple[Callable, float]] = {
    "breast_cancer": (load_breast_cancer, 1e-3),  # binary: one logit, 30 features
    "wine": (load_wine, 1e-2),  # 3 classes, softmax, 13 features
    "iris": (load_iris, 1e-3),  # 3 classes, two of them overlapping
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_sklearn_newton_cholesky_and_converges(name: str) -> None:
    loader, l2 = CASES[name]
    x, y = loader(return_X_y=True)
    num_classes = int(y.max()) + 1
    model, trainer, epoch_gaps = _newton_fit(ArraysDataModule(x, y, task="classification"), x.shape[1], num_classes, l2)

    scaler = StandardScaler().fit(x)
    standardized = scaler.transform(x)
    reference = SkLogisticRegression(
        solver="newton-cholesky", C=sklearn_logistic_c(l2, len(y)), tol=1e-12, max_iter=100
    )
    reference.fit(standardized, y)
    # The layer's weights are on the standardized features scikit-learn saw; coef_ is in the original units.
    np.testing.assert_allclose(model.linear.weight.detach().numpy(), reference.coef_, rtol=1e-6, atol=1e-9)
    coef = reference.coef_ / scaler.scale_
    intercept = reference.intercept_ - coef @ scaler.mean_
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-6, atol=1e-9)
    if num_classes == 2:
        np.testing.assert_allclose(model.intercept_, intercept, rtol=1e-6)
    else:
        np.testing.assert_allclose(model.intercept_ - model.intercept_.mean(), intercept - intercept.mean(), atol=1e-8)
    with torch.no_grad():
        probabilities = model.predict_proba(x)
    np.testing.assert_allclose(probabilities, reference.predict_proba(standardized), atol=1e-9)

    # The objective is the mean log-loss plus l2 * ||W||² on standardized features; the Newton decrement at the
    # final weights certifies it is at its minimum, and the per-epoch log_loss_gap fell to rounding.
    gap, objective = _certificate(trainer)
    expected = log_loss(y, reference.predict_proba(standardized)) + l2 * np.sum(reference.coef_**2)
    assert objective == pytest.approx(expected, rel=1e-10)
    assert len(epoch_gaps.gaps) == EPOCHS
    assert epoch_gaps.gaps[0] > 1e-3 * objective  # a random start is far from the optimum
    assert epoch_gaps.gaps[-1] < 1e-12 * objective
    assert gap < 1e-12 * objective

    # No optimizer step (the SGD above would have blown up): each epoch counts its one chunk as a step.
    assert not model.automatic_optimization
    assert trainer.global_step == EPOCHS


def test_a_memmapped_copy_fits_like_in_memory(tmp_path: Path) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    path = tmp_path / "features.npy"
    np.save(path, x)
    on_disk = ArraysDataModule(np.load(path, mmap_mode="r"), y, task="classification", block_rows=16)
    in_memory = ArraysDataModule(x, y, task="classification")
    assert on_disk.out_of_core and not in_memory.out_of_core
    disk_model, _, _ = _newton_fit(on_disk, 30, 2, l2=1e-3)
    assert on_disk.rows_in_memory("train") is None  # the rows stayed on disk
    memory_model, _, _ = _newton_fit(in_memory, 30, 2, l2=1e-3)
    np.testing.assert_allclose(disk_model.coef_, memory_model.coef_, rtol=1e-10)
    np.testing.assert_allclose(disk_model.intercept_, memory_model.intercept_, rtol=1e-10)


def _separable(rows: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Two features and labels x1 + 2 x2 > 0, with a margin: a line classifies every row correctly."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(4 * rows, 2))
    margin = x[:, 0] + 2 * x[:, 1]
    x = x[np.abs(margin) > 0.2][:rows]
    return x, (x[:, 0] + 2 * x[:, 1] > 0).astype(np.int64)


def test_separable_rows_are_refused_without_a_penalty() -> None:
    x, y = _separable()
    with pytest.raises(InputError, match="separable") as error:
        _newton_fit(ArraysDataModule(x, y, task="classification"), 2, 2, l2=0.0)
    assert "l2_strength" in str(error.value)
    # With a penalty the minimum exists and the same rows fit.
    model, _, _ = _newton_fit(ArraysDataModule(x, y, task="classification"), 2, 2, l2=1e-2)
    assert np.all(np.isfinite(model.coef_))


def test_separable_rows_through_the_cli_exit_2_with_one_line(
    in_tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = _separable()
    lines = ["x1,x2,label"] + [
        f"{float(a)!r},{float(b)!r},{'yes' if c else 'no'}" for (a, b), c in zip(x, y, strict=True)
    ]
    (in_tmp_path / "separable.csv").write_text("\n".join(lines) + "\n")
    options = ["--data.init_args.path", "separable.csv", "--data.init_args.targets", "label"]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "logistic_csv.yaml"), *options, "--model.init_args.solver", "newton"])
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "separable" in last_line and "l2_strength" in last_line
    assert "Traceback" not in last_line


def test_refused_options() -> None:
    with pytest.raises(InputError, match="l1_strength must be 0"):
        LogisticRegression(in_features=2, solver="newton", l1_strength=0.1)
    with pytest.raises(InputError, match="loss"):
        LogisticRegression(in_features=2, solver="newton", loss="mse")
    with pytest.raises(InputError, match="solver must be one of gradient, newton, got 'exact'"):
        LogisticRegression(in_features=2, solver="exact")
    # The same options are fine with the gradient solver, the default.
    assert LogisticRegression(in_features=2, loss="mse").automatic_optimization
    assert LogisticRegression(in_features=2, l1_strength=0.1).hparams["solver"] == "gradient"


def test_a_bad_solver_through_the_cli_exits_2(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "logistic_synthetic.yaml"), "--model.init_args.solver", "exact"])
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "solver" in last_line and "exact" in last_line


#: The synthetic binary data of configs/logistic_synthetic.yaml, smaller: an odd number of training rows.
SYNTHETIC: dict[str, Any] = {
    "n_samples": 501,
    "n_features": 4,
    "n_informative": 2,
    "seed": 0,
    "val_fraction": 0.2,
    "test_fraction": 0.2,
}


@pytest.mark.slow
def test_ddp_on_two_processes_equals_one_process(tmp_path: Path) -> None:
    """Two gloo processes, each summing its shard of an odd number of rows: the single-process weights to 1e-10."""
    l2 = "0.01"
    options = [
        *("--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2"),
        *("--trainer.precision", "64-true", "--trainer.max_epochs", str(EPOCHS)),
        *("--model.init_args.solver", "newton", "--model.init_args.l2_strength", l2),
        *("--data.init_args.n_samples", str(SYNTHETIC["n_samples"])),
    ]
    result = run_cli(["fit", "--config", str(CONFIGS / "logistic_synthetic.yaml"), *options], cwd=tmp_path)
    assert result.stdout.count("Certificate: log-loss gap") == 1  # printed once, by rank 0
    checkpoint = tmp_path / "runs" / "logistic_synthetic" / "version_0" / "checkpoints" / "latest.ckpt"
    # load_from_checkpoint builds a float32 model; the float64 weights are compared as saved.
    ddp = LogisticRegression(in_features=4, num_classes=2, solver="newton").double()
    ddp.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])

    data = SyntheticClassificationDataModule(**SYNTHETIC)
    single, _, _ = _newton_fit(data, 4, 2, l2=float(l2))
    assert len(data.split_tensors("train")[1]) % 2 == 1  # two ranks cannot split it evenly
    # The scaling of all training rows (summed by shards under DDP: equal to rounding).
    np.testing.assert_allclose(ddp.feature_mean.numpy(), single.feature_mean.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ddp.feature_scale.numpy(), single.feature_scale.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ddp.coef_, single.coef_, rtol=1e-10)
    np.testing.assert_allclose(ddp.intercept_, single.intercept_, rtol=1e-10)


def test_the_shipped_newton_config_reaches_the_optimum_in_its_epochs(in_tmp_path: Path) -> None:
    """configs/logistic_newton.yaml (iris, penalized, 8 epochs): the end-of-fit decrement is at rounding level."""
    from lr_lightning.cli import cli

    iris = str(REPO / "data" / "iris.csv")
    run = cli(["fit", "--config", str(CONFIGS / "logistic_newton.yaml"), "--data.init_args.path", iris])
    (certificate,) = [c for c in run.trainer.callbacks if isinstance(c, LogLossCertificate)]  # type: ignore[attr-defined]
    assert certificate.certificate is not None
    gap, objective = certificate.certificate
    assert gap < 1e-12 * objective
