"""Real tables: categorical columns, missing cells, weights and missing targets, against scikit-learn's pipeline.

The shipped example (``configs/rentals.yaml`` on ``data/rentals.csv``) is fitted through the CLI, the training file
is deleted, and a fresh process predicts a new file from the checkpoint alone: the predictions equal those of the
scikit-learn pipeline a user would build by hand (``ColumnTransformer`` of ``OneHotEncoder(drop="first")`` and
``SimpleImputer(add_indicator=True)``, then ``LinearRegression`` with ``sample_weight``).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression as SklearnLinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from lr_lightning.checkpoint import load_checkpoint
from lr_lightning.cli import main
from lr_lightning.data import FileDataModule
from lr_lightning.errors import InputError
from lr_lightning.models import LinearRegression
from tests.helpers import CONFIGS, RENTALS_NUMERIC, REPO, fit, rentals_term, run_cli


def reference_pipeline(table: pd.DataFrame, strategy: str = "mean") -> object:
    """scikit-learn's pipeline for the rentals table, fitted on the rows with a rent, weighted."""
    rows = table.dropna(subset=["rent"])
    encode = ColumnTransformer(
        [
            ("cat", OneHotEncoder(drop="first"), ["neighbourhood"]),
            ("num", SimpleImputer(strategy=strategy, add_indicator=True), RENTALS_NUMERIC),
        ]
    )
    pipeline = make_pipeline(encode, SklearnLinearRegression())
    features = rows[["neighbourhood", *RENTALS_NUMERIC]]
    pipeline.fit(features, rows["rent"], linearregression__sample_weight=rows["weight"])
    return pipeline


