"""Checkpoints you can trust: weights_only loading, refusals, atomic saves, exact resume, value checks, export."""

from __future__ import annotations

import math
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lr_lightning import LinearRegression, LogisticRegression, MultiOutputRegression
from lr_lightning.checkpoint import AtomicCheckpointIO, load_checkpoint
from lr_lightning.cli import cli
from lr_lightning.dashboard import TensorBoardDashboard
from lr_lightning.data import SourdoughDataModule
from lr_lightning.errors import InputError
from lr_lightning.export import export, load_exported
from tests.helpers import CONFIGS, REPO, run_cli

CONFIG = str(CONFIGS / "sourdough.yaml")


class Payload:
    """Any class: pickling it makes a checkpoint that only full unpickling could load."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoints folder of one in-process sourdough fit."""
    workdir = tmp_path_factory.mktemp("trained")
    run = cli(
        [
            "fit",
            "--config",
            CONFIG,
            "--trainer.max_epochs",
            "5",
            f"--trainer.default_root_dir={workdir}",
            f"--trainer.logger.init_args.save_dir={workdir / 'runs'}",
        ]
    )
    return Path(run.latest_checkpoint_path).parent


def test_pickle_payload_and_instantiator_are_refused(tmp_path: Path, trained: Path) -> None:
    checkpoint = torch.load(trained / "latest.ckpt", weights_only=True)
    torch.save({**checkpoint, "extra": Payload()}, tmp_path / "payload.ckpt")
    with pytest.raises(InputError, match=r"payload.ckpt: refused to load: the file holds Python objects"):
        load_checkpoint(tmp_path / "payload.ckpt")
    hparams = {**checkpoint["hyper_parameters"], "_instantiator": "os.system"}  # where Lightning looks for it
    torch.save({**checkpoint, "hyper_parameters": hparams}, tmp_path / "instantiator.ckpt")
    with pytest.raises(InputError, match=r"instantiator.ckpt: refused to load: the checkpoint holds '_instantiator'"):
        load_checkpoint(tmp_path / "instantiator.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint at all, just some bytes")
    with pytest.raises(InputError, match=r"garbage.ckpt: the checkpoint is truncated or corrupt"):
        load_checkpoint(tmp_path / "garbage.ckpt")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("https://example.invalid/model.ckpt", "checkpoints are loaded from local files only"),
        ("missing.ckpt", "missing.ckpt: no such checkpoint file"),
    ],
)
def test_urls_and_missing_files_are_refused_before_anything_is_written(
    path: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for subcommand in ("fit", "test", "predict"):
        with pytest.raises(InputError, match=message):
            cli([subcommand, "--config", CONFIG, "--ckpt_path", path])
    assert list(tmp_path.iterdir()) == []


def test_truncated_checkpoint_names_the_file_and_the_previous_whole_one(tmp_path: Path, trained: Path) -> None:
    whole = shutil.copy(trained / "latest.ckpt", tmp_path / "epoch-3.ckpt")
    data = (trained / "latest.ckpt").read_bytes()
    time.sleep(0.01)
    (tmp_path / "epoch-4.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"epoch-4.ckpt: the checkpoint is truncated or corrupt .*") as error:
        load_checkpoint(tmp_path / "epoch-4.ckpt")
    assert f"the previous checkpoint {whole} is whole" in str(error.value)


def test_torch_load_is_always_weights_only() -> None:
    """Every torch.load in the package passes weights_only=True (the suite also runs with it forced)."""
    calls = []
    for source in (REPO / "lr_lightning").rglob("*.py"):
        calls += [(source.name, call) for call in re.findall(r"torch\.load\([^)]*\)", source.read_text())]
    assert calls, "the package loads checkpoints somewhere"
    assert all("weights_only=True" in call for _, call in calls), calls


SLOW_SAVE = """
import sys, time, torch
from lr_lightning.checkpoint import AtomicCheckpointIO
io = AtomicCheckpointIO()
io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 1}, sys.argv[1])
print("first saved", flush=True)
big = {"state_dict": {"w": torch.randn(60_000_000)}, "epoch": 2}   # 240 MB: the save takes a while
io.save_checkpoint(big, sys.argv[1])
print("second saved", flush=True)
"""


def test_kill_during_save_leaves_the_previous_checkpoint_whole(tmp_path: Path) -> None:
    target = tmp_path / "latest.ckpt"
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE, str(target)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "first saved"
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".latest.ckpt.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    checkpoint = load_checkpoint(target)  # still the first, whole save
    assert checkpoint["epoch"] == 1


def test_atomic_checkpoint_io_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = cli(["--config", CONFIG, "--trainer.max_epochs", "1"], run=False)
    assert isinstance(run.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--optimizer.init_args.lr", "-0.1", "optimizer.init_args.lr must be > 0 and finite, got -0.1"),
        ("--data.init_args.batch_size", "0", "data.init_args.batch_size must be >= 1, got 0"),
        ("--data.init_args.val_fraction", "1.5", r"data.init_args.val_fraction must be in \[0, 1\), got 1.5"),
        ("--trainer.max_epochs", "-5", "trainer.max_epochs must be >= -1"),
        ("--model.init_args.l2_strength", "-1", "model.init_args.l2_strength must be >= 0"),
    ],
)
def test_senseless_values_name_the_option_and_write_nothing(
    option: str, value: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message):
        cli(["fit", "--config", CONFIG, option, value])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LinearRegression(0), r"in_features must be >= 1, got 0"),
        (lambda: LinearRegression(2, feature_names=["a"]), r"feature_names must be 2 names, got \['a'\]"),
        (lambda: LinearRegression(2, l1_strength=-0.5), r"l1_strength must be >= 0 and finite, got -0.5"),
        (lambda: LinearRegression(2, l2_strength=math.nan), r"l2_strength must be >= 0 and finite, got nan"),
        (lambda: LinearRegression(2, l2_strength=math.inf), r"l2_strength must be >= 0 and finite, got inf"),
        (lambda: LinearRegression(2, init="ones"), r"init must be one of \('default', 'zeros', 'normal'\)"),
        (lambda: LinearRegression(2, init="normal", init_std=0.0), r"init_std must be > 0 and finite, got 0.0"),
        (lambda: LinearRegression(2, out_features=2, target_names=["a"]), r"target_names has 1 names but out_f"),
        (lambda: LinearRegression(2, optimizer="sgd"), r"optimizer must be a function of the parameters"),
        (lambda: LogisticRegression(2, num_classes=1), r"num_classes must be >= 2, got 1"),
        (lambda: LogisticRegression(2, loss="hinge"), r"loss must be one of \('cross_entropy', 'mse'\), got 'hinge'"),
        (lambda: LogisticRegression(2, class_names=["a"]), r"class_names has 1 names but num_classes=2"),
        (lambda: TensorBoardDashboard(every_n_epochs=-1), r"every_n_epochs must be >= 0, got -1"),
        (lambda: TensorBoardDashboard(max_points=0), r"max_points must be >= 1, got 0"),
    ],
)
def test_constructor_values_a_user_can_fix_raise_input_error(build: Callable[[], object], message: str) -> None:
    """The CLI prints an InputError in one line (exit 2); any other error of a constructor is a bug's traceback."""
    with pytest.raises(InputError, match=message):
        build()


