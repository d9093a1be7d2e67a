"""``l2_path``: the exact solver's ridge path, its strength chosen as scikit-learn's ``RidgeCV`` chooses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.preprocessing import StandardScaler
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lr_lightning import figures
from lr_lightning.cli import main
from lr_lightning.data import ArraysDataModule
from lr_lightning.data.sourdough import SOURDOUGH_FEATURES, SOURDOUGH_TARGETS
from lr_lightning.errors import InputError
from lr_lightning.models import LinearRegression, MultiOutputRegression
from tests.helpers import CONFIGS, fit, run_cli

#: Candidates around the data's best strength (the sklearn alphas are N times these).
PATH = [1e-4, 1e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]


def _data(n_targets: int, rows: int = 120, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Features of mixed scales and noisy targets whose leave-one-out curve has its minimum inside PATH."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8)) * [1.0, 10.0, 0.1, 3.0, 1.0, 2.0, 5.0, 0.5] + [0.0, 50.0, -2.0, 0, 7, 1, 0, 3]
    x[:, 5] = x[:, 0] * 2.0 + 0.3 * x[:, 5]  # correlated columns, so that shrinking helps
    coef = rng.normal(size=(8, n_targets)) / x.std(axis=0)[:, None]
    y = x @ coef + [4.0, -1.0, 2.0][:n_targets] + 2.0 * rng.normal(size=(rows, n_targets))
    return x, y


def _path_fit(x: np.ndarray, y: np.ndarray, **options: Any) -> tuple[MultiOutputRegression, pl.Trainer]:
    data_options = {key: options.pop(key) for key in ("standardize", "standardize_targets") if key in options}
    data = ArraysDataModule(x, y, batch_size=32, **data_options)
    model = MultiOutputRegression(x.shape[1], y.shape[1], solver="exact", l2_path=PATH, **options)
    return model, fit(model, data, epochs=1)


@pytest.mark.parametrize("n_targets", [1, 3])
def test_leave_one_out_chooses_and_scores_as_ridgecv(n_targets: int) -> None:
    x, y = _data(n_targets)
    model, trainer = _path_fit(x, y)
    selection = model.ridge_selection
    assert selection is not None
    n = len(x)
    design = StandardScaler().fit_transform(x)
    for mode in ("svd", "eigen"):  # RidgeCV's efficient leave-one-out, both ways (gcv_mode only picks how)
        target = y[:, 0] if n_targets == 1 else y  # 1-D y: cv_results_ is (N, A), else (N, K, A)
        reference = RidgeCV(alphas=n * np.array(PATH), store_cv_results=True, gcv_mode=mode).fit(design, target)
        per_row = reference.cv_results_.reshape(n, n_targets, len(PATH))
        assert selection.best_index_ == int(np.argmin(per_row.mean(axis=(0, 1))))
        assert model.l2_strength == PATH[selection.best_index_]
        np.testing.assert_allclose(n * model.l2_strength, reference.alpha_, rtol=1e-12)
        np.testing.assert_allclose(selection.scores_, per_row.mean(axis=(0, 1)), rtol=1e-6)
        np.testing.assert_allclose(selection.scores_per_target_, per_row.mean(axis=0).T, rtol=1e-6)
        np.testing.assert_allclose(-selection.scores_[selection.best_index_], reference.best_score_, rtol=1e-6)
    assert 0 < selection.best_index_ < len(PATH) - 1  # an inside choice: the test means something
    # The layer holds Ridge at the chosen alpha on the standardized features; coef_ in original units.
    ridge = Ridge(alpha=n * model.l2_strength).fit(design, y)
    weight, bias = ridge.coef_.reshape(n_targets, -1), np.reshape(ridge.intercept_, n_targets)  # (K, D), (K,)
    np.testing.assert_allclose(model.linear.weight.detach().numpy(), weight, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.linear.bias.detach().numpy(), bias, rtol=1e-9)
    np.testing.assert_allclose(model.coef_, weight / x.std(axis=0), rtol=1e-9, atol=1e-12)
    # train_loss is the chosen objective: data MSE plus the penalty at the chosen strength.
    residuals = y - design @ weight.T - bias
    objective = np.mean(residuals**2) + model.l2_strength * np.sum(weight**2) / n_targets
    np.testing.assert_allclose(float(trainer.callback_metrics["train_loss"]), objective, rtol=1e-9)
    np.testing.assert_allclose(float(trainer.callback_metrics["l2_strength_chosen"]), model.l2_strength, rtol=1e-6)
    assert model.hparams["l2_strength"] == model.l2_strength and model.hparams["l2_path"] == PATH


def test_generalized_cross_validation_is_golubs_formula() -> None:
    """scikit-learn has no GCV (RidgeCV's gcv_mode computes leave-one-out): the hat-matrix formula is the reference."""
    x, y = _data(3)
    model, _ = _path_fit(x, y, l2_selection="gcv")
    selection = model.ridge_selection
    assert selection is not None
    n = len(x)
    centred = StandardScaler().fit_transform(x)  # centred and scaled, as the penalty sees the features
    expected = []
    for strength in PATH:
        # H = X_c (X_c' X_c + alpha I)^-1 X_c' + 11'/N (the intercept); GCV = mean(residual^2) / (1 - tr H / N)^2
        hat = centred @ np.linalg.solve(centred.T @ centred + n * strength * np.eye(8), centred.T) + 1.0 / n
        residuals = y - hat @ y
        expected.append(np.mean(residuals**2) / (1.0 - np.trace(hat) / n) ** 2)
    np.testing.assert_allclose(selection.scores_, expected, rtol=1e-9)
    assert model.l2_strength == PATH[int(np.argmin(expected))]
    loo, _ = _path_fit(x, y)
    assert loo.ridge_selection is not None
    assert not np.allclose(selection.scores_, loo.ridge_selection.scores_, rtol=1e-3)  # a different criterion


def test_scores_are_in_the_targets_units_whatever_the_scaling() -> None:
    x, y = _data(3)
    plain, _ = _path_fit(x, y)
    scaled, _ = _path_fit(x, y, standardize_targets=True)
    assert plain.ridge_selection is not None and scaled.ridge_selection is not None
    np.testing.assert_allclose(scaled.ridge_selection.scores_, plain.ridge_selection.scores_, rtol=1e-10)
    assert scaled.l2_strength == plain.l2_strength
    np.testing.assert_allclose(scaled.coef_, plain.coef_, rtol=1e-9, atol=1e-12)


def test_the_config_fits_logs_the_curve_and_its_checkpoint_reloads(
    in_tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["fit", "--config", str(CONFIGS / "ridge_path.yaml")])
    assert "l2_strength_chosen 0.1" in capsys.readouterr().out  # the end-of-fit metrics line (fit_summary.SHOWN)
    run_dir = in_tmp_path / "runs" / "ridge_path" / "version_0"
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    n = len(SOURDOUGH_FEATURES)
    design, targets = StandardScaler().fit_transform(np.asarray(SOURDOUGH_FEATURES)), np.asarray(SOURDOUGH_TARGETS)
    path = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]  # the config's
    reference = RidgeCV(alphas=n * np.array(path), store_cv_results=True).fit(design, targets)
    curve = events.Scalars("ridge_path/cv_mse")
    assert [point.step for point in curve] == list(range(len(path)))
    np.testing.assert_allclose([p.value for p in curve], reference.cv_results_.mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose([p.value for p in events.Scalars("ridge_path/l2_strength")], path, rtol=1e-6)
    chosen = path[int(np.argmin(reference.cv_results_.mean(axis=(0, 1))))]
    np.testing.assert_allclose(events.Scalars("l2_strength_chosen")[-1].value, chosen, rtol=1e-6)
    assert "figures/ridge_path" in events.Tags()["images"]
    table = events.Tensors("ridge_path/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "✔" in table.splitlines()[2 + path.index(chosen)]
    # A fresh load, weights_only=True: the chosen strength and the path come back as plain values.
    checkpoint = run_dir / "checkpoints" / "latest.ckpt"
    model = MultiOutputRegression.load_from_checkpoint(checkpoint)
    assert model.l2_strength == chosen == 0.1 and model.l2_path == path and model.l2_selection == "loo"
    ridge = Ridge(alpha=n * chosen).fit(design, targets)
    np.testing.assert_allclose(model.linear.weight.detach().numpy(), ridge.coef_, rtol=1e-5)
    # The CLI builds the model from the checkpoint's hyperparameters too.
    main(["test", "--config", str(CONFIGS / "ridge_path.yaml"), "--ckpt_path", "last"])


def test_a_zero_candidate_is_least_squares_and_the_figure_places_it() -> None:
    x, y = _data(1, rows=60)
    data = ArraysDataModule(x, y, batch_size=32)
    model = LinearRegression(8, solver="exact", l2_path=[0.0, 10.0], bias=True)
    fit(model, data, epochs=1)
    assert model.l2_strength == 0.0  # ten times too strong loses to least squares
    selection = model.ridge_selection
    assert selection is not None
    figure = figures.ridge_path_figure(selection.l2_strengths_, selection.scores_, selection.best_index_, "LOO MSE")
    assert figure.axes[0].get_xscale() == "symlog"
    figures.render_png(figure)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"l2_path": [0.1]}, "l2_path and l2_selection choose l2_strength in the exact solver: set solver 'exact'"),
        ({"solver": "exact", "l2_path": []}, "l2_path must be a non-empty list of finite numbers >= 0, got []"),
        ({"solver": "exact", "l2_path": [0.1, -1.0]}, "l2_path must be a non-empty list of finite numbers >= 0"),
        ({"solver": "exact", "l2_path": [float("nan")]}, "l2_path must be"),
        ({"solver": "exact", "l2_path": ["a"]}, "l2_path must be"),
        ({"solver": "exact", "l2_path": 0.1}, "l2_path must be"),
        ({"solver": "exact", "l2_path": [0.1], "l2_selection": "kfold"}, "l2_selection must be loo or gcv"),
        ({"solver": "exact", "l2_selection": "gcv"}, "l2_selection 'gcv' chooses among l2_path's strengths"),
        ({"solver": "exact", "l2_path": [0.1], "l2_strength": 0.5}, "l2_strength is chosen from l2_path by loo"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[").replace(")", r"\)")) as info:
        LinearRegression(in_features=2, **options)
    assert "\n" not in str(info.value)


