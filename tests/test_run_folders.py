"""One fit is one TensorBoard run: validate, test and predict from its checkpoint go into folders of its run folder.

``runs/sourdough/version_0`` is the fit; ``version_0/test_0``, ``version_0/test_1``, ``version_0/validate_0`` and
``version_0/predict_0`` are runs from its checkpoints, each claimed atomically, each with its own event file and
config, ``metrics.json`` for validate and test. A checkpoint outside a fit's run folder, or an explicit
``trainer.logger.init_args.version``, gives a run folder of its own, as before.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lr_lightning.cli import cli, main
from lr_lightning.config_checks import place_evaluation_run
from lr_lightning.errors import InputError
from lr_lightning.loggers import TensorBoardLogger, is_plain_name
from lr_lightning.run_folders import claim_evaluation_folder, fit_run_folder, newest_fit_checkpoint
from lr_lightning.run_metrics import write_json_atomically
from tests.helpers import CONFIGS

CONFIG = str(CONFIGS / "sourdough.yaml")
FIT = ["--config", CONFIG, "--trainer.max_epochs", "3", "--trainer.enable_model_summary", "false"]
EXPERIMENT = Path("runs/sourdough")
RUN = EXPERIMENT / "version_0"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder where ``lr-lightning fit`` of the sourdough config has run once, for three epochs."""
    folder = tmp_path_factory.mktemp("fitted")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr(sys, "argv", ["lr-lightning"])
        cli(["fit", *FIT])
    yield folder


@pytest.fixture
def experiment(fitted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the fitted folder (mtimes kept), as the working directory."""
    folder = tmp_path / "experiment"
    shutil.copytree(fitted, folder)
    monkeypatch.chdir(folder)
    return folder


def best_checkpoint() -> str:
    (best,) = (RUN / "checkpoints").glob("best-*.ckpt")
    return str(best)


def fit_files(run: Path = RUN) -> dict[str, tuple[int, int]]:
    """The fit's own files (not those of its evaluations' folders) with their sizes and mtimes."""
    evaluation = re.compile(r"(validate|test|predict)_\d+")
    return {
        str(path.relative_to(run)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in run.rglob("*")
        if path.is_file() and not evaluation.fullmatch(path.relative_to(run).parts[0])
    }


def folders(path: Path) -> list[str]:
    return sorted(entry.name for entry in path.iterdir() if entry.is_dir())


def read_metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def logged_scalars(folder: Path) -> dict[str, float]:
    """The last value of every scalar of the event file(s) directly in ``folder``."""
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: accumulator.Scalars(tag)[-1].value for tag in accumulator.Tags()["scalars"]}


def printed_metrics(stdout: str, names: list[str]) -> dict[str, float]:
    """The values Lightning's results table printed for ``names``."""
    values = {}
    for name in names:
        match = re.search(rf"(?<!\S){re.escape(name)}[\s│]+([-+0-9.eE]+|nan|inf)", stdout)
        assert match, f"{name} not printed in:\n{stdout}"
        values[name] = float(match.group(1))
    return values


