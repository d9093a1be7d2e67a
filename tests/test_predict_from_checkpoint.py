"""A checkpoint is enough: ``predict`` and ``test`` on a new file without the config or the training file.

The checkpoint records its model class, task, feature, target and class names (``checkpoint["lr_lightning"]``);
``lr-lightning predict --ckpt_path CKPT --data.path new.csv`` finds the features by name in the new file, copies
``keep_columns``, and writes the actual values and residuals (or whether the class was right) when the file has
them. Every run here is a real ``lr-lightning`` process in a temporary folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from lr_lightning.checkpoint import load_checkpoint
from lr_lightning.cli import main
from lr_lightning.models import LinearRegression, LogisticRegression
from tests.helpers import run_cli

FIT = ["--trainer.max_epochs", "5", "--trainer.enable_progress_bar", "false", "--data.val_fraction", "0.2"]


def _write_csv(path: Path, columns: dict[str, list]) -> Path:
    names = list(columns)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows(zip(*(columns[name] for name in names), strict=True))
    return path


def _read_csv(path: Path) -> dict[str, list[str]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return {name: [row[j] for row in rows[1:]] for j, name in enumerate(rows[0])}


def _only(pattern: str, root: Path) -> Path:
    [found] = root.glob(pattern)
    return found


def _refused(args: list[str], folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``lr-lightning ARGS`` in this process in ``folder``; check it exits 2 and return its last stderr line."""
    monkeypatch.chdir(folder)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def _newest_predictions(root: Path) -> Path:
    """The predictions.csv the last predict run wrote, wherever its run folder is."""
    return max(root.glob("runs/**/predictions.csv"), key=lambda path: path.stat().st_mtime_ns)


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """A fit of y = 2a - b + c/2 + 3 on a CSV; the training file is deleted afterwards."""
    folder = tmp_path_factory.mktemp("regression")
    rng = np.random.default_rng(0)
    features = rng.normal(size=(120, 3))
    y = features @ [2.0, -1.0, 0.5] + 3.0 + 0.1 * rng.normal(size=120)
    train = _write_csv(folder / "train.csv", {"a": features[:, 0], "b": features[:, 1], "c": features[:, 2], "y": y})
    fit = ["fit", "--model", "LinearRegression", "--data", "FileDataModule", "--data.path", str(train), *FIT]
    run_cli([*fit, "--trainer.logger.init_args.name", "reg"], cwd=folder)
    train.unlink()  # a checkpoint must be enough
    return folder, _only("runs/reg/version_0/checkpoints/best-*.ckpt", folder), features


def test_the_checkpoint_records_the_model_class_task_and_columns(regression_run: tuple) -> None:
    _, ckpt, _ = regression_run
    record = load_checkpoint(ckpt)["lr_lightning"]
    assert record == {
        "model_class": "LinearRegression",
        "task": "regression",
        "feature_names": ["a", "b", "c"],
        "target_columns": ["y"],
        "class_names": None,
        "encoding": None,
    }


def test_predict_from_the_checkpoint_alone_finds_features_by_name_and_keeps_columns(regression_run: tuple) -> None:
    folder, ckpt, _ = regression_run
    rng = np.random.default_rng(1)
    new = rng.normal(size=(7, 3))
    ids = [f"loaf-{i}" for i in range(7)]
    # Another column order, an extra column, a text id, and no target column.
    columns = {"id": ids, "c": new[:, 2], "extra": range(7), "a": new[:, 0], "b": new[:, 1]}
    path = _write_csv(folder / "new.csv", columns)
    out = folder / "new_predictions.csv"
    args = ["predict", "--ckpt_path", str(ckpt), "--data.path", str(path), "--prediction_writer.keep_columns", "[id]"]
    run_cli([*args, "--prediction_writer.path", str(out)], cwd=folder)
    written = _read_csv(out)
    assert list(written) == ["id", "y"]  # no actual values: the file has no y
    assert written["id"] == ids
    model = LinearRegression.load_from_checkpoint(ckpt)
    expected = model(torch.from_numpy(new).float()).detach().numpy()[:, 0]
    np.testing.assert_allclose(np.array(written["y"], dtype=np.float32), expected, rtol=1e-6)
    # Shortest text that reads back to the same float32: never 17 digits.
    assert all(str(np.float32(cell)) == cell for cell in written["y"])


