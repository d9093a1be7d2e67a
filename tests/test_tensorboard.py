"""TensorBoard: scalars, figures, the coefficient table and hparams, read back with TensorBoard's own reader."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.linear_model import LinearRegression as SkLinearRegression
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, hparams_plugin, plugin_data_pb2
from werkzeug.test import Client

from lr_lightning import closed_form, dashboard, figures
from lr_lightning.cli import cli
from lr_lightning.dashboard import TensorBoardDashboard
from lr_lightning.data import ArraysDataModule, reference
from lr_lightning.models import LinearRegression
from tests.helpers import CONFIGS, run_cli


def read_events(run_dir: Path) -> EventAccumulator:
    """Load every scalar, image, text tensor and plugin entry of a run folder."""
    accumulator = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def hparams_session(accumulator: EventAccumulator) -> tuple[dict, set[str]]:
    """The hyperparameters of the run's HParams session and the metric tags TensorBoard offers next to them."""
    content = accumulator.PluginTagToContent("hparams")
    # no experiment summary: TensorBoard then builds the table from every run's session (see dashboard.py)
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
    assert end.session_end_info.status == api_pb2.STATUS_SUCCESS
    params = {}
    for name, value in start.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        params[name] = getattr(value, kind)
    return params, set(accumulator.Tags()["scalars"])


@pytest.fixture(scope="module")
def sourdough_run(tmp_path_factory: pytest.TempPathFactory) -> EventAccumulator:
    workdir = tmp_path_factory.mktemp("tensorboard")
    run_cli(
        [
            "fit",
            "--config",
            str(CONFIGS / "sourdough.yaml"),
            "--trainer.max_epochs",
            "12",
            "--dashboard.every_n_epochs",
            "5",
        ],
        cwd=workdir,
    )
    return read_events(workdir / "runs" / "sourdough" / "version_0")


def test_scalars_include_losses_metrics_learning_rate_and_gap(sourdough_run: EventAccumulator) -> None:
    scalars = set(sourdough_run.Tags()["scalars"])
    expected = {"train_loss", "val_loss", "val_r2", "val_r2/flavour", "val_mse", "lr-SGD", "optimality_gap"}
    assert expected <= scalars
    assert "hp_metric" not in scalars  # the placeholder -1 is off
    assert len(sourdough_run.Scalars("train_loss")) == 12
    assert sourdough_run.Scalars("lr-SGD")[-1].value == pytest.approx(0.5)
    gaps = [event.value for event in sourdough_run.Scalars("optimality_gap")]
    assert gaps[-1] < gaps[0] and gaps[-1] >= -1e-4


def test_figures_at_validation_epochs_and_at_the_end(sourdough_run: EventAccumulator) -> None:
    images = set(sourdough_run.Tags()["images"])
    assert {
        "figures/predicted_vs_actual",
        "figures/residuals",
        "figures/coefficients",
        "figures/loss_curve",
    } <= images
    # every 5 validation epochs of 12 (epochs 0, 5, 10) and once at the end of fit
    steps = [image.step for image in sourdough_run.Images("figures/residuals")]
    assert steps == [1, 6, 11, 12]
    png = sourdough_run.Images("figures/coefficients")[-1]
    assert png.encoded_image_string.startswith(b"\x89PNG") and png.width > 300


