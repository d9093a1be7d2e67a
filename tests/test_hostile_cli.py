"""Hostile and careless command lines: each is refused in one line (exit 2) before anything is written.

The fixture fits one small experiment in a fresh process; each test then runs the CLI in its folder and checks the
exit code, that stderr ends in a single ``lr-lightning: error:`` line naming the problem, and that the folder's
tree is exactly what it was (no run folder, no checkpoint, no config).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from lr_lightning.cli import cli, main
from lr_lightning.data import SourdoughDataModule
from lr_lightning.data.contract import ArrayData
from lr_lightning.errors import InputError
from lr_lightning.run_folders import claim_next_version
from tests.helpers import CONFIGS, run_cli

BASE_YAML = """\
trainer:
  max_epochs: 2
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    class_path: lightning.pytorch.loggers.TensorBoardLogger
    init_args:
      save_dir: runs
      name: exp
model:
  class_path: lr_lightning.models.LinearRegression
data:
  class_path: lr_lightning.data.FileDataModule
  init_args:
    path: d.csv
    batch_size: 20
dashboard:
  every_n_epochs: 0
optimizer:
  class_path: torch.optim.SGD
  init_args:
    lr: 0.1
"""

#: Ten nested nine-fold aliases: 9**10 (3.5e9) values once expanded, under a key nobody reads.
ALIAS_BOMB = "unused: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefghi", "bcdefghij", strict=True)
)


def write_experiment(folder: Path) -> None:
    """``d.csv`` (20 rows: a, b -> y) and ``base.yaml`` in ``folder``."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20, 2))
    targets = features @ np.array([1.0, -2.0]) + 0.1 * rng.normal(size=20)
    rows = "".join(f"{a},{b},{y}\n" for (a, b), y in zip(features.tolist(), targets.tolist(), strict=True))
    (folder / "d.csv").write_text("a,b,y\n" + rows)
    (folder / "base.yaml").write_text(BASE_YAML)


@pytest.fixture(scope="module")
def fitted_experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where ``lr-lightning fit --config base.yaml`` has run once (runs/exp/version_0)."""
    folder = tmp_path_factory.mktemp("experiment")
    write_experiment(folder)
    run_cli(["fit", "--config", "base.yaml"], cwd=folder)
    return folder


@pytest.fixture
def experiment(fitted_experiment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the fitted experiment, as the working directory."""
    folder = tmp_path / "experiment"
    shutil.copytree(fitted_experiment, folder)
    monkeypatch.chdir(folder)
    return folder


