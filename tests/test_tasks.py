"""The model says which task it solves; the data follows it, or the run is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lr_lightning.cli import cli
from lr_lightning.errors import InputError
from lr_lightning.models import LogisticRegression
from tests.helpers import CONFIGS, run_cli

QUIET = ["--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]


@pytest.fixture
def labelled_csv(tmp_path: Path) -> Path:
    """A CSV whose last column holds 0/1 labels, as a user's own table would."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 3))
    labels = (features @ np.array([1.0, -2.0, 0.5]) > 0).astype(int)
    path = tmp_path / "labelled.csv"
    rows = "\n".join(",".join([*(f"{v:.6f}" for v in x), str(y)]) for x, y in zip(features, labels, strict=True))
    path.write_text("a,b,c,label\n" + rows + "\n")
    return path


def test_a_logistic_model_makes_a_file_a_classification_table(labelled_csv: Path, tmp_path: Path) -> None:
    """No ``task: classification`` needed: the model's task is the data's (the issue's breast-cancer path)."""
    args = ["fit", "--model", "LogisticRegression", "--data", "FileDataModule", "--data.path", str(labelled_csv)]
    result = run_cli([*args, "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false"], cwd=tmp_path)
    assert "Traceback" not in result.stderr
    [checkpoint] = tmp_path.glob("runs/default/version_0/checkpoints/latest.ckpt")
    model = LogisticRegression.load_from_checkpoint(checkpoint)
    assert model.class_names == ["0", "1"] and model.hparams["in_features"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "LinearRegression", "--data.init_args.task", "classification"],
            r"^LinearRegression is a regression model but data.init_args.task is 'classification'; set "
            r"data.init_args.task: regression \(or leave it out\), or use a classification model "
            r"\(LogisticRegression\)$",
        ),
        (
            ["--model", "LogisticRegression", "--data.init_args.task", "regression"],
            r"^LogisticRegression is a classification model but data.init_args.task is 'regression'; set "
            r"data.init_args.task: classification",
        ),
    ],
)
def test_a_task_the_model_cannot_solve_is_refused_naming_the_option(
    args: list[str], message: str, labelled_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message):
        model, task = args[:2], args[2:]  # the data's options come after the data's class
        cli(["fit", *model, "--data", "FileDataModule", "--data.path", str(labelled_csv), *task, *QUIET])
    assert not (tmp_path / "runs").exists()


def test_fixed_task_data_refuses_a_model_of_the_other_task(tmp_path: Path) -> None:
    result = run_cli(
        ["fit", "--config", str(CONFIGS / "sourdough.yaml"), "--model", "LogisticRegression"], cwd=tmp_path, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "lr-lightning: error: LogisticRegression is a classification model but SourdoughDataModule holds regression "
        "data; use --model LinearRegression or MultiOutputRegression, or other data"
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()