def test_the_optimizer_argument_trains_and_stays_out_of_the_checkpoint(tmp_path: Path) -> None:
    model = MultiOutputRegression(3, 2, optimizer=lambda params: torch.optim.Adam(params, lr=0.05))
    trainer = pl.Trainer(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, datamodule=SourdoughDataModule())
    assert type(trainer.optimizers[0]) is torch.optim.Adam and trainer.optimizers[0].defaults["lr"] == 0.05
    trainer.save_checkpoint(tmp_path / "adam.ckpt")
    assert "optimizer" not in torch.load(tmp_path / "adam.ckpt", weights_only=True)["hyper_parameters"]
    loaded = MultiOutputRegression.load_from_checkpoint(tmp_path / "adam.ckpt", weights_only=True)
    assert loaded.build_optimizer is None
    torch.testing.assert_close(loaded.linear.weight, model.linear.weight)
    default = LinearRegression(3).configure_optimizers()
    assert type(default) is torch.optim.SGD and default.defaults["lr"] == 0.1


def test_the_cli_refuses_a_model_optimizer_its_optimizer_group_would_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", CONFIG, "--trainer.logger", "false", "--model.init_args.optimizer", "torch.optim.Adam"]
    with pytest.raises(InputError, match=r"the model's optimizer argument was given but another optimizer replaced"):
        cli(args)