def test_predict_writes_actual_values_and_residuals_when_the_file_has_the_target(regression_run: tuple) -> None:
    folder, ckpt, _ = regression_run
    new = np.random.default_rng(2).normal(size=(5, 3))
    actual = [1.5, -2.25, 0.1, 7.0, 3.0]
    path = _write_csv(folder / "labelled.csv", {"a": new[:, 0], "b": new[:, 1], "c": new[:, 2], "y": actual})
    run_cli(["predict", "--ckpt_path", str(ckpt), "--data.path", str(path)], cwd=folder)
    written = _read_csv(_newest_predictions(folder))
    assert list(written) == ["y", "y_actual", "y_residual"]
    assert written["y_actual"] == ["1.5", "-2.25", "0.1", "7.0", "3.0"]
    predicted = np.array(written["y"], dtype=np.float64)
    residual = np.array(written["y_residual"], dtype=np.float64)
    np.testing.assert_allclose(residual, np.array(actual) - predicted, atol=1e-5)


def test_test_from_the_checkpoint_alone_evaluates_every_row_of_the_new_file(regression_run: tuple) -> None:
    folder, ckpt, _ = regression_run
    rng = np.random.default_rng(3)
    new = rng.normal(size=(40, 3))
    y = new @ [2.0, -1.0, 0.5] + 3.0
    path = _write_csv(folder / "holdout.csv", {"b": new[:, 1], "a": new[:, 0], "c": new[:, 2], "y": y})
    result = run_cli(["test", "--ckpt_path", str(ckpt), "--data.path", str(path)], cwd=folder)
    model = LinearRegression.load_from_checkpoint(ckpt)
    predicted = model(torch.from_numpy(new).float()).detach().double().numpy()[:, 0]
    mse = float(np.mean((predicted - y) ** 2))
    printed = next(line for line in result.stdout.splitlines() if "test_mse" in line)
    assert float(printed.split()[-1]) == pytest.approx(mse, rel=1e-4)  # all 40 rows, none held out


