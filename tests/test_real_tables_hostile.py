"""Real tables, read carelessly or with hostile cells: each mistake is one line (exit 2), each fix is exact.

A module fixture fits ``configs/rentals.yaml`` once in a fresh process (every row with a rent trains; the
categorical column given as a plain string); the tests then run the CLI in a private copy of that folder. A refusal
ends stderr in one ``lr-lightning: error:`` line naming file, row, column or option and leaves the folder as it was;
a command that runs gives the predictions of scikit-learn's pipeline, which a user would build by hand.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression as SklearnLinearRegression
from sklearn.metrics import mean_squared_error
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from lr_lightning.checkpoint import load_checkpoint
from lr_lightning.cli import main
from lr_lightning.data import FileDataModule
from lr_lightning.errors import InputError
from tests.helpers import CONFIGS, RENTALS_NUMERIC, REPO

RENTALS = REPO / "data" / "rentals.csv"
CKPT = "runs/rentals/version_0/checkpoints/latest.ckpt"
FIT_CONFIG = ["--config", str(CONFIGS / "rentals.yaml"), "--data.val_fraction", "0"]


def rentals_table() -> pd.DataFrame:
    """data/rentals.csv as scikit-learn reads it (empty cells NaN)."""
    return pd.read_csv(RENTALS)


def reference_pipeline(handle_unknown: str = "error") -> Pipeline:
    """scikit-learn's pipeline for the rentals table, fitted weighted on the rows with a rent."""
    rows = rentals_table().dropna(subset=["rent"])
    encode = ColumnTransformer(
        [
            ("cat", OneHotEncoder(drop="first", handle_unknown=handle_unknown), ["neighbourhood"]),
            ("num", SimpleImputer(strategy="mean", add_indicator=True), RENTALS_NUMERIC),
        ]
    )
    pipeline = make_pipeline(encode, SklearnLinearRegression())
    pipeline.fit(
        rows[["neighbourhood", *RENTALS_NUMERIC]], rows["rent"], linearregression__sample_weight=rows["weight"]
    )
    return pipeline