def read_csv(path: Path) -> dict[str, list[str]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return {name: [row[j] for row in rows[1:]] for j, name in enumerate(rows[0])}


@pytest.fixture(scope="module")
def rentals_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``fit --config configs/rentals.yaml`` on every row with a rent; the training file is deleted afterwards."""
    folder = tmp_path_factory.mktemp("rentals")
    (folder / "data").mkdir()
    for name in ("rentals.csv", "rentals_new.csv"):
        shutil.copy(REPO / "data" / name, folder / "data" / name)
    result = run_cli(["fit", "--config", str(CONFIGS / "rentals.yaml"), "--data.val_fraction", "0"], cwd=folder)
    assert "data/rentals.csv: dropped 2 of 60 rows with a missing target (drop_missing_targets)" in result.stderr
    (folder / "data" / "rentals.csv").unlink()  # the checkpoint must be enough
    [ckpt] = (folder / "runs" / "rentals" / "version_0" / "checkpoints").glob("latest*.ckpt")
    return folder, ckpt


def test_the_checkpoint_holds_the_fitted_encoding(rentals_run: tuple[Path, Path]) -> None:
    _, ckpt = rentals_run
    record = load_checkpoint(ckpt)["lr_lightning"]
    assert record["feature_names"] == [
        "neighbourhood=north",
        "neighbourhood=river",
        "neighbourhood=south",
        "neighbourhood=(missing)",
        "area_m2",
        "rooms",
        "year_built",
        "area_m2_missing",
        "year_built_missing",
    ]
    columns = {column["name"]: column for column in record["encoding"]["columns"]}
    assert columns["neighbourhood"]["levels"] == ["centre", "north", "river", "south"]
    table = pd.read_csv(REPO / "data" / "rentals.csv").dropna(subset=["rent"])
    assert columns["area_m2"]["fill"] == pytest.approx(table["area_m2"].mean(), rel=1e-12)  # SimpleImputer's mean


def test_a_fresh_process_predicts_a_new_file_as_the_scikit_learn_pipeline(rentals_run: tuple[Path, Path]) -> None:
    folder, ckpt = rentals_run
    out = folder / "new_predictions.csv"
    args = ["predict", "--ckpt_path", str(ckpt), "--data.path", "data/rentals_new.csv", "--prediction_writer.path"]
    run_cli([*args, str(out)], cwd=folder)
    predicted = np.array(read_csv(out)["rent"], dtype=np.float64)
    pipeline = reference_pipeline(pd.read_csv(REPO / "data" / "rentals.csv"))
    expected = pipeline.predict(pd.read_csv(REPO / "data" / "rentals_new.csv"))  # type: ignore[attr-defined]
    np.testing.assert_allclose(predicted, expected, rtol=1e-5)


def test_a_level_the_training_rows_never_had_is_refused_in_one_line(
    rentals_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ckpt = rentals_run
    monkeypatch.chdir(folder)
    new = folder / "harbour.csv"
    new.write_text("neighbourhood,area_m2,rooms,year_built\nnorth,50,2,1990\nharbour,70,3,2001\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--ckpt_path", str(ckpt), "--data.path", str(new)])
    assert exit_info.value.code == 2
    [message] = capsys.readouterr().err.strip().splitlines()
    assert f"{new}, row 3, column 'neighbourhood': level 'harbour' was not in the training rows" in message
    assert "handle_unknown: ignore" in message


def test_coefficients_by_name_equal_the_pipeline_on_the_training_rows(tmp_path: Path) -> None:
    data = FileDataModule(
        str(REPO / "data" / "rentals.csv"),
        targets="rent",
        weights="weight",
        categorical=["neighbourhood"],
        missing="median",
        drop_missing_targets=True,
        val_fraction=0,
        test_fraction=0,
    )
    model = LinearRegression(data.num_features, feature_names=data.feature_names, solver="exact")
    fit(model, data, epochs=1)
    pipeline = reference_pipeline(pd.read_csv(REPO / "data" / "rentals.csv"), strategy="median")
    names = pipeline[0].get_feature_names_out()  # type: ignore[index]
    ours = {rentals_term(name): value for name, value in zip(names, pipeline[-1].coef_, strict=True)}  # type: ignore[index]
    coefficients = dict(zip(data.feature_names, model.coef_.reshape(-1).tolist(), strict=True))
    assert set(coefficients) == set(ours)
    for name, value in ours.items():
        assert coefficients[name] == pytest.approx(value, rel=1e-6, abs=1e-6), name
    assert float(model.intercept_[0]) == pytest.approx(pipeline[-1].intercept_, rel=1e-6)  # type: ignore[index]


def test_a_missing_target_is_refused_naming_its_line_unless_dropped(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("x,y\n1,2\n2,\n3,6\n")
    with pytest.raises(InputError, match=r"gaps.csv, row 3, column 'y': missing target; targets are never imputed"):
        _ = FileDataModule(str(path), missing="mean").description
    data = FileDataModule(str(path), drop_missing_targets=True, val_fraction=0, test_fraction=0)
    features, targets = data.split_tensors("train")
    assert features.reshape(-1).tolist() == [1.0, 3.0] and targets.reshape(-1).tolist() == [2.0, 6.0]


def test_a_missing_cell_without_the_option_names_row_column_and_option(tmp_path: Path) -> None:
    path = tmp_path / "holes.csv"
    path.write_text("town,x,y\na,1,2\nb,,3\na,2,4\nb,3,5\n")
    with pytest.raises(InputError, match=r"holes.csv, row 3, column 'x': missing value; set missing: mean or median"):
        _ = FileDataModule(str(path), categorical=["town"], val_fraction=0, test_fraction=0).description


def test_on_disk_storage_and_array_files_say_they_cannot_encode(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="in_memory: false streams numbers from disk; categorical, missing"):
        FileDataModule(str(REPO / "data" / "rentals.csv"), categorical=["neighbourhood"], in_memory=False)
    np.save(tmp_path / "rows.npy", np.ones((4, 3)))
    with pytest.raises(InputError, match="categorical, missing and drop_missing_targets read CSV or Parquet files"):
        _ = FileDataModule(str(tmp_path / "rows.npy"), missing="mean").description


def test_predict_with_ignore_encodes_an_unseen_level_as_all_zeros(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("town,x,y\na,1,2\nb,2,5\nc,3,7\na,4,8\nb,5,11\nc,6,13\n")
    new = tmp_path / "new.csv"
    new.write_text("town,x\nd,2\na,2\n")
    data = FileDataModule(
        str(train),
        categorical=["town"],
        handle_unknown="ignore",
        predict_path=str(new),
        val_fraction=0,
        test_fraction=0,
    )
    features = data.predict_features()
    assert data.feature_names == ["town=b", "town=c", "x"]
    np.testing.assert_array_equal(features.numpy(), torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 2.0]]).numpy())


def test_without_the_options_a_text_or_empty_feature_cell_names_the_option_that_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("town,x,y\nnorth,1,2\nsouth,2,3\n")
    with pytest.raises(InputError, match=r"row 2, column 'town': 'north' is not a number; if the column holds categ"):
        _ = FileDataModule(str(path)).description
    path.write_text("x,z,y\n1,2,2\n,3,3\n")
    with pytest.raises(InputError, match=r"row 3, column 'x': '' is not a number \(an empty cell: set missing: mean"):
        _ = FileDataModule(str(path)).description


def test_a_config_run_on_another_file_applies_the_checkpoints_encoding(
    rentals_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, ckpt = rentals_run
    monkeypatch.chdir(folder)
    new = pd.read_csv(REPO / "data" / "rentals_new.csv")
    new["weight"], new["rent"] = 1, 1000  # the config names a target and weights: the file must have them
    new.to_csv(folder / "new_full.csv", index=False)
    out = folder / "config_predictions.csv"
    args = ["predict", "--config", str(CONFIGS / "rentals.yaml"), "--ckpt_path", str(ckpt), "--data.path"]
    args += ["new_full.csv", "--data.val_fraction", "0.5", "--data.test_fraction", "0", "--prediction_writer.path"]
    main([*args, str(out)])
    # The six new rows alone would give other means and levels; the checkpoint's encoding is applied instead.
    pipeline = reference_pipeline(pd.read_csv(REPO / "data" / "rentals.csv"))
    expected = pipeline.predict(pd.read_csv(REPO / "data" / "rentals_new.csv"))  # type: ignore[attr-defined]
    np.testing.assert_allclose(np.array(read_csv(out)["rent"], dtype=np.float64), expected, rtol=1e-5)