def test_a_file_without_the_target_is_refused_for_test_in_one_line(
    regression_run: tuple, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ckpt, _ = regression_run
    path = _write_csv(folder / "features_only.csv", {"a": [1.0, 2.0], "b": [0.0, 1.0], "c": [3.0, 4.0]})
    before = sorted(p for p in folder.rglob("*"))
    result = _refused(["test", "--ckpt_path", str(ckpt), "--data.path", str(path)], folder, monkeypatch, capsys)
    assert result == (f"lr-lightning: error: {path}: no target column 'y': its rows can only be predicted on")
    assert sorted(p for p in folder.rglob("*")) == before


def test_a_missing_feature_is_named(
    regression_run: tuple, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ckpt, _ = regression_run
    path = _write_csv(folder / "no_c.csv", {"a": [1.0], "b": [0.0]})
    result = _refused(["predict", "--ckpt_path", str(ckpt), "--data.path", str(path)], folder, monkeypatch, capsys)
    assert "no feature column 'c'" in result


def test_an_unknown_kept_column_is_refused_before_anything_is_written(
    regression_run: tuple, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ckpt, features = regression_run
    path = _write_csv(folder / "keep.csv", {"a": features[:3, 0], "b": features[:3, 1], "c": features[:3, 2]})
    before = sorted(p for p in folder.rglob("*"))
    args = ["predict", "--ckpt_path", str(ckpt), "--data.path", str(path), "--prediction_writer.keep_columns", "[id]"]
    result = _refused(args, folder, monkeypatch, capsys)
    last = result
    assert "'id'" in last and str(path) in last
    assert sorted(p for p in folder.rglob("*")) == before


def test_an_existing_output_path_is_refused(
    regression_run: tuple, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ckpt, features = regression_run
    path = _write_csv(folder / "again.csv", {"a": features[:3, 0], "b": features[:3, 1], "c": features[:3, 2]})
    taken = folder / "taken.csv"
    taken.write_text("keep me\n")
    args = ["predict", "--ckpt_path", str(ckpt), "--data.path", str(path), "--prediction_writer.path", str(taken)]
    result = _refused(args, folder, monkeypatch, capsys)
    assert "the file exists" in result
    assert taken.read_text() == "keep me\n"


def test_a_checkpoint_without_a_record_asks_for_a_config(
    tmp_path: Path, regression_run: tuple, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, ckpt, _ = regression_run
    checkpoint = load_checkpoint(ckpt)
    del checkpoint["lr_lightning"]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    result = _refused(["predict", "--ckpt_path", str(old), "--data.path", "new.csv"], tmp_path, monkeypatch, capsys)
    assert "does not record its model class" in result


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"model_class": "os.system"}, "not one of lr_lightning's models"),
        ({"task": "classification"}, "but a LinearRegression is a regression model"),
        ({"feature_names": "a"}, "is not a list of names"),
    ],
)
def test_a_forged_record_is_refused(
    tmp_path: Path,
    regression_run: tuple,
    record: dict,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, ckpt, _ = regression_run
    checkpoint = load_checkpoint(ckpt)
    checkpoint["lr_lightning"].update(record)
    forged = tmp_path / "forged.ckpt"
    torch.save(checkpoint, forged)
    result = _refused(["predict", "--ckpt_path", str(forged), "--data.path", "x.csv"], tmp_path, monkeypatch, capsys)
    assert message in result


def test_classifier_predicts_a_new_file_with_its_own_classes_and_says_which_were_right(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = ["sl", "sw", "pl", "pw"]
    species = [str(iris.target_names[t]) for t in iris.target]
    columns: dict[str, list] = {name: iris.data[:, j] for j, name in enumerate(names)}
    train = _write_csv(tmp_path / "iris.csv", {**columns, "species": species})
    fit = ["fit", "--model", "LogisticRegression", "--data", "FileDataModule", "--data.path", str(train), *FIT]
    run_cli([*fit, "--trainer.max_epochs", "30"], cwd=tmp_path)
    ckpt = _only("runs/default/version_0/checkpoints/best-*.ckpt", tmp_path)
    train.unlink()
    # Only virginica and versicolor rows: their labels must keep the checkpoint's class indices.
    rows = [i for i in range(150) if iris.target[i] > 0][::10]
    new = {name: iris.data[rows, j] for j, name in enumerate(names)}
    path = _write_csv(tmp_path / "new.csv", {**new, "species": [species[i] for i in rows]})
    run_cli(["predict", "--ckpt_path", str(ckpt), "--data.path", str(path)], cwd=tmp_path)
    written = _read_csv(_newest_predictions(tmp_path))
    classes = ["setosa", "versicolor", "virginica"]
    assert list(written) == [*(f"p_{c}" for c in classes), "species", "species_actual", "correct"]
    assert written["species_actual"] == [species[i] for i in rows]
    model = LogisticRegression.load_from_checkpoint(ckpt)
    features = np.column_stack([new[name] for name in names])
    predicted = [classes[j] for j in model.predict_proba(features).argmax(axis=1)]
    assert written["species"] == predicted
    assert written["correct"] == [str(p == t) for p, t in zip(predicted, written["species_actual"], strict=True)]


def test_a_label_the_classifier_does_not_know_is_refused_naming_the_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(4)
    features = rng.normal(size=(60, 2))
    labels = np.where(features[:, 0] > 0, "yes", "no")
    train = _write_csv(tmp_path / "train.csv", {"u": features[:, 0], "v": features[:, 1], "answer": labels})
    fit = ["fit", "--model", "LogisticRegression", "--data", "FileDataModule", "--data.path", str(train), *FIT]
    run_cli(fit, cwd=tmp_path)
    ckpt = _only("runs/default/version_0/checkpoints/latest.ckpt", tmp_path)
    new = _write_csv(tmp_path / "new.csv", {"u": [0.5, -0.5], "v": [0.0, 0.0], "answer": ["yes", "maybe"]})
    result = _refused(["predict", "--ckpt_path", str(ckpt), "--data.path", str(new)], tmp_path, monkeypatch, capsys)
    assert result == (
        f"lr-lightning: error: {new}, row 3, column 'answer': label maybe is not one of the model's classes "
        "['no', 'yes']"
    )