def read_columns(path: Path) -> dict[str, list[str]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return {name: [row[j] for row in rows[1:]] for j, name in enumerate(rows[0])}


def tree(folder: Path) -> dict[str, int]:
    """Every file and folder under ``folder`` with its size (folders: -1)."""
    return {str(p.relative_to(folder)): (p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*")}


def refused(args: list[str], folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``lr-lightning ARGS`` in this process; assert exit 2, one error line and nothing written; return it."""
    before = tree(folder)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if "error" in line.lower()]
    assert errors == lines[-1:] and lines[-1].startswith("lr-lightning: error: "), lines[-5:]
    assert tree(folder) == before
    return lines[-1]


def with_cell(folder: Path, name: str, row: int, column: str, cell: str) -> str:
    """Copy data/rentals.csv to ``name`` with data row ``row`` (0-based; line ``row + 2``) of ``column`` replaced."""
    lines = RENTALS.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = cell
    lines[row + 1] = ",".join(cells)
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return name


@pytest.fixture(scope="module")
def fitted_rentals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``fit --config configs/rentals.yaml`` with ``categorical: neighbourhood`` (a plain string) in a YAML file."""
    folder = tmp_path_factory.mktemp("rentals")
    (folder / "data").mkdir()
    for name in ("rentals.csv", "rentals_new.csv"):
        shutil.copy(REPO / "data" / name, folder / "data" / name)
    (folder / "one_categorical.yaml").write_text("data:\n  init_args:\n    categorical: neighbourhood\n")
    previous = Path.cwd()
    os.chdir(folder)  # a module fixture: monkeypatch is per test
    try:
        main(["fit", *FIT_CONFIG, "--config", "one_categorical.yaml"])
    finally:
        os.chdir(previous)
    return folder


@pytest.fixture
def rentals(fitted_rentals: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the fitted rentals folder, as the working directory."""
    folder = tmp_path / "rentals"
    shutil.copytree(fitted_rentals, folder)
    monkeypatch.chdir(folder)
    return folder


def test_a_plain_string_names_the_one_categorical_column(fitted_rentals: Path) -> None:
    record = load_checkpoint(fitted_rentals / CKPT)["lr_lightning"]
    names = reference_pipeline()[0].get_feature_names_out()  # type: ignore[index]
    levels = [name.removeprefix("cat__neighbourhood_") for name in names if name.startswith("cat__")]
    assert [name for name in record["feature_names"] if name.startswith("neighbourhood=")] == [
        f"neighbourhood={'(missing)' if level == 'nan' else level}" for level in levels
    ]


def test_kept_columns_are_those_of_the_rows_predicted_after_dropping_missing_targets(rentals: Path) -> None:
    out = rentals / "kept.csv"
    keep = ["--prediction_writer.keep_columns", "[neighbourhood, area_m2]", "--prediction_writer.path", str(out)]
    main(["predict", *FIT_CONFIG, "--ckpt_path", CKPT, *keep])
    written = read_columns(out)
    rows = pd.read_csv(RENTALS, dtype=str, keep_default_na=False)
    rows = rows[rows["rent"] != ""]  # the 58 rows with a rent: the 2 without are dropped, not predicted
    assert len(written["rent"]) == len(rows) == 58
    assert written["neighbourhood"] == rows["neighbourhood"].tolist()
    assert written["area_m2"] == rows["area_m2"].tolist()
    np.testing.assert_array_equal(np.array(written["rent_actual"], dtype=float), rows["rent"].astype(float))
    table = rentals_table().dropna(subset=["rent"])
    expected = reference_pipeline().predict(table[["neighbourhood", *RENTALS_NUMERIC]])
    np.testing.assert_allclose(np.array(written["rent"], dtype=float), expected, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Found unknown categories")  # scikit-learn says what handle_unknown asked for
def test_handle_unknown_given_with_the_checkpoint_encodes_an_unseen_level_as_all_zeros(rentals: Path) -> None:
    new = rentals / "harbour.csv"
    new.write_text("neighbourhood,area_m2,rooms,year_built\nnorth,45.5,1,1999\nharbour,80,3,1990\n,60,2,\n")
    out = rentals / "harbour_predictions.csv"
    unknown = ["--data.path", str(new), "--data.handle_unknown", "ignore"]
    main(["predict", "--ckpt_path", CKPT, *unknown, "--prediction_writer.path", str(out)])
    expected = reference_pipeline(handle_unknown="ignore").predict(pd.read_csv(new))
    np.testing.assert_allclose(np.array(read_columns(out)["rent"], dtype=float), expected, rtol=1e-5)


def test_the_options_the_checkpoint_decides_may_be_repeated_but_not_changed(
    rentals: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = ["predict", "--ckpt_path", CKPT, "--data.path", "data/rentals_new.csv"]
    decides = "encoding: the checkpoint's table encoding already decides categorical, missing and drop_first; remove"
    for option, value in (("categorical", "[neighbourhood, rooms]"), ("missing", "median"), ("drop_first", "false")):
        line = refused([*new, f"--data.{option}", value], rentals, capsys)
        assert line == f"lr-lightning: error: {decides} --data.{option}"
    out = rentals / "same.csv"
    same = ["--data.categorical", "neighbourhood", "--data.missing", "mean", "--data.drop_first", "true"]
    main([*new, *same, "--prediction_writer.path", str(out)])
    expected = reference_pipeline().predict(pd.read_csv(REPO / "data" / "rentals_new.csv"))
    np.testing.assert_allclose(np.array(read_columns(out)["rent"], dtype=float), expected, rtol=1e-5)


@pytest.mark.parametrize("subcommand", ["test", "validate"])
def test_evaluating_a_file_with_missing_targets_names_the_first_and_the_option(
    subcommand: str, rentals: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused([subcommand, "--ckpt_path", CKPT, "--data.path", "data/rentals.csv"], rentals, capsys)
    assert line == (
        "lr-lightning: error: data/rentals.csv, row 23, column 'rent': missing target; targets are never imputed: "
        "fill it, or set drop_missing_targets: true (--data.drop_missing_targets true) to drop such rows"
    )


def test_dropping_missing_targets_tests_on_the_other_rows(rentals: Path) -> None:
    main(["test", "--ckpt_path", CKPT, "--data.path", "data/rentals.csv", "--data.drop_missing_targets", "true"])
    [metrics_file] = (rentals / "runs" / "rentals" / "version_0").glob("test_*/metrics.json")
    metrics = json.loads(metrics_file.read_text())["metrics"]
    table = rentals_table().dropna(subset=["rent"])
    predicted = reference_pipeline().predict(table[["neighbourhood", *RENTALS_NUMERIC]])
    assert metrics["test_mse"] == pytest.approx(mean_squared_error(table["rent"], predicted), rel=1e-4)


def test_a_file_with_missing_targets_is_predicted_on_every_row(rentals: Path) -> None:
    out = rentals / "all_rows.csv"
    main(["predict", "--ckpt_path", CKPT, "--data.path", "data/rentals.csv", "--prediction_writer.path", str(out)])
    written = read_columns(out)
    expected = reference_pipeline().predict(rentals_table()[["neighbourhood", *RENTALS_NUMERIC]])
    assert len(expected) == 60
    np.testing.assert_allclose(np.array(written["rent"], dtype=float), expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--data.weights", "rent"], "data/rentals.csv: column 'rent' is both a target and the weights"),
        (
            ["--data.features", "[neighbourhood, area_m2, weight]"],
            "data/rentals.csv: column 'weight' is both a feature and the weights",
        ),
    ],
)
def test_the_weight_column_as_a_target_or_feature_is_named(
    options: list[str], message: str, rentals: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert refused(["fit", *FIT_CONFIG, *options], rentals, capsys) == f"lr-lightning: error: {message}"


@pytest.mark.parametrize(
    ("column", "cell"), [("rent", "1_589"), ("rent", "１５８９"), ("weight", "1_0"), ("weight", "１")]
)
def test_targets_and_weights_are_numbers_as_numpy_reads_them(
    column: str, cell: str, rentals: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_cell(rentals, "odd.csv", 2, column, cell)
    line = refused(["fit", *FIT_CONFIG, "--data.path", path], rentals, capsys)
    what = "a number" if column == "rent" else "a weight (weights are numbers >= 0)"
    assert line == f"lr-lightning: error: odd.csv, row 4, column {column!r}: {cell!r} is not {what}"


@pytest.mark.parametrize(
    ("weights", "targets", "cell", "column", "problem"),
    [
        ("w", "w", "1", "w", "column 'w' is both a target and the weights"),
        ("w", "y", "1_000", "w", "row 4, column 'w': '1_000' is not a weight (weights are numbers >= 0)"),
        ("w", "y", "٤", "w", "row 4, column 'w': '٤' is not a weight (weights are numbers >= 0)"),
        (None, "y", "1_000", "y", "row 4, column 'y': '1_000' is not a number"),
        (None, "y", "٤٢", "y", "row 4, column 'y': '٤٢' is not a number"),
    ],
)
def test_the_numeric_and_the_encoded_reads_refuse_alike(
    weights: str | None, targets: str, cell: str, column: str, problem: str, tmp_path: Path
) -> None:
    path = tmp_path / "plain.csv"
    rows = [["1", "1", "2"], ["2", "1", "3"], ["3", "1", "5"], ["4", "1", "4"]]
    rows[2][["x", "w", "y"].index(column)] = cell
    path.write_text("x,w,y\n" + "".join(",".join(row) + "\n" for row in rows), encoding="utf-8")
    for encoded in ({}, {"missing": "mean"}):  # numpy's reader; the encoded read of categorical and missing
        with pytest.raises(InputError) as error:
            _ = FileDataModule(str(path), targets=targets, weights=weights, features=["x"], **encoded).description
        where = f"{path}: " if problem.startswith("column") else f"{path}, "
        assert str(error.value) == where + problem
