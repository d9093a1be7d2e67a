"""Issue 2's path, end to end through real CLI invocations: fit -> test -> predict -> reload elsewhere."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lr_lightning import MultiOutputRegression, least_squares
from lr_lightning.cli import cli
from lr_lightning.data.sourdough import SOURDOUGH_FEATURES, SOURDOUGH_TARGETS
from tests.helpers import CONFIGS, REPO, run_cli

CONFIG = str(CONFIGS / "sourdough.yaml")
OPTIMUM_MSE = 6.0605  # numpy lstsq with intercept, float64


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real `lr-lightning fit` of the shipped config, in a temporary directory."""
    workdir = tmp_path_factory.mktemp("sourdough")
    result = run_cli(["fit", "--config", CONFIG], cwd=workdir)
    run_dir = workdir / "runs" / "sourdough" / "version_0"
    best = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    return {"workdir": workdir, "run_dir": run_dir, "best": best, "stdout": result.stdout}


def test_fit_writes_run_folder(fitted: dict) -> None:
    run_dir = fitted["run_dir"]
    assert (run_dir / "config.yaml").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert (run_dir / "checkpoints" / "latest.ckpt").is_file()
    assert f"tensorboard --logdir {Path('runs') / 'sourdough'}" in fitted["stdout"]
    assert str(Path("runs/sourdough/version_0/checkpoints") / fitted["best"].name) in fitted["stdout"]