def test_test_validate_and_predict_go_into_the_fit_folder(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = fit_files()
    assert "config.yaml" in before and "checkpoints/latest.ckpt" in before
    best = best_checkpoint()
    capsys.readouterr()

    tested = cli(["test", "--config", CONFIG, "--ckpt_path", best])
    printed = capsys.readouterr().out
    test_0 = RUN / "test_0"
    assert Path(tested.trainer.log_dir) == test_0
    record = read_metrics(test_0)
    assert record["subcommand"] == "test" and record["ckpt_path"] == best
    # The checkpoint's epoch and step: its file name says them (best-epoch=E-step=S.ckpt).
    assert Path(best).name == f"best-epoch={record['epoch']}-step={record['global_step']}.ckpt"
    metrics = record["metrics"]
    assert {"test_loss", "test_r2", "test_r2/flavour", "test_mse/crust"} <= set(metrics)
    assert metrics == {name: float(value) for name, value in tested.trainer.callback_metrics.items()}
    assert printed_metrics(printed, list(metrics)) == metrics
    logged = logged_scalars(test_0)
    assert set(metrics) <= set(logged)
    for name, value in metrics.items():
        assert logged[name] == pytest.approx(value, rel=1e-6), name  # float32 in the event file
    assert (test_0 / "config.yaml").is_file()

    cli(["test", "--config", CONFIG, "--ckpt_path", best])
    assert read_metrics(RUN / "test_1")["metrics"] == metrics  # same checkpoint, same data: same metrics

    validated = cli(["validate", "--config", CONFIG, "--ckpt_path", best])
    record = read_metrics(RUN / "validate_0")
    assert record["subcommand"] == "validate" and "val_loss" in record["metrics"]
    assert record["metrics"]["val_loss"] == float(validated.trainer.callback_metrics["val_loss"])

    capsys.readouterr()
    predicted = cli(["predict", "--config", CONFIG, "--ckpt_path", best])
    predictions = RUN / "predict_0" / "predictions.csv"
    assert f"Predictions written to {predictions}" in capsys.readouterr().out
    assert Path(predicted.trainer.log_dir) == RUN / "predict_0"
    with predictions.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:2] == ["flavour", "crust"] and len(rows) == 11  # the predictions first
    assert not (RUN / "predict_0" / "metrics.json").exists()  # predict has no metrics

    # One fit, one version folder; the fit's own files are as they were, and it has no metrics.json of its own.
    assert folders(EXPERIMENT) == ["version_0"]
    assert folders(RUN) == ["checkpoints", "predict_0", "test_0", "test_1", "validate_0"]
    assert fit_files() == before
    assert "metrics.json" not in before


def test_tensorboard_lists_the_fit_and_its_evaluations(experiment: Path) -> None:
    best = best_checkpoint()
    cli(["test", "--config", CONFIG, "--ckpt_path", best])
    cli(["validate", "--config", CONFIG, "--ckpt_path", best])
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(EXPERIMENT))
    multiplexer.Reload()
    runs = {name.replace(os.sep, "/") for name in multiplexer.Runs()}
    assert runs == {"version_0", "version_0/test_0", "version_0/validate_0"}
    assert "train_loss" in logged_scalars(RUN)  # the fit's run holds only the fit's own events
    assert "test_loss" not in logged_scalars(RUN)
    assert "train_loss" not in logged_scalars(RUN / "test_0")


