"""``solver="exact"``: one epoch of a streaming QR gives least squares and ridge, as numpy and scikit-learn do."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from lr_lightning import least_squares
from lr_lightning.callbacks import OptimalityGap
from lr_lightning.cli import main
from lr_lightning.closed_form import RankDeficiencyWarning, through_point
from lr_lightning.data import ArraysDataModule, SourdoughDataModule
from lr_lightning.data.sourdough import SOURDOUGH_FEATURES, SOURDOUGH_TARGETS
from lr_lightning.errors import InputError
from lr_lightning.models import LinearRegression, MultiOutputRegression
from lr_lightning.penalties import sklearn_ridge_alpha
from tests.helpers import (
    CONFIGS,
    LONGLEY_COEF,
    LONGLEY_INTERCEPT,
    NORRIS_B0,
    NORRIS_B1,
    NORRIS_CSV,
    NORRIS_RSS,
    fit,
    longley,
    run_cli,
)

#: Relative tolerance of float32 weights (and float32 buffers and data) against the float64 solution.
FLOAT32_RTOL = 1e-5


def _three_targets(rows: int = 300, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5)) * [1.0, 10.0, 0.1, 3.0, 1.0] + [0.0, 50.0, -2.0, 0.0, 7.0]
    coef = rng.normal(size=(3, 5))
    y = x @ coef.T + [1.0, -4.0, 20.0] + 0.3 * rng.normal(size=(rows, 3))
    return x, y


def _exact_fit(
    x: np.ndarray, y: np.ndarray, precision: str = "64-true", epochs: int = 1, **options: Any
) -> tuple[MultiOutputRegression, pl.Trainer]:
    data_options = {key: options.pop(key) for key in ("standardize", "standardize_targets") if key in options}
    data = ArraysDataModule(x, y, batch_size=64, shuffle=True, **data_options)
    model = MultiOutputRegression(in_features=x.shape[1], out_features=y.shape[1], solver="exact", **options)
    trainer = fit(model, data, epochs=epochs, precision=precision)
    return model, trainer


@pytest.mark.parametrize("precision", ["64-true", "32-true"])
def test_sourdough_in_one_epoch_is_least_squares_and_the_gap_is_zero(precision: str) -> None:
    data = SourdoughDataModule(batch_size=3)  # the exact solver reads one pass of chunks whatever batch_size
    model = MultiOutputRegression(in_features=3, out_features=2, solver="exact")
    trainer = fit(model, data, epochs=1, precision=precision)
    reference = least_squares(SOURDOUGH_FEATURES, SOURDOUGH_TARGETS)
    rtol, gap = (1e-10, 1e-10) if precision == "64-true" else (FLOAT32_RTOL, 1e-4)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=rtol)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=rtol)
    assert abs(float(trainer.callback_metrics["optimality_gap"])) < gap
    np.testing.assert_allclose(float(trainer.callback_metrics["train_loss"]), reference.mse_, rtol=max(rtol, 1e-7))
    assert trainer.global_step == 1  # one step per chunk of the pass (the ten rows), no optimizer step


def test_three_targets_match_lstsq_and_later_epochs_keep_the_weights() -> None:
    x, y = _three_targets()
    reference = least_squares(x, y)
    one, _ = _exact_fit(x, y)
    np.testing.assert_allclose(one.coef_, reference.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(one.intercept_, reference.intercept_, rtol=1e-10)
    three, _ = _exact_fit(x, y, epochs=3)  # each epoch re-solves: the same answer to rounding
    np.testing.assert_allclose(three.coef_, one.coef_, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(three.intercept_, one.intercept_, rtol=1e-12)
    single, _ = _exact_fit(x, y, precision="32-true")
    np.testing.assert_allclose(single.coef_, reference.coef_, rtol=FLOAT32_RTOL, atol=1e-5)
    np.testing.assert_allclose(single.intercept_, reference.intercept_, rtol=FLOAT32_RTOL)


@pytest.mark.parametrize("standardize", [True, False])
def test_l2_matches_sklearn_ridge(standardize: bool) -> None:
    x, y = _three_targets()
    l2 = 0.05
    model, _ = _exact_fit(x, y, standardize=standardize, l2_strength=l2)
    design = StandardScaler().fit_transform(x) if standardize else x
    reference = Ridge(alpha=sklearn_ridge_alpha(l2, len(x))).fit(design, y)
    # The layer's weights are those of the standardized (or raw) features that Ridge saw.
    np.testing.assert_allclose(model.linear.weight.detach().numpy(), reference.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.linear.bias.detach().numpy(), reference.intercept_, rtol=1e-10)


def test_standardized_targets_change_the_layer_not_the_solution() -> None:
    x, y = _three_targets()
    plain, _ = _exact_fit(x, y, l2_strength=0.05)
    scaled, _ = _exact_fit(x, y, l2_strength=0.05, standardize_targets=True)
    assert not np.allclose(scaled.linear.weight.detach().numpy(), plain.linear.weight.detach().numpy())
    np.testing.assert_allclose(scaled.coef_, plain.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scaled.intercept_, plain.intercept_, rtol=1e-10)


def test_without_bias() -> None:
    x, y = _three_targets()
    raw, _ = _exact_fit(x, y, standardize=False, bias=False)
    reference = least_squares(x, y, fit_intercept=False)
    np.testing.assert_allclose(raw.coef_, reference.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(raw.intercept_, 0.0, atol=1e-12)
    # On centred features the layer without a bias passes through (mean of x, 0): the fit through that point.
    centred, _ = _exact_fit(x, y, standardize=True, bias=False)
    through = through_point(least_squares(x, y), x.mean(axis=0), np.zeros(3))
    np.testing.assert_allclose(centred.coef_, through.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(centred.intercept_, through.intercept_, rtol=1e-10, atol=1e-10)


def test_a_rank_deficient_design_warns_and_gives_the_minimum_norm_solution() -> None:
    x, y = _three_targets(rows=100)
    x = np.hstack([x[:, :2], 2.0 * x[:, :1]])  # the third column is twice the first: rank 2
    with pytest.warns(RankDeficiencyWarning, match="rank 2 < 3"):
        model, _ = _exact_fit(x, y, standardize=False)
    centred_x, centred_y = x - x.mean(axis=0), y - y.mean(axis=0)
    minimum_norm = np.linalg.lstsq(centred_x, centred_y, rcond=None)[0].T  # (K, D)
    np.testing.assert_allclose(model.coef_, minimum_norm, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.coef_[:, 2], 2.0 * model.coef_[:, 0], rtol=1e-9)  # no weight to spare


def test_bad_options_are_refused() -> None:
    with pytest.raises(InputError, match="solver must be one of gradient, exact, got 'newton'"):
        LinearRegression(in_features=2, solver="newton")
    with pytest.raises(InputError, match="l1_strength must be 0"):
        LinearRegression(in_features=2, solver="exact", l1_strength=0.1)
    gradient = LinearRegression(in_features=2)
    assert gradient.automatic_optimization and gradient.hparams["solver"] == "gradient"


def test_the_exact_config_fits_and_its_checkpoint_reloads(tmp_path: Path) -> None:
    run_cli(["fit", "--config", str(CONFIGS / "exact.yaml")], cwd=tmp_path)
    checkpoint = tmp_path / "runs" / "exact" / "version_0" / "checkpoints" / "latest.ckpt"
    model = MultiOutputRegression.load_from_checkpoint(checkpoint)
    assert model.hparams["solver"] == "exact" and model.solver == "exact" and not model.automatic_optimization
    reference = least_squares(SOURDOUGH_FEATURES, SOURDOUGH_TARGETS)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=FLOAT32_RTOL)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=FLOAT32_RTOL)


def test_a_bad_solver_exits_2_naming_the_option(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "exact.yaml"), "--model.init_args.solver", "newton"])
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "solver" in last_line and "newton" in last_line


def _lstsq(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy's least squares with an intercept: coefficients (K, D) and intercepts (K,), for targets (N,) or (N, K)."""
    design = np.hstack([np.ones((len(x), 1)), x])
    solution = np.linalg.lstsq(design, y.reshape(len(y), -1), rcond=None)[0]  # (1 + D, K)
    return solution[1:].T, solution[0]