def test_coefficient_table_text_panel(sourdough_run: EventAccumulator) -> None:
    text = sourdough_run.Tensors("coefficients/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "| flavour | proofing_time_h |" in text and "least squares" in text
    assert text.count("\n") == 2 + 2 * 4 - 1  # header, rule, 2 targets x (3 features + intercept)


def test_hparams_hold_the_final_metrics(sourdough_run: EventAccumulator) -> None:
    params, metric_tags = hparams_session(sourdough_run)
    assert params["optimizer"] == "SGD" and params["optimizer/lr"] == pytest.approx(0.5)
    assert params["data/batch_size"] == 10
    assert params["trainer/max_epochs"] == 12 and params["data/class"] == "SourdoughDataModule"
    assert {"hp/val_loss", "hp/val_r2"} <= metric_tags
    for metric in ("val_loss", "val_r2"):
        final_value = sourdough_run.Scalars(metric)[-1].value
        assert sourdough_run.Scalars(f"hp/{metric}")[-1].value == pytest.approx(final_value)


def test_decision_boundary_for_two_feature_classification(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli(
        [
            "fit",
            "--config",
            str(CONFIGS / "logistic_synthetic.yaml"),
            "--data.init_args.n_features",
            "2",
            "--data.init_args.n_informative",
            "2",
            "--data.init_args.n_samples",
            "300",
            "--trainer.max_epochs",
            "5",
            "--trainer.check_val_every_n_epoch",
            "2",
            "--dashboard.every_n_epochs",
            "2",
        ]
    )
    events = read_events(tmp_path / "runs" / "logistic_synthetic" / "version_0")
    assert "figures/decision_boundary" in events.Tags()["images"]
    assert {"val_acc", "val_auroc", "val_f1"} <= set(events.Tags()["scalars"])
    _, metric_tags = hparams_session(events)
    assert "hp/val_acc" in metric_tags
    assert events.Scalars("hp/val_acc")[-1].value == pytest.approx(events.Scalars("val_acc")[-1].value)
    # validation after epochs 1 and 3; every 2nd of those is drawn (the first), then once more at the end of fit
    steps_per_epoch = events.Scalars("train_loss")[0].step + 1
    steps = [image.step for image in events.Images("figures/decision_boundary")]
    assert steps == [2 * steps_per_epoch, 5 * steps_per_epoch]


def test_dashboard_is_silent_without_a_logger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = cli(["fit", "--config", str(CONFIGS / "line.yaml"), "--trainer.logger", "false"])
    assert run.trainer.global_step >= 1
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_fitted_line_and_coefficient_table_for_one_feature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli(["fit", "--config", str(CONFIGS / "line.yaml")])
    events = read_events(tmp_path / "runs" / "line" / "version_0")
    assert {"figures/fitted_line", "figures/loss_curve", "figures/coefficients"} <= set(events.Tags()["images"])
    table = events.Tensors("coefficients/text_summary")[-1].tensor_proto.string_val[0].decode()
    rows = {line.split("|")[2].strip(): line.split("|")[3:5] for line in table.splitlines()[2:]}
    # y = 3x + 1 exactly: gradient descent has reached least squares, and both are the true line
    (learned_slope, exact_slope), (learned_intercept, exact_intercept) = (
        [float(cell) for cell in rows[term]] for term in ("x", "intercept")
    )
    assert exact_slope == pytest.approx(3.0) and exact_intercept == pytest.approx(1.0)
    assert learned_slope == pytest.approx(exact_slope, abs=1e-3)
    assert learned_intercept == pytest.approx(exact_intercept, abs=1e-3)


def coefficient_rows(events: EventAccumulator) -> dict[str, tuple[float, float]]:
    """The last coefficient table: term -> (learned, least squares), for a single-output model."""
    table = events.Tensors("coefficients/text_summary")[-1].tensor_proto.string_val[0].decode()
    cells = (line.split("|") for line in table.splitlines()[2:])
    return {row[2].strip(): (float(row[3]), float(row[4])) for row in cells}


@pytest.mark.parametrize("standardize", [False, True])
def test_a_model_without_bias_is_compared_with_the_least_squares_it_can_reach(
    standardize: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bias=False: the table's least-squares column, the loss curve's optimum and the gap are those of a model
    without intercept (in raw units it passes through the feature means when features are standardized), not
    least squares with an intercept, which such a model cannot reach.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)) + np.array([3.0, -2.0])
    y = x @ np.array([[1.5], [-0.5]]) + 4.0 + 0.1 * rng.normal(size=(200, 1))
    if standardize:  # y = W (x - mean): scikit-learn without intercept on the centred features
        reference = SkLinearRegression(fit_intercept=False).fit(x - x.mean(axis=0), y)
        coef, intercept = reference.coef_[0], -float(reference.coef_[0] @ x.mean(axis=0))
        optimum = float(np.mean((y - reference.predict(x - x.mean(axis=0))) ** 2))
    else:  # y = W x
        solution = closed_form.least_squares(x, y, fit_intercept=False)
        coef, intercept, optimum = solution.coef_[0], 0.0, solution.mse_
    assert optimum > 1.01 * closed_form.least_squares(x, y).mse_  # an intercept would do much better
    drawn_optima: list[float | None] = []
    draw = figures.loss_curve_figure

    def loss_curve_figure(train: list, val: list, optimum: float | None = None, into: object = None) -> object:
        drawn_optima.append(optimum)
        return draw(train, val, optimum, into=into)

    monkeypatch.setattr(figures, "loss_curve_figure", loss_curve_figure)

    def lbfgs(params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.LBFGS(params, max_iter=100, tolerance_grad=1e-12, line_search_fn="strong_wolfe")

    model = LinearRegression(in_features=2, bias=False, optimizer=lbfgs)
    trainer = pl.Trainer(
        max_epochs=3,
        precision="64-true",
        logger=TensorBoardLogger(tmp_path, name="no_bias", default_hp_metric=False),
        callbacks=[TensorBoardDashboard(every_n_epochs=0)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=ArraysDataModule(x, y, batch_size=200, shuffle=False, standardize=standardize))
    rows = coefficient_rows(read_events(tmp_path / "no_bias" / "version_0"))
    exact = [rows["x0"][1], rows["x1"][1], rows["intercept"][1]]
    np.testing.assert_allclose(exact, [*coef, intercept], rtol=1e-5, atol=1e-9)  # the table prints 6 digits
    assert float(trainer.callback_metrics["optimality_gap"]) == pytest.approx(0.0, abs=1e-9)
    assert drawn_optima[-1] == pytest.approx(optimum, rel=1e-9)


def test_least_squares_is_streamed_once_per_fit_for_the_gap_and_the_dashboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    passes: list[bool] = []
    stream = reference.training_state

    def counted(*args: Any, **kwargs: Any) -> Any:
        passes.append(True)
        return stream(*args, **kwargs)

    monkeypatch.setattr(reference, "training_state", counted)
    run = cli(["fit", "--config", str(CONFIGS / "sourdough.yaml"), "--trainer.max_epochs", "3"])
    assert len(passes) == 1  # one streaming pass serves the gap, the dashboard and the end-of-fit table
    assert "optimality_gap" in run.trainer.callback_metrics
    text = read_events(tmp_path / "runs" / "sourdough" / "version_0").Tensors("coefficients/text_summary")
    assert "least squares" in text[-1].tensor_proto.string_val[0].decode()


def hparams_tab(logdir: Path) -> tuple[dict, list[dict]]:
    """Ask TensorBoard's HParams plugin, as the HParams tab does, for the experiment and its session groups."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    context = base_plugin.TBContext(logdir=str(logdir), multiplexer=multiplexer, data_provider=provider)
    routes = hparams_plugin.HParamsPlugin(context).get_plugin_apps()
    experiment = Client(routes["/experiment"]).post("/", json={"experimentName": ""}).get_json()
    query = {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS"], "colParams": [], "sliceSize": 10}
    groups = Client(routes["/session_groups"]).post("/", json=query).get_json()["sessionGroups"]
    return experiment, groups


def test_hparams_tab_compares_learning_rates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for lr in ("0.5", "0.1"):
        cli(["fit", "--config", str(CONFIGS / "line.yaml"), "--optimizer.init_args.lr", lr, "--trainer.max_epochs=3"])
    experiment, groups = hparams_tab(tmp_path / "runs" / "line")
    # TensorBoard ticks the first five hparams and metrics: the learning rate (it differs) and the final metrics
    assert experiment["hparamInfos"][0]["name"] == "optimizer/lr"
    assert {"hp/val_loss", "hp/val_r2"} <= {metric["name"]["tag"] for metric in experiment["metricInfos"][:5]}
    assert {group["name"]: group["hparams"]["optimizer/lr"] for group in groups} == {"version_0": 0.5, "version_1": 0.1}
    for group in groups:
        final = {metric["name"]["tag"]: metric["value"] for metric in group["metricValues"]}
        logged = read_events(tmp_path / "runs" / "line" / group["name"])
        assert final["hp/val_loss"] == pytest.approx(logged.Scalars("val_loss")[-1].value)


def figure_cases(seed: int) -> dict[str, Callable[..., object]]:
    """Each figure the dashboard redraws, on data that differ with ``seed``, as ``f(into=None) -> Figure``."""
    rng = np.random.default_rng(seed)
    x, coef, wide = rng.normal(size=(30, 1)) * 10.0**seed, rng.normal(size=(2, 3)), rng.normal(size=(1, 50))
    y = np.hstack([3 * x, -x]) + rng.normal(size=(30, 2))
    predicted, names = y + rng.normal(size=y.shape), ["flavour", "crust"]
    history = [(i, 1 / (1 + i)) for i in range(4 + 40 * seed)]
    return {
        "predicted_vs_actual": lambda **kw: figures.predicted_vs_actual_figure(predicted, y, names, **kw),
        "residuals": lambda **kw: figures.residuals_figure(predicted, y, names, **kw),
        "fitted_line": lambda **kw: figures.fitted_line_figure(
            x[:, 0], y, lambda g: g @ [[3.0, -1.0]], "x", names, **kw
        ),
        "coefficients": lambda **kw: figures.coefficients_figure(coef, coef + 0.1, ["a", "b", "c"], names, **kw),
        "many_coefficients": lambda **kw: figures.coefficients_figure(
            wide, None, [f"f{j}" for j in range(50)], ["y"], **kw
        ),
        "loss_curve": lambda **kw: figures.loss_curve_figure(history, history[::2], 0.01, **kw),
    }


@pytest.mark.parametrize("name", list(figure_cases(0)))
def test_a_redrawn_figure_is_the_picture_of_a_new_one(name: str) -> None:
    """The dashboard redraws the last drawing's figure with new data: pixel for pixel what a new figure shows."""
    previous = figure_cases(0)[name]()
    figures.render_png(previous)
    redrawn, new = figure_cases(1)[name](into=previous), figure_cases(1)[name]()
    assert figures.render_png(redrawn) == figures.render_png(new)
    assert (redrawn is previous) == (name != "many_coefficients")  # other bars: another figure


def simulated_fit(epochs: int, epoch_seconds: float, drawing_seconds: float, monkeypatch: pytest.MonkeyPatch) -> list:
    """Run the default schedule's hooks over ``epochs`` validation epochs on a fake clock: (epoch, clock) drawn."""
    clock, drawn = [0.0], []
    monkeypatch.setattr(dashboard, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    callback = TensorBoardDashboard()

    def draw(trainer: object, pl_module: object) -> None:
        clock[0] += drawing_seconds
        drawn.append((trainer.current_epoch, clock[0]))

    monkeypatch.setattr(callback, "_draw", draw)
    callback._fit_started = 0.0
    for epoch in range(epochs):
        clock[0] += epoch_seconds
        fit = SimpleNamespace(fn="fit")
        trainer = SimpleNamespace(sanity_checking=False, state=fit, max_epochs=epochs, current_epoch=epoch)
        callback.on_validation_epoch_end(trainer, None)
    assert len(drawn) * drawing_seconds <= callback.time_budget * clock[0]
    return drawn


def test_the_default_schedule_keeps_drawing_within_its_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # sourdough on a 2-core CPU: 45 ms an epoch, 0.8 s a drawing (4 figures), a tenth of a 200-epoch fit
    assert simulated_fit(200, 0.045, 0.8, monkeypatch) == []  # only the drawing at the end of fit
    assert 5 <= len(simulated_fit(2000, 0.045, 0.8, monkeypatch)) <= 10
    # cheap drawings: at most AUTO_DRAWINGS of them, max_epochs / AUTO_DRAWINGS epochs apart
    epochs = [epoch for epoch, _ in simulated_fit(200, 1.0, 0.001, monkeypatch)]
    assert len(epochs) == dashboard.AUTO_DRAWINGS and np.all(np.diff(epochs) == 20)


def test_a_zero_time_budget_draws_only_at_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = cli(
        ["fit", "--config", str(CONFIGS / "sourdough.yaml"), "--trainer.max_epochs=4", "--dashboard.time_budget=0"]
    )
    (callback,) = (c for c in run.trainer.callbacks if isinstance(c, TensorBoardDashboard))
    assert callback.every_n_epochs is None  # the CLI's default: the time budget's schedule
    events = read_events(tmp_path / "runs" / "sourdough" / "version_0")
    assert [image.step for image in events.Images("figures/loss_curve")] == [4]