def test_training_reaches_least_squares_optimum(fitted: dict) -> None:
    model = MultiOutputRegression.load_from_checkpoint(fitted["best"], weights_only=True)
    with torch.no_grad():
        predictions = model(torch.tensor(SOURDOUGH_FEATURES, dtype=torch.float32)).double().numpy()
    train_mse = float(np.mean((predictions - SOURDOUGH_TARGETS) ** 2))
    assert train_mse <= OPTIMUM_MSE * 1.01

    # Near the optimum the MSE is flat along the acidity direction, so the epoch with the lowest float32 val_loss
    # need not hold the closest coefficients; the last epoch's do.
    final = MultiOutputRegression.load_from_checkpoint(fitted["run_dir"] / "checkpoints" / "latest.ckpt")
    reference = least_squares(SOURDOUGH_FEATURES, SOURDOUGH_TARGETS)
    assert final.coef_.shape == (2, 3) and final.intercept_.shape == (2,)
    # float32 training: coefficients within 1e-3 relative of float64 least squares.
    np.testing.assert_allclose(final.coef_, reference.coef_, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(final.intercept_, reference.intercept_, rtol=1e-3)


def test_checkpoint_is_self_contained(fitted: dict) -> None:
    checkpoint = torch.load(fitted["best"], weights_only=True, map_location="cpu")
    hparams = checkpoint["hyper_parameters"]
    assert hparams["target_names"] == ["flavour", "crust"]
    assert hparams["feature_names"] == ["proofing_time_h", "acidity_ph", "starter_age_days"]
    assert hparams["in_features"] == 3 and hparams["out_features"] == 2
    state = checkpoint["state_dict"]
    features = torch.tensor(SOURDOUGH_FEATURES)
    torch.testing.assert_close(state["feature_mean"].double(), features.mean(0), rtol=1e-6, atol=0)
    torch.testing.assert_close(state["feature_scale"].double(), features.std(0, correction=0), rtol=1e-6, atol=0)


def test_test_and_predict_from_checkpoint_in_fresh_processes(fitted: dict) -> None:
    workdir, best = fitted["workdir"], str(fitted["best"])
    tested = run_cli(["test", "--config", CONFIG, "--ckpt_path", best], cwd=workdir)
    assert "test_loss" in tested.stdout and "test_r2/flavour" in tested.stdout

    validated = run_cli(["validate", "--config", CONFIG, "--ckpt_path", best], cwd=workdir)
    assert "val_loss" in validated.stdout

    predicted = run_cli(["predict", "--config", CONFIG, "--ckpt_path", best], cwd=workdir)
    line = next(x for x in predicted.stdout.splitlines() if x.startswith("Predictions written to "))
    path = workdir / line.removeprefix("Predictions written to ")
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    # The predictions, then each target's actual value and residual (the loaves have their targets).
    assert rows[0] == ["flavour", "crust", "flavour_actual", "flavour_residual", "crust_actual", "crust_residual"]
    assert len(rows) == 1 + 10
    table = np.array(rows[1:], dtype=np.float64)
    values = table[:, :2]
    np.testing.assert_allclose(table[:, [3, 5]], table[:, [2, 4]] - values, atol=1e-4)
    model = MultiOutputRegression.load_from_checkpoint(best, weights_only=True)
    with torch.no_grad():
        expected = model(torch.tensor(SOURDOUGH_FEATURES, dtype=torch.float32)).numpy()
    np.testing.assert_array_equal(values.astype(np.float32), expected)


def test_reloaded_checkpoint_predicts_bit_for_bit(fitted: dict, tmp_path: Path) -> None:
    out = tmp_path / "fresh.npy"
    script = (
        "import sys, numpy as np, torch\n"
        "from lr_lightning import MultiOutputRegression\n"
        "from lr_lightning.data.sourdough import SOURDOUGH_FEATURES\n"
        "m = MultiOutputRegression.load_from_checkpoint(sys.argv[1], weights_only=True)\n"
        "with torch.no_grad():\n"
        "    np.save(sys.argv[2], m(torch.tensor(SOURDOUGH_FEATURES, dtype=torch.float32)).numpy())\n"
    )
    subprocess.run([sys.executable, "-c", script, str(fitted["best"]), str(out)], check=True, cwd=REPO)
    model = MultiOutputRegression.load_from_checkpoint(fitted["best"], weights_only=True)
    with torch.no_grad():
        here = model(torch.tensor(SOURDOUGH_FEATURES, dtype=torch.float32)).numpy()
    fresh = np.load(out)
    assert fresh.dtype == here.dtype and np.array_equal(fresh, here)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_second_fit_leaves_first_run_untouched(in_tmp_path: Path) -> None:
    args = ["fit", "--config", CONFIG, "--trainer.max_epochs", "3"]
    cli(args)
    first = in_tmp_path / "runs" / "sourdough" / "version_0"
    before = _digest(first)
    assert "config.yaml" in before and any(name.startswith("checkpoints/") for name in before)
    second = cli(args)
    assert Path(second.trainer.log_dir).resolve() == (in_tmp_path / "runs" / "sourdough" / "version_1").resolve()
    assert _digest(first) == before


def test_cli_leaves_warning_filters_and_environment_as_they_were(
    in_tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    """In-process runs hide the libraries' noise for their own duration only (recwarn shows every other warning)."""
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)  # set by Lightning's seed_everything during a run
    monkeypatch.delenv("JSONARGPARSE_DEPRECATION_WARNINGS", raising=False)
    filters, environment = list(warnings.filters), dict(os.environ)
    cli(["fit", "--config", CONFIG, "--trainer.max_epochs", "1"])
    cli(["predict", "--config", CONFIG, "--ckpt_path", "last"])  # also hides ModelCheckpoint's dirpath warning
    assert warnings.filters == filters
    assert dict(os.environ) == environment
    hidden = ("configure_optimizers` will be overridden", "LeafSpec", "was deprecated in v", "dirpath has changed")
    assert not [str(w.message) for w in recwarn if any(text in str(w.message) for text in hidden)]


def test_print_config_prints_a_config_that_runs_as_it_is(tmp_path: Path) -> None:
    printed = run_cli(["fit", "--print_config"], cwd=tmp_path)
    assert "model: null" not in printed.stdout and "data: null" not in printed.stdout
    (tmp_path / "printed.yaml").write_text(printed.stdout)
    run_cli(["fit", "--config", "printed.yaml", "--trainer.max_epochs", "2"], cwd=tmp_path)
    assert (tmp_path / "runs" / "default" / "version_0" / "checkpoints" / "latest.ckpt").is_file()


def test_fit_ends_with_a_summary_of_the_model(fitted: dict) -> None:
    """The best epoch (the best checkpoint's) with its metrics, the last epoch's, and the coefficients."""
    lines = fitted["stdout"].splitlines()
    best_epoch = int(re.search(r"epoch=(\d+)", fitted["best"].name).group(1))
    [best] = [line for line in lines if line.startswith("Best epoch")]
    assert best.startswith(f"Best epoch {best_epoch} (by val_loss): val_loss ") and "val_r2" in best
    [last] = [line for line in lines if line.startswith("Last epoch")]
    assert last.startswith("Last epoch 59: val_loss ") and "optimality_gap" in last
    gap = float(re.search(r"optimality_gap (\S+)", last).group(1).rstrip(","))
    assert abs(gap) < 1e-3 * OPTIMUM_MSE
    reference = least_squares(SOURDOUGH_FEATURES, SOURDOUGH_TARGETS)
    row = next(line for line in lines if line.startswith("| flavour | acidity_ph |"))
    learned, exact = (float(cell) for cell in row.strip("|").split("|")[2:4])
    assert exact == pytest.approx(reference.coef_[0, 1], rel=1e-5)
    assert learned == pytest.approx(exact, rel=1e-3)
    assert lines.index(last) < lines.index(row) < next(i for i, line in enumerate(lines) if "Run folder" in line)