def test_best_and_last_still_name_the_fit(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latest = str(RUN / "checkpoints" / "latest.ckpt")
    cli(["test", "--config", CONFIG, "--ckpt_path", "last"])
    assert f"--ckpt_path last: {latest}" in capsys.readouterr().err
    cli(["predict", "--config", CONFIG, "--ckpt_path", "last"])
    assert f"--ckpt_path last: {latest}" in capsys.readouterr().err
    cli(["validate", "--config", CONFIG, "--ckpt_path", "best"])
    assert f"--ckpt_path best: {best_checkpoint()}" in capsys.readouterr().err
    assert folders(RUN) == ["checkpoints", "predict_0", "test_0", "validate_0"]
    assert read_metrics(RUN / "test_0")["ckpt_path"] == latest  # the alias as resolved
    assert newest_fit_checkpoint(EXPERIMENT, "last") == Path(latest)
    assert newest_fit_checkpoint(EXPERIMENT, "best") == Path(best_checkpoint())


def test_a_second_fit_is_a_new_version_and_its_evaluations_go_under_it(experiment: Path) -> None:
    first = fit_files()
    cli(["fit", *FIT])
    cli(["test", "--config", CONFIG, "--ckpt_path", "last"])
    assert folders(EXPERIMENT) == ["version_0", "version_1"]
    assert folders(EXPERIMENT / "version_1") == ["checkpoints", "test_0"]
    assert folders(RUN) == ["checkpoints"]
    assert fit_files() == first


def test_a_checkpoint_outside_a_run_folder_gets_a_version_folder_as_before(experiment: Path, tmp_path: Path) -> None:
    before = fit_files()
    copied = tmp_path / "elsewhere" / "checkpoints" / "model.ckpt"  # a folder named checkpoints, but no version_N
    copied.parent.mkdir(parents=True)
    shutil.copyfile(best_checkpoint(), copied)
    tested = cli(["test", "--config", CONFIG, "--ckpt_path", str(copied)])
    assert Path(tested.trainer.log_dir) == EXPERIMENT / "version_1"
    assert read_metrics(EXPERIMENT / "version_1")["ckpt_path"] == str(copied)
    cli(["predict", "--config", CONFIG, "--ckpt_path", str(copied)])
    assert (EXPERIMENT / "version_2" / "predictions.csv").is_file()
    assert folders(RUN) == ["checkpoints"] and fit_files() == before
    assert list(copied.parent.iterdir()) == [copied]


def test_an_explicit_version_wins(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = fit_files()
    tested = cli(
        ["test", "--config", CONFIG, "--ckpt_path", best_checkpoint(), "--trainer.logger.init_args.version", "mine"]
    )
    assert Path(tested.trainer.log_dir) == EXPERIMENT / "mine"
    assert read_metrics(EXPERIMENT / "mine")["subcommand"] == "test"
    assert folders(RUN) == ["checkpoints"] and fit_files() == before
    # A used folder is still refused, before anything is written.
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--config", CONFIG, "--ckpt_path", best_checkpoint(), "--trainer.logger.init_args.version", "0"])
    assert exit_info.value.code == 2
    assert "trainer.logger.init_args.version" in capsys.readouterr().err.strip().splitlines()[-1]
    assert folders(RUN) == ["checkpoints"] and fit_files() == before


def test_a_refused_evaluation_writes_nothing(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = sorted(str(path) for path in experiment.rglob("*"))
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--config", CONFIG, "--ckpt_path", best_checkpoint(), "--data.init_args.batch_size", "0"])
    assert exit_info.value.code == 2
    assert "data.init_args.batch_size" in capsys.readouterr().err
    assert sorted(str(path) for path in experiment.rglob("*")) == tree


def test_the_checkpoint_decides_the_experiment(experiment: Path) -> None:
    """A config naming another experiment still writes beside the fit that made the checkpoint."""
    cli(["test", "--config", CONFIG, "--ckpt_path", best_checkpoint(), "--trainer.logger.init_args.name", "other"])
    assert (RUN / "test_0" / "metrics.json").is_file()
    assert not Path("runs/other").exists()


def test_an_evaluation_config_sends_no_other_run_into_the_fit(experiment: Path, tmp_path: Path) -> None:
    """The config an evaluation saved names the fit's folder; reused with another checkpoint, it is replaced."""
    cli(["test", "--config", CONFIG, "--ckpt_path", best_checkpoint()])
    saved = RUN / "test_0" / "config.yaml"
    assert "fit_version: version_0" in saved.read_text()
    copied = tmp_path / "model.ckpt"
    shutil.copyfile(best_checkpoint(), copied)
    tested = cli(["test", "--config", str(saved), "--ckpt_path", str(copied)])
    assert Path(tested.trainer.log_dir) == EXPERIMENT / "version_1"
    assert folders(RUN) == ["checkpoints", "test_0"]


def test_only_evaluations_from_a_fit_folder_are_placed(experiment: Path) -> None:
    """A fit, or an explicit version, clears a placement a config holds; an evaluation of a fit folder sets it."""

    def config(ckpt_path: str | None, **init_args: object) -> dict:
        logger = {
            "class_path": "lr_lightning.loggers.TensorBoardLogger",
            "init_args": {"save_dir": "runs", **init_args},
        }
        return {"ckpt_path": ckpt_path, "trainer": {"logger": logger}}

    stale = {"name": "sourdough", "fit_version": "version_0", "evaluation": "test"}
    for subcommand, settings in (("fit", config(None, **stale)), ("test", config(best_checkpoint(), version="x"))):
        place_evaluation_run(settings, subcommand)
        init_args = settings["trainer"]["logger"]["init_args"]
        assert init_args["fit_version"] is None and init_args["evaluation"] is None, subcommand
    settings = config(best_checkpoint(), name="sourdough")
    place_evaluation_run(settings, "predict")
    expected = {"save_dir": "runs", "name": "sourdough", "fit_version": "version_0", "evaluation": "predict"}
    assert settings["trainer"]["logger"]["init_args"] == expected


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_follow_the_umask(experiment: Path, umask: None) -> None:
    cli(["test", "--config", CONFIG, "--ckpt_path", best_checkpoint()])
    cli(["predict", "--config", CONFIG, "--ckpt_path", best_checkpoint()])
    assert mode(RUN / "test_0") == mode(RUN / "predict_0") == 0o755
    assert mode(RUN / "test_0" / "metrics.json") == 0o644
    assert mode(RUN / "predict_0" / "predictions.csv") == 0o644
    os.umask(0o077)
    cli(["test", "--config", CONFIG, "--ckpt_path", best_checkpoint()])
    assert mode(RUN / "test_1") == 0o700
    assert mode(RUN / "test_1" / "metrics.json") == 0o600
    assert [path.name for path in (RUN / "test_1").iterdir() if path.name.endswith(".tmp")] == []


def test_fit_run_folder_recognizes_only_the_fit_layout(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "exp" / "version_3"
    (run / "checkpoints").mkdir(parents=True)
    (run / "test_0" / "checkpoints").mkdir(parents=True)
    assert fit_run_folder(run / "checkpoints" / "best.ckpt") == run
    assert fit_run_folder(f"{run}/checkpoints/../checkpoints/x.ckpt") == run
    assert fit_run_folder(run / "test_0" / "checkpoints" / "x.ckpt") is None
    assert fit_run_folder(run / "best.ckpt") is None
    assert fit_run_folder(tmp_path / "version_x" / "checkpoints" / "a.ckpt") is None
    assert fit_run_folder(tmp_path / "runs" / "exp" / "version_9" / "checkpoints" / "a.ckpt") is None  # no folder


def test_evaluation_folders_are_claimed_exclusively(tmp_path: Path) -> None:
    """Sixteen threads asking at once for a test folder of one fit get sixteen different folders."""
    claimed: list[str] = []
    barrier = threading.Barrier(16)

    def claim() -> None:
        barrier.wait()
        claimed.append(claim_evaluation_folder(tmp_path / "version_0", "test"))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed, key=lambda name: int(name.removeprefix("test_"))) == [f"test_{k}" for k in range(16)]


def test_logger_places_an_evaluation_lazily(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, name="exp", fit_version="version_0", evaluation="predict")
    assert not (tmp_path / "exp").exists()  # nothing until the run asks for its folder
    assert logger.version == os.path.join("version_0", "predict_0")
    assert Path(logger.log_dir) == tmp_path / "exp" / "version_0" / "predict_0"
    assert (tmp_path / "exp" / "version_0" / "predict_0").is_dir()
    again = TensorBoardLogger(tmp_path, name="exp", fit_version="version_0", evaluation="predict")
    assert Path(again.log_dir).name == "predict_1"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"fit_version": "version_0"}, "evaluation"),
        ({"evaluation": "test"}, "fit_version"),
        ({"fit_version": "../version_0", "evaluation": "test"}, "fit_version"),
        ({"fit_version": "version_0", "evaluation": "a/b"}, "evaluation"),
        ({"fit_version": "version_0", "evaluation": "test", "version": 3}, "give one"),
    ],
)
def test_logger_refuses_a_half_or_odd_placement(tmp_path: Path, arguments: dict, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        TensorBoardLogger(tmp_path, **arguments)
    assert list(tmp_path.iterdir()) == []


def test_plain_names() -> None:
    assert is_plain_name("version_0") and is_plain_name("test")
    assert not any(is_plain_name(name) for name in ("", ".", "..", "a/b", None, 3))


def test_metrics_file_is_written_once_and_atomically(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    assert write_json_atomically(path, {"a": 1.5})
    assert not write_json_atomically(path, {"a": 2.5})  # never replaces a file
    assert json.loads(path.read_text()) == {"a": 1.5}
    assert [entry.name for entry in tmp_path.iterdir()] == ["metrics.json"]
    with pytest.raises(ValueError):
        write_json_atomically(tmp_path / "nan.json", {"a": float("nan")})  # final_metrics writes null instead
    assert [entry.name for entry in tmp_path.iterdir()] == ["metrics.json"]
