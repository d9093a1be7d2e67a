"""k-fold cross-validation: the DataModules' folds and ``lr-lightning cv``, one normal run per fold, one table.

The table's numbers are checked against what each fold's run logged, read back with TensorBoard's own reader.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lr_lightning.cli import main
from lr_lightning.data import ArraysDataModule, FileDataModule, SourdoughDataModule
from lr_lightning.data.stores.memory import fold_numbers
from lr_lightning.errors import InputError
from tests.helpers import CONFIGS, REPO


def last_scalar(run_folder: Path, tag: str) -> float:
    """The last value of ``tag`` in a run folder's TensorBoard events."""
    accumulator = EventAccumulator(str(run_folder))
    accumulator.Reload()
    return float(accumulator.Scalars(tag)[-1].value)


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_folds_are_disjoint_covering_and_balanced() -> None:
    rows = np.arange(103)
    validation = []
    for fold in range(5):
        data = ArraysDataModule(rows[:, None].astype(float), rows.astype(float), num_folds=5, fold=fold, seed=3)
        train, val = (data.split.source_rows(name) for name in ("train", "val"))
        assert set(train.tolist()).isdisjoint(val.tolist()) and len(train) + len(val) == 103
        validation.append(val)
    everything = np.concatenate(validation)
    assert sorted(everything.tolist()) == rows.tolist()  # each row validates exactly once
    assert sorted(len(val) for val in validation) == [20, 20, 21, 21, 21]


def test_folds_of_classes_are_stratified_whatever_the_class_names() -> None:
    labels = np.array([0] * 30 + [1] * 12 + [2] * 6)
    folds = fold_numbers(labels, 3, len(labels))
    for fold in range(3):
        np.testing.assert_array_equal(np.bincount(labels[folds == fold]), [10, 4, 2])
    renamed = np.array(["c", "a", "b"], dtype=object)[labels]  # other names, another sorted order
    np.testing.assert_array_equal(fold_numbers(renamed, 3, len(labels)), folds)


def test_a_test_split_is_held_out_before_the_folds() -> None:
    data = ArraysDataModule(np.ones((50, 1)), np.arange(50.0), num_folds=4, fold=1, test_fraction=0.2)
    test = set(data.split.source_rows("test").tolist())
    assert len(test) == 10
    for fold in range(4):
        other = ArraysDataModule(np.ones((50, 1)), np.arange(50.0), num_folds=4, fold=fold, test_fraction=0.2)
        assert set(other.split.source_rows("test").tolist()) == test
        assert test.isdisjoint(other.split.source_rows("val").tolist())


def test_fold_options_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="num_folds must be >= 2, got 1"):
        SourdoughDataModule(num_folds=1)
    with pytest.raises(InputError, match=r"fold must be in \[0, 2\], got 3"):
        SourdoughDataModule(num_folds=3, fold=3)
    np.save(tmp_path / "rows.npy", np.ones((20, 3)))
    with pytest.raises(InputError, match="num_folds: folds are dealt row by row in memory; set in_memory: true"):
        FileDataModule(str(tmp_path / "rows.npy"), num_folds=2).setup("fit")
    path = REPO / "data" / "houses.csv"
    with pytest.raises(InputError, match="num_folds: the data comes with its own validation rows"):
        FileDataModule(str(path), val_path=str(path), num_folds=2).setup("fit")


def test_cv_runs_each_fold_as_a_run_and_tabulates_their_logged_metrics(
    in_tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["cv", "--config", str(CONFIGS / "exact.yaml"), "--folds", "5"])
    out = capsys.readouterr().out
    experiment = Path("runs") / "exact"
    runs = sorted(experiment.glob("version_*"))
    assert len(runs) == 5 and "Cross-validation, 5 folds:" in out
    [row] = read_table(experiment / "cv_results.csv")
    assert row["folds"] == "5" and row["run_folders"].split() == [str(run) for run in runs]
    for metric in ("val_mse", "val_r2", "val_mae"):
        logged = np.array([last_scalar(run, metric) for run in runs])
        assert float(row[f"{metric}_mean"]) == pytest.approx(logged.mean(), rel=1e-6)
        assert float(row[f"{metric}_std"]) == pytest.approx(logged.std(), rel=1e-6)
    hparams = EventAccumulator(str(experiment / "cv_hparams" / "setting_0"))
    hparams.Reload()
    assert hparams.PluginTagToContent("hparams")  # the HParams tab's entry


def test_cv_over_a_grid_on_iris_is_stratified_and_writes_one_row_per_setting(
    in_tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp_path / "data").mkdir()
    (in_tmp_path / "data" / "iris.csv").write_bytes((REPO / "data" / "iris.csv").read_bytes())
    grid = "model.init_args.l2_strength=[0.001,0.1]"
    config = ["--config", str(CONFIGS / "logistic_newton.yaml"), "--trainer.max_epochs", "4"]
    main(["cv", *config, "--folds", "3", "--grid", grid])
    experiment = Path("runs") / "logistic_newton"
    table = read_table(experiment / "cv_results.csv")
    assert [row["model.init_args.l2_strength"] for row in table] == ["0.001", "0.1"]
    for row in table:
        runs = [Path(folder) for folder in row["run_folders"].split()]
        accuracy = np.array([last_scalar(run, "val_acc") for run in runs])
        assert float(row["val_acc_mean"]) == pytest.approx(accuracy.mean(), rel=1e-6)
    # The folds the runs used: each validates 10 of each species' 40 training-and-validation rows.
    for fold in range(3):
        data = FileDataModule("data/iris.csv", targets="species", task="classification", num_folds=3, fold=fold)
        _, labels = data.split_tensors("val")
        assert sorted(np.bincount(labels.numpy()).tolist())[0] >= 9
    assert len(list(experiment.glob("version_*"))) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "x.yaml"], "cv: the following arguments are required: --folds"),
        (["--folds", "1"], "cv: --folds must be >= 2, got 1"),
        (["--folds", "2", "--grid", "l2_strength"], "is not KEY=[V1,V2,...]"),
        (["--folds", "2", "--grid", "model.init_args.l2_strength=0.1"], "the values must be a non-empty list"),
        (["--folds", "2", "--data.init_args.fold", "1"], "the folds are set by --folds"),
        (["--config", str(CONFIGS / "ddp.yaml"), "--folds", "2"], "a config of 2 processes (DDP) is not supported"),
    ],
)
def test_cv_mistakes_are_one_line(
    args: list[str], message: str, in_tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["cv", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not Path("runs").exists()