def test_a_bad_path_exits_2_naming_the_option(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "ridge_path.yaml"), "--model.init_args.solver", "gradient"])
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "l2_path" in last_line and "solver" in last_line


def test_leave_one_out_after_a_cut_pass_is_refused() -> None:
    """limit_train_batches stops the pass after its first chunk (65,536 rows): the leverages' pass sees them all."""
    x, y = _data(1, rows=70_000)
    model = LinearRegression(8, solver="exact", l2_path=PATH)
    options = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, **options)
    with pytest.raises(InputError, match=r"needs the epoch's whole pass over the training rows: .* \(use 'gcv'\)"):
        trainer.fit(model, datamodule=ArraysDataModule(x, y))


@pytest.mark.slow
def test_ddp_ranks_merge_the_leave_one_out_pass_and_choose_alike(tmp_path: Path) -> None:
    """Two CPU processes of 5 loaves each: the merged leverages' sums give RidgeCV's curve and choice on all 10."""
    path = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
    options = ["--model.init_args.solver", "exact", "--model.init_args.l2_path", str(path), "--trainer.max_epochs", "2"]
    options += ["--data.init_args.batch_size", "2", "--trainer.precision", "64-true"]
    run_cli(["fit", "--config", str(CONFIGS / "ddp.yaml"), *options], cwd=tmp_path)
    run_dir = tmp_path / "runs" / "sourdough_ddp" / "version_0"
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    n = len(SOURDOUGH_FEATURES)
    design, targets = StandardScaler().fit_transform(np.asarray(SOURDOUGH_FEATURES)), np.asarray(SOURDOUGH_TARGETS)
    reference = RidgeCV(alphas=n * np.array(path), store_cv_results=True).fit(design, targets)
    curve = events.Scalars("ridge_path/cv_mse")  # logged once: the second epoch's curve is the same
    assert [point.step for point in curve] == list(range(len(path)))
    np.testing.assert_allclose([p.value for p in curve], reference.cv_results_.mean(axis=(0, 1)), rtol=1e-6)
    checkpoint = torch.load(run_dir / "checkpoints" / "latest.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["l2_strength"] == reference.alpha_ / n
    weight = checkpoint["state_dict"]["linear.weight"].numpy()  # float64, as trained
    np.testing.assert_allclose(weight, Ridge(alpha=reference.alpha_).fit(design, targets).coef_, rtol=1e-10)