def test_a_memmapped_npy_stays_on_disk_and_solves_like_in_memory(tmp_path: Path) -> None:
    """The exact solver and the optimality gap on rows read from disk chunk by chunk: the in-memory answer."""
    x, y = _three_targets(rows=700)
    path = tmp_path / "features.npy"
    np.save(path, x)
    on_disk = ArraysDataModule(np.load(path, mmap_mode="r"), y, batch_size=50, block_rows=16)
    in_memory = ArraysDataModule(x, y, batch_size=50)
    assert on_disk.out_of_core and not in_memory.out_of_core
    disk_model = MultiOutputRegression(in_features=5, out_features=3, solver="exact")
    trainer = fit(disk_model, on_disk, epochs=1)
    assert on_disk.rows_in_memory("train") is None  # never loaded whole
    memory_model = MultiOutputRegression(in_features=5, out_features=3, solver="exact")
    fit(memory_model, in_memory, epochs=1)
    np.testing.assert_allclose(disk_model.coef_, memory_model.coef_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(disk_model.intercept_, memory_model.intercept_, rtol=1e-12)
    coef, intercept = _lstsq(x, y)
    np.testing.assert_allclose(disk_model.coef_, coef, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(disk_model.intercept_, intercept, rtol=1e-10)
    # The optimality gap, once skipped for data on disk, is logged and is ~0 at the exact solution.
    assert "optimality_gap" in trainer.callback_metrics
    (gap_callback,) = [c for c in trainer.callbacks if isinstance(c, OptimalityGap)]  # type: ignore[attr-defined]
    assert gap_callback.certificate is not None
    optimum_mse = float(np.mean((y - x @ coef.T - intercept) ** 2))
    assert abs(gap_callback.certificate[0]) < 1e-10 * optimum_mse
    assert abs(float(trainer.callback_metrics["optimality_gap"])) < 1e-10 * optimum_mse


def test_nist_norris_certified_values_in_one_epoch() -> None:
    table = np.loadtxt(NORRIS_CSV, delimiter=",", skiprows=1)
    x, y = table[:, :1], table[:, 1]
    model, trainer = _exact_fit(x, y[:, None])
    np.testing.assert_allclose(model.intercept_[0], NORRIS_B0, rtol=1e-12)
    np.testing.assert_allclose(model.coef_[0, 0], NORRIS_B1, rtol=1e-12)
    np.testing.assert_allclose(float(trainer.callback_metrics["train_loss"]) * len(y), NORRIS_RSS, rtol=1e-6)


def test_nist_longley_to_ten_significant_digits() -> None:
    """Longley's raw design has condition number ~5e9: the model, standardized, keeps 10 certified digits."""
    features, targets = longley()
    data = ArraysDataModule(features, targets, batch_size=4, standardize=True)  # chunks, whatever batch_size
    model = LinearRegression(in_features=6, solver="exact")
    fit(model, data, epochs=1)
    np.testing.assert_allclose(model.coef_[0], LONGLEY_COEF, rtol=1e-10)
    np.testing.assert_allclose(model.intercept_[0], LONGLEY_INTERCEPT, rtol=1e-10)


def _exact_rational_least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with an intercept, (b, w_1..w_D), of the float64 values exactly: normal equations in Fractions."""
    rows = [[Fraction(1)] + [Fraction(float(v)) for v in row] for row in x]
    rhs = [Fraction(float(v)) for v in y]
    width = x.shape[1] + 1
    system = [
        [sum((row[j] * row[k] for row in rows), Fraction(0)) for k in range(width)]
        + [sum((row[j] * t for row, t in zip(rows, rhs, strict=True)), Fraction(0))]
        for j in range(width)
    ]
    for col in range(width):  # Gauss-Jordan elimination, exact
        pivot = next(r for r in range(col, width) if system[r][col] != 0)
        system[col], system[pivot] = system[pivot], system[col]
        for r in range(width):
            if r != col and system[r][col] != 0:
                factor = system[r][col] / system[col][col]
                system[r] = [a - factor * b for a, b in zip(system[r], system[col], strict=True)]
    return np.array([float(system[i][width] / system[i][i]) for i in range(width)])


def test_an_ill_conditioned_design_is_solved_as_accurately_as_lstsq() -> None:
    """Condition number ~2e9 (~2e6 standardized): nearly collinear columns, one far from zero, one tiny.

    The reference is the exact least-squares solution of the float64 data (rational arithmetic). The normal
    equations in float64 lose most digits (~cond² eps); numpy's lstsq (SVD) keeps about cond·eps; ours must too.
    """
    rng = np.random.default_rng(5)
    base = rng.normal(size=60)
    x = np.column_stack(
        [base, base + 1e-6 * rng.normal(size=60), 1000.0 + rng.normal(size=60), 0.01 * rng.normal(size=60)]
    )
    y = x @ np.array([1.0, 2.0, -0.5, 30.0]) + 4.0 + 0.01 * rng.normal(size=60)
    design = np.hstack([np.ones((60, 1)), x])
    assert np.linalg.cond(design) >= 1e9 and np.linalg.cond(StandardScaler().fit_transform(x)) >= 1e6
    exact = _exact_rational_least_squares(x, y)

    def error(estimate: np.ndarray) -> float:
        return float(np.linalg.norm(estimate - exact) / np.linalg.norm(exact))

    lstsq_error = error(np.linalg.lstsq(design, y, rcond=None)[0])
    normal_error = error(np.linalg.solve(design.T @ design, design.T @ y))
    assert normal_error > 1e4 * lstsq_error  # the problem is hard enough to tell a sloppy solver apart

    data = ArraysDataModule(x, y, batch_size=7)
    model = LinearRegression(in_features=4, solver="exact")
    fit(model, data, epochs=1)
    ours = error(np.concatenate([model.intercept_, model.coef_[0]]))
    assert ours <= 10 * lstsq_error + 1e-15, (ours, lstsq_error)


@pytest.mark.slow
def test_ddp_on_three_processes_drops_no_row(tmp_path: Path) -> None:
    """Three CPU processes share the 10 loaves 4/3/3 (an equal split would drop or repeat one): least squares of all 10.

    Every rank folds its covering shard into a float64 QR; the merged states solve to numpy's lstsq of the ten
    rows to 1e-10, while dropping or repeating any one row moves the solution by more than 1e-4 (checked).
    """
    options = ["--model.init_args.solver", "exact", "--trainer.max_epochs", "1", "--trainer.devices", "3"]
    result = run_cli(
        ["fit", "--config", str(CONFIGS / "ddp.yaml"), *options, "--trainer.precision", "64-true"], cwd=tmp_path
    )
    checkpoint = tmp_path / "runs" / "sourdough_ddp" / "version_0" / "checkpoints" / "latest.ckpt"
    # load_from_checkpoint builds a float32 model; the float64 weights are compared as saved.
    model = MultiOutputRegression(in_features=3, out_features=2, solver="exact").double()
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    coef, intercept = _lstsq(SOURDOUGH_FEATURES, SOURDOUGH_TARGETS)
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-10)
    np.testing.assert_allclose(model.intercept_, intercept, rtol=1e-10)
    # The optimality gap's reference, streamed by the three ranks and merged, holds the ten rows once each.
    assert "Certificate: optimality gap" in result.stdout and "over the 10 training rows" in result.stdout
    for row in range(10):  # what one row dropped, or one row counted twice, would give instead
        for keep in (np.delete(np.arange(10), row), np.append(np.arange(10), row)):
            other, _ = _lstsq(SOURDOUGH_FEATURES[keep], SOURDOUGH_TARGETS[keep])
            assert np.max(np.abs(other - coef) / np.abs(coef)) > 1e-4


def test_a_float64_checkpoint_keeps_every_digit_when_predicting_in_64_true(tmp_path: Path) -> None:
    """Lightning restores --ckpt_path before converting the module: the model becomes float64 first, not after."""
    model, trainer = _exact_fit(*_three_targets(), precision="64-true")
    path = tmp_path / "fit.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["state_dict"]
    fresh = MultiOutputRegression(in_features=5, out_features=3, solver="exact")  # float32, as the CLI builds it
    x, y = _three_targets()
    predictor = pl.Trainer(precision="64-true", logger=False, enable_progress_bar=False, enable_model_summary=False)
    predictor.predict(fresh, datamodule=ArraysDataModule(x, y, batch_size=64), ckpt_path=path)
    assert fresh.linear.weight.dtype == torch.float64
    assert torch.equal(fresh.linear.weight, saved["linear.weight"])  # no float32 rounding on the way in
    assert torch.equal(fresh.feature_scale, saved["feature_scale"])
    np.testing.assert_array_equal(fresh.coef_, model.coef_)