def test_synthetic_n_samples_below_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"data\.init_args\.n_samples must be >= 1, got 0"):
        cli(["fit", "--config", str(CONFIGS / "synthetic.yaml"), "--data.init_args.n_samples", "0"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.init_args.batch_sise", "3"], "batch_sise"),
        (["--trainer.max_epochs", "many"], "max_epochs"),
    ],
)
def test_unknown_keys_and_wrong_types_exit_2_naming_the_key(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli(["fit", "--config", CONFIG, *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_predict_data_with_other_features_than_the_checkpoint(tmp_path: Path, trained: Path) -> None:
    (tmp_path / "other.csv").write_text("a,b,y\n1,2,3\n4,5,6\n7,8,9\n")
    result = run_cli(
        [
            "predict",
            "--config",
            CONFIG,
            "--ckpt_path",
            str(trained / "latest.ckpt"),
            "--data",
            "lr_lightning.data.FileDataModule",
            "--data.path",
            "other.csv",
            "--data.val_fraction",
            "0",
            "--data.test_fraction",
            "0",
        ],
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert "the data has 2 features ['a', 'b'] but the checkpoint was trained on 3" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def test_export_predicts_like_the_checkpoint_without_pickle(tmp_path: Path, trained: Path) -> None:
    export(trained / "latest.ckpt", tmp_path / "exported")
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["model.json", "model.safetensors"]
    exported = load_exported(tmp_path / "exported")
    reference = MultiOutputRegression.load_from_checkpoint(trained / "latest.ckpt", weights_only=True)
    features = SourdoughDataModule().predict_features()
    with torch.no_grad():
        torch.testing.assert_close(exported(features), reference(features), rtol=0, atol=0)
    assert exported.target_names == ["flavour", "crust"]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path: Path) -> None:
    """Fit 8 epochs of shuffled mini-batches; kill a second fit at epoch 5; resume it; compare the weights."""
    common = [
        "fit",
        "--config",
        CONFIG,
        "--trainer.max_epochs",
        "8",
        "--trainer.deterministic",
        "true",
        "--data.init_args.batch_size",
        "3",
    ]
    run_cli(common, cwd=tmp_path)
    killed = run_cli(
        [*common, "--trainer.callbacks+=tests.kill_switch.KillAtEpoch", "--trainer.callbacks.epoch=5"],
        cwd=tmp_path,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    latest = tmp_path / "runs/sourdough/version_1/checkpoints/latest.ckpt"
    assert load_checkpoint(latest)["epoch"] == 4
    run_cli([*common, "--ckpt_path", str(latest)], cwd=tmp_path)
    uninterrupted = load_checkpoint(tmp_path / "runs/sourdough/version_0/checkpoints/latest.ckpt")
    resumed = load_checkpoint(tmp_path / "runs/sourdough/version_2/checkpoints/latest.ckpt")
    assert resumed["epoch"] == uninterrupted["epoch"] == 7
    for name, tensor in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor), name


def test_resuming_a_finished_fit_says_so_and_writes_nothing(tmp_path: Path, trained: Path) -> None:
    """The fixture fit ran trainer.max_epochs=5: the same fit from its latest checkpoint would train nothing."""
    runs = tmp_path / "runs"
    args = ["fit", "--config", CONFIG, "--ckpt_path", str(trained / "latest.ckpt")]
    with pytest.raises(InputError, match=r"already reached trainer.max_epochs=5 \(it finished epoch 5\): nothing"):
        cli([*args, "--trainer.max_epochs", "5", f"--trainer.logger.init_args.save_dir={runs}"])
    with pytest.raises(InputError, match=r"already reached trainer.max_steps=3 \(step 5\)"):
        cli([*args, "--trainer.max_steps", "3", f"--trainer.logger.init_args.save_dir={runs}"])
    assert not runs.exists()
    resumed = cli([*args, "--trainer.max_epochs", "6", f"--trainer.logger.init_args.save_dir={runs}"])
    assert resumed.trainer.current_epoch == 6  # one more epoch, then stopped