def tree(folder: Path) -> dict[str, int]:
    """Every file and folder under ``folder`` with its size (folders: -1)."""
    return {str(p.relative_to(folder)): (p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*")}


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``lr-lightning ARGS`` in this process; assert exit 2 and one error line; return that line."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("lr-lightning: error: "), lines[-5:]
    return lines[-1]


REFUSED = {
    "predict without --ckpt_path": (["predict"], ["--ckpt_path", "runs/exp/version_0/checkpoints/latest.ckpt"]),
    "test without --ckpt_path": (["test"], ["--ckpt_path", "untrained"]),
    "validate without --ckpt_path": (["validate"], ["--ckpt_path"]),
    "checkpoints into another run's folder": (
        ["fit", "--latest_checkpoint.dirpath", "runs/exp/version_0/checkpoints"],
        ["latest_checkpoint.dirpath", "another run"],
    ),
    "best checkpoint into another run's folder": (
        ["fit", "--best_checkpoint.dirpath", "runs/exp/version_0/checkpoints"],
        ["best_checkpoint.dirpath"],
    ),
    "logger version of an existing run": (
        ["fit", "--trainer.logger.init_args.version", "0"],
        ["trainer.logger.init_args.version", "version_0"],
    ),
    "predict into an existing run's folder": (
        ["predict", "--ckpt_path", "last", "--trainer.logger.init_args.version", "0"],
        ["trainer.logger.init_args.version"],
    ),
    "weights_only false": (["fit", "--weights_only", "false"], ["weights_only"]),
    "a CheckpointIO that is not atomic": (
        ["fit", "--trainer.plugins", "lightning.pytorch.plugins.io.AsyncCheckpointIO"],
        ["trainer.plugins", "AsyncCheckpointIO"],
    ),
    "a seed beyond 64 bits": (["fit", "--data.init_args.seed", "100000000000000000000"], ["data.init_args.seed"]),
    # Checked by the DataModule's constructor; the CLI adds the option's section.
    "a batch size of 0": (["fit", "--data.init_args.batch_size", "0"], ["data.init_args.batch_size must be >= 1"]),
    "a negative learning rate": (["fit", "--optimizer.init_args.lr", "-0.1"], ["optimizer.init_args.lr must be > 0"]),
    "a global seed beyond 32 bits": (["fit", "--seed_everything", "4294967296"], ["seed_everything"]),
    "a learning rate beyond float32": (["fit", "--optimizer.init_args.lr", "1e308"], ["optimizer.init_args.lr"]),
    "an infinite learning rate": (["fit", "--optimizer.init_args.lr", ".inf"], ["optimizer.init_args.lr"]),
    "validation every 0 epochs": (["fit", "--trainer.check_val_every_n_epoch", "0"], ["check_val_every_n_epoch"]),
    "zero devices": (["fit", "--trainer.devices", "0"], ["trainer.devices"]),
    "a checkpoint of another model class": (
        ["predict", "--ckpt_path", "last", "--model", "lr_lightning.models.LogisticRegression"],
        ["holds a LinearRegression", "LogisticRegression"],
    ),
    "best of an experiment that never ran": (
        ["test", "--ckpt_path", "best", "--trainer.logger.init_args.name", "never"],
        ["--ckpt_path best", "runs/never"],
    ),
}
if not torch.cuda.is_available():
    REFUSED["a GPU on a machine without one"] = (["fit", "--trainer.accelerator", "gpu"], ["trainer", "gpu"])


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_in_one_line_before_anything_is_written(
    case: str, experiment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, expected = REFUSED[case]
    before = tree(experiment)
    line = refused([args[0], "--config", "base.yaml", *args[1:]], capsys)
    for fragment in expected:
        assert fragment in line
    assert tree(experiment) == before


def test_yaml_alias_bomb_is_refused_naming_the_file(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (experiment / "bomb.yaml").write_text(ALIAS_BOMB)
    before = tree(experiment)
    line = refused(["fit", "--config", "base.yaml", "--config", "bomb.yaml"], capsys)
    assert "bomb.yaml" in line and "alias" in line
    assert tree(experiment) == before


def test_yaml_alias_bomb_in_an_option_value_is_refused(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(["fit", "--config", "base.yaml", "--trainer.callbacks", ALIAS_BOMB.replace("\n", "\n")], capsys)
    assert "alias" in line


def _tamper_hyperparameters(checkpoint: dict) -> None:
    checkpoint["hyper_parameters"] = "in_features: 2"


def _tamper_in_features(checkpoint: dict) -> None:
    checkpoint["hyper_parameters"]["in_features"] = "2"


def _tamper_weight_shape(checkpoint: dict) -> None:
    checkpoint["state_dict"]["linear.weight"] = torch.zeros(1, 3)


def _tamper_weights_nan(checkpoint: dict) -> None:
    checkpoint["state_dict"]["linear.weight"][0, 0] = float("nan")


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_tamper_hyperparameters, "hyper_parameters"),
        (_tamper_in_features, "in_features"),
        (_tamper_weight_shape, "linear.weight"),
        (_tamper_weights_nan, "NaN"),
    ],
)
def test_a_tampered_checkpoint_is_refused_naming_the_file_and_key(
    tamper: object, expected: str, experiment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = torch.load("runs/exp/version_0/checkpoints/latest.ckpt", weights_only=True)
    tamper(checkpoint)  # type: ignore[operator]
    torch.save(checkpoint, "odd.ckpt")
    before = tree(experiment)
    line = refused(["predict", "--config", "base.yaml", "--ckpt_path", "odd.ckpt"], capsys)
    assert "odd.ckpt" in line and expected in line
    assert "trained on 2" not in line  # not "the data has 2 features but the checkpoint was trained on 2"
    assert tree(experiment) == before


def test_ckpt_path_best_and_last_name_the_newest_fit(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoints = experiment / "runs/exp/version_0/checkpoints"
    (best,) = checkpoints.glob("best-*.ckpt")
    main(["test", "--config", "base.yaml", "--ckpt_path", "best"])
    assert f"--ckpt_path best: {best.relative_to(experiment)}" in capsys.readouterr().err
    main(["predict", "--config", "base.yaml", "--ckpt_path", "last"])
    assert "--ckpt_path last: runs/exp/version_0/checkpoints/latest.ckpt" in capsys.readouterr().err
    assert (experiment / "runs/exp/version_0/predict_0/predictions.csv").is_file()
    # The test and the predict went into version_0/test_0 and version_0/predict_0: "last" still means the fit's.
    main(["predict", "--config", "base.yaml", "--ckpt_path", "last"])
    assert "runs/exp/version_0/checkpoints/latest.ckpt" in capsys.readouterr().err


def test_a_pickled_on_exception_checkpoint_never_runs(experiment: Path) -> None:
    """Lightning resumes from OnExceptionCheckpoint's file by itself (ckpt_path="last"): it goes through our loader."""
    marker = experiment / "PWNED"
    payload = (
        "import os, torch\n"
        "class Payload:\n"
        f"    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
        "os.makedirs('onexc', exist_ok=True)\n"
        "torch.save({'state_dict': {}, 'payload': Payload()}, 'onexc/on_exception.ckpt')\n"
    )
    subprocess.run([sys.executable, "-c", payload], cwd=experiment, check=True)
    args = ["fit", "--config", "base.yaml", "--trainer.callbacks+=lightning.pytorch.callbacks.OnExceptionCheckpoint"]
    result = run_cli([*args, "--trainer.callbacks.dirpath", "onexc"], cwd=experiment, check=False)
    assert result.returncode == 2
    assert "on_exception.ckpt" in result.stderr.strip().splitlines()[-1]
    assert not marker.exists()


def test_version_folders_are_claimed_exclusively(tmp_path: Path) -> None:
    """Sixteen threads asking at once for a new version folder get sixteen different folders."""
    claimed: list[int] = []
    barrier = threading.Barrier(16)

    def claim() -> None:
        barrier.wait()
        claimed.append(claim_next_version(tmp_path / "exp"))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(16))


def test_a_run_that_stops_on_bad_data_creates_no_version_folder(
    experiment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (experiment / "bad.csv").write_text("a,b,y\n1,2,3\n1,x,3\n")
    before = tree(experiment)
    line = refused(["fit", "--config", "base.yaml", "--data.init_args.path", "bad.csv"], capsys)
    assert "bad.csv, row 3, column 'b'" in line
    assert tree(experiment) == before


class BuggySourdough(SourdoughDataModule):
    """Sourdough data whose loading fails as a bug would (a numpy parser error, say): not the user's input."""

    def load_arrays(self) -> ArrayData:
        raise ValueError("could not convert string to float: 'x'")


def test_a_bug_while_loading_the_data_keeps_its_traceback(in_tmp_path: Path) -> None:
    """Only an InputError is the user's: any other error of a constructor or of loading is raised as it is."""
    with pytest.raises(ValueError) as error_info:
        main(["fit", "--config", str(CONFIGS / "sourdough.yaml"), "--data", f"{__name__}.BuggySourdough"])
    chain = [error_info.value, error_info.value.__cause__]
    assert not any(isinstance(error, InputError) for error in chain)
    assert any("could not convert string to float" in str(error) for error in chain)
    assert list(in_tmp_path.iterdir()) == []


def test_formula_like_names_are_written_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Class and target names a spreadsheet would run (``=HYPERLINK(...)``, ``@cmd``) get a leading ``'``."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 2))
    labels = np.where(features[:, 0] > 0, '"=HYPERLINK(""http://x"")"', "@cmd")
    rows = "".join(f"{a},{b},{label},{a - b}\n" for (a, b), label in zip(features.tolist(), labels, strict=True))
    Path("c.csv").write_text("a,b,kind,@total\n" + rows)
    classify = BASE_YAML.replace("LinearRegression", "LogisticRegression")
    classify = classify.replace("path: d.csv", "path: c.csv\n    task: classification\n    targets: kind")
    Path("classify.yaml").write_text(classify.replace("name: exp", "name: classify"))
    regress = BASE_YAML.replace("path: d.csv", "path: c.csv\n    features: [a, b]\n    targets: '@total'")
    Path("regress.yaml").write_text(regress.replace("name: exp", "name: regress"))
    for config in ("classify.yaml", "regress.yaml"):
        main(["fit", "--config", config])
        main(["predict", "--config", config, "--ckpt_path", "last"])
    with open("runs/classify/version_0/predict_0/predictions.csv", newline="") as handle:
        rows_read = list(csv.reader(handle))
    header = rows_read[0]
    for column in ("kind", "kind_actual"):  # the predicted class, and the file's own
        assert {row[header.index(column)] for row in rows_read[1:]} == {'\'=HYPERLINK("http://x")', "'@cmd"}
    with open("runs/regress/version_0/predict_0/predictions.csv", newline="") as handle:
        header, first = list(csv.reader(handle))[:2]
    assert header == ["'@total", "'@total_actual", "'@total_residual"]
    [float(cell) for cell in first]  # numbers stay numbers, negative ones too


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return mounted.returncode == 0


def test_a_read_only_save_dir_is_refused(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not _mount_tmpfs(experiment / "readonly", "ro,size=64k"):
        pytest.skip("needs root and mount to make a read-only folder that root cannot write")
    try:
        line = refused(["fit", "--config", "base.yaml", "--trainer.logger.init_args.save_dir", "readonly"], capsys)
        assert "trainer.logger.init_args.save_dir readonly" in line and "Read-only" in line
    finally:
        subprocess.run(["umount", str(experiment / "readonly")], check=True)


def test_a_full_disk_is_one_line(experiment: Path) -> None:
    full = experiment / "full"
    if not _mount_tmpfs(full, "size=4k"):
        pytest.skip("needs root and mount to make a small filesystem")
    try:
        (full / "filler").write_bytes(b"\0" * 4096)  # the filesystem is now full; folders still fit
        result = run_cli(
            ["fit", "--config", "base.yaml", "--trainer.logger.init_args.save_dir", "full"], cwd=experiment, check=False
        )
        assert result.returncode == 2, result.stderr[-3000:]
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("lr-lightning: error: cannot write") and "No space left on device" in last
        assert "Traceback" not in result.stderr
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_an_option_a_later_config_would_replace_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """jsonargparse applies --config where it stands: options before it that the file also sets would be lost."""
    monkeypatch.chdir(tmp_path)
    printed = tmp_path / "printed.yaml"
    printed.write_text("ckpt_path: null\ntrainer:\n  max_epochs: 3\n")
    with pytest.raises(InputError, match=r"^--ckpt_path comes before --config .*printed.yaml, which sets it too"):
        cli(["predict", "--ckpt_path", "last", "--config", str(printed)])
    with pytest.raises(InputError, match=r"^--trainer.max_epochs comes before --config"):
        cli(["fit", "--trainer.max_epochs", "9", "--config", str(printed)])
    assert not (tmp_path / "runs").exists()
