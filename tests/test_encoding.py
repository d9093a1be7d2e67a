"""The table encoding (categorical columns, missing cells) against scikit-learn's ColumnTransformer, and its record.

scikit-learn's pipeline is the specification: ``OneHotEncoder(drop="first")`` on the categorical columns and
``SimpleImputer(strategy=..., add_indicator=True)`` on the numeric ones, fitted on the same training rows; the
designs agree column for column, matched by name.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import OneHotEncoder

from lr_lightning.data.encoding import EncodingOptions, TableEncoding, fit_encoding
from lr_lightning.errors import InputError

FEATURES = ["area", "rooms", "hood", "grade"]  # numeric, numeric, text categorical, integer-coded categorical
CATEGORICAL = ["hood", "grade"]
MISSING_SPELLINGS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]


def where(row: int) -> str:
    return f"houses.csv, row {row + 2}"  # a CSV's line: the header is line 1


def make_table(seed: int = 0, rows: int = 80) -> tuple[dict[str, list[str]], np.ndarray, np.ndarray, np.ndarray]:
    """Text cells as a file holds them, the same table as scikit-learn sees it (object array), training rows, y."""
    rng = np.random.default_rng(seed)
    area = rng.normal(100.0, 20.0, rows)
    rooms = rng.integers(1, 6, rows).astype(np.float64)
    hood = rng.choice(["north", "south", "east", "North"], rows).astype(object)
    grade = rng.choice([1, 2, 10], rows)
    train = rng.permutation(rows)[: rows * 3 // 4]  # unsorted, as a shuffled split gives them
    others = np.setdiff1d(np.arange(rows), train)
    area_missing = rng.random(rows) < 0.25
    hood_missing = rng.random(rows) < 0.15
    rooms_missing = np.isin(np.arange(rows), others[:4])  # missing only outside the training rows: no indicator
    reference = np.empty((rows, 4), dtype=object)
    reference[:, 0] = np.where(area_missing, np.nan, area)
    reference[:, 1] = np.where(rooms_missing, np.nan, rooms)
    reference[:, 2] = np.where(hood_missing, np.nan, hood)
    reference[:, 3] = grade
    spelling = [MISSING_SPELLINGS[row % len(MISSING_SPELLINGS)] for row in range(rows)]
    columns = {
        "area": [spelling[row] if area_missing[row] else repr(float(area[row])) for row in range(rows)],
        "rooms": [spelling[row] if rooms_missing[row] else f"{rooms[row]:g}" for row in range(rows)],
        "hood": ["" if hood_missing[row] else str(hood[row]) for row in range(rows)],
        # integer codes written as a spreadsheet might: "1" and "1.0" are one level, "10" sorts after "2"
        "grade": ["1.0" if code == 1 and row % 3 == 0 else str(code) for row, code in enumerate(grade)],
    }
    y = 3.0 * np.nan_to_num(area) - 2.0 * rooms + 5.0 * (hood == "north") + 1.5 * grade + rng.normal(0, 1, rows)
    return columns, reference, train, y


def sklearn_pipeline(strategy: str, drop: str | None = "first", handle_unknown: str = "error") -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("cat", OneHotEncoder(drop=drop, handle_unknown=handle_unknown, sparse_output=False), [2, 3]),
            ("num", SimpleImputer(strategy=strategy, add_indicator=True), [0, 1]),
        ]
    )


def sklearn_name(ours: str) -> str:
    """Our design column's name as scikit-learn's ColumnTransformer names it (features x0..x3)."""
    index = {name: position for position, name in enumerate(FEATURES)}
    if "=" in ours:
        column, level = ours.split("=", 1)
        return f"cat__x{index[column]}_{'nan' if level == '(missing)' else level}"
    if ours.endswith("_missing"):
        return f"num__missingindicator_x{index[ours.removesuffix('_missing')]}"
    return f"num__x{index[ours]}"


def by_sklearn_name(design: np.ndarray, pipeline: ColumnTransformer, names: list[str]) -> np.ndarray:
    """Scikit-learn's design with its columns in the order of our ``names``."""
    theirs = list(pipeline.get_feature_names_out())
    assert sorted(theirs) == sorted(sklearn_name(name) for name in names)
    return design[:, [theirs.index(sklearn_name(name)) for name in names]]


def rows_of(columns: dict[str, list[str]], rows: np.ndarray) -> dict[str, list[str]]:
    return {name: [cells[row] for row in rows] for name, cells in columns.items()}


@pytest.mark.parametrize("strategy", ["mean", "median"])
def test_design_matches_column_transformer(strategy: str) -> None:
    columns, reference, train, y = make_table()
    others = np.setdiff1d(np.arange(len(y)), train)
    encoding = fit_encoding(columns, FEATURES, train, EncodingOptions(CATEGORICAL, strategy), where)
    pipeline = sklearn_pipeline(strategy).fit(reference[train])

    assert encoding.input_columns == FEATURES
    assert encoding.output_names == [
        "area",
        "rooms",
        "hood=east",  # sorted as text: "North" < "east" < "north" < "south"; "North" dropped
        "hood=north",
        "hood=south",
        "hood=(missing)",
        "grade=2",  # "1" dropped; "10" after "2"
        "grade=10",
        "area_missing",  # rooms had no missing training cell: no indicator
    ]
    for rows in (train, others):
        ours = encoding.transform(rows_of(columns, rows), where)
        theirs = by_sklearn_name(pipeline.transform(reference[rows]), pipeline, encoding.output_names)
        assert ours.dtype == np.float64 and ours.shape == (len(rows), 9)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    assert np.isnan(reference[others, 1].astype(float)).any()  # the other rows did impute rooms

    ours_fit = LinearRegression().fit(encoding.transform(rows_of(columns, train), where), y[train])
    theirs_fit = LinearRegression().fit(pipeline.transform(reference[train]), y[train])
    np.testing.assert_allclose(
        ours_fit.predict(encoding.transform(rows_of(columns, others), where)),
        theirs_fit.predict(pipeline.transform(reference[others])),
        rtol=1e-9,
    )


def test_fitted_on_the_training_rows_only() -> None:
    columns = {"x": ["1", "2", "", "100", ""], "c": ["a", "b", "a", "z", "q"]}
    train = np.array([0, 1, 2])
    encoding = fit_encoding(columns, ["x", "c"], train, EncodingOptions(["c"], "mean", "ignore", False), where)
    design = encoding.transform(columns, where)
    assert encoding.output_names == ["x", "c=a", "c=b", "x_missing"]
    # the mean of the training cells 1 and 2, not of 100; levels z and q were never trained on
    np.testing.assert_array_equal(design[:, 0], [1.0, 2.0, 1.5, 100.0, 1.5])
    np.testing.assert_array_equal(design[3:, 1:3], np.zeros((2, 2)))


def test_integer_coded_levels_sort_and_match_by_value() -> None:
    codes = ["3", "1", "10", "2", "1.0", "03"]
    encoding = fit_encoding({"grade": codes}, ["grade"], np.arange(6), EncodingOptions(["grade"]), where)
    reference = OneHotEncoder(drop="first", sparse_output=False).fit(np.array([[3], [1], [10], [2], [1], [3]]))
    assert encoding.output_names == [f"grade={level}" for level in reference.categories_[0][1:].tolist()]
    new = ["10", "10.0", "1e1", "2", "1"]  # a Parquet float column writes 10.0
    np.testing.assert_array_equal(
        encoding.transform({"grade": new}, where), reference.transform(np.array([[10], [10], [10], [2], [1]]))
    )


def test_levels_that_only_look_like_numbers_are_text() -> None:
    codes = ["1", "2", "1e99999999999999999999999999999"]  # beyond any exact decimal: a text level
    encoding = fit_encoding({"code": codes}, ["code"], np.arange(3), EncodingOptions(["code"]), where)
    reference = OneHotEncoder(drop="first", sparse_output=False).fit(np.array(codes, dtype=object)[:, None])
    assert encoding.output_names == [f"code={level}" for level in reference.categories_[0][1:].tolist()]
    assert "level '1.0' was not in the training rows" in refused(
        {"code": [*codes, "1.0"]}, EncodingOptions(["code"]), [0, 1, 2]
    )


def test_unknown_level_is_an_error_naming_row_column_and_levels() -> None:
    columns = {"hood": ["north", "south", "east", "north", "west"]}
    encoding = fit_encoding(columns, ["hood"], np.arange(4), EncodingOptions(["hood"]), where)
    message = (
        "houses.csv, row 6, column 'hood': level 'west' was not in the training rows (levels: east, north, "
        "south); set handle_unknown: ignore to encode it as all zeros"
    )
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        encoding.transform(columns, where)


def test_unknown_level_ignored_is_all_zeros_as_in_one_hot_encoder() -> None:
    columns, reference, train, _ = make_table(seed=1)
    west = [row for row in range(len(reference)) if row % 5 == 0 and row not in train]  # a level never trained on
    for row in west:
        columns["hood"][row] = reference[row, 2] = "west"
    options = EncodingOptions(CATEGORICAL, "mean", handle_unknown="ignore", drop_first=False)
    encoding = fit_encoding(columns, FEATURES, train, options, where)
    pipeline = sklearn_pipeline("mean", drop=None, handle_unknown="ignore").fit(reference[train])
    ours = encoding.transform(columns, where)
    theirs = by_sklearn_name(pipeline.transform(reference), pipeline, encoding.output_names)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)

    dropped = fit_encoding(columns, FEATURES, train, EncodingOptions(CATEGORICAL, "mean", "ignore", True), where)
    design = dropped.transform(columns, where)
    hood = [index for index, name in enumerate(dropped.output_names) if name.startswith("hood=")]
    assert west and not design[np.ix_(west, hood)].any()
    assert design[:, hood].any()


def test_missing_as_a_level_needs_missing_cells_in_the_training_rows() -> None:
    columns = {"hood": ["north", "", "south", "NA", "north", "null"]}
    encoding = fit_encoding(columns, ["hood"], np.arange(4), EncodingOptions(["hood"], "median"), where)
    reference = OneHotEncoder(drop="first", sparse_output=False).fit(
        np.array([["north"], [np.nan], ["south"], [np.nan]], dtype=object)
    )
    assert encoding.output_names == ["hood=south", "hood=(missing)"]
    np.testing.assert_array_equal(
        encoding.transform(columns, where),
        reference.transform(np.array([["north"], [np.nan], ["south"], [np.nan], ["north"], [np.nan]], dtype=object)),
    )

    without = fit_encoding(columns, ["hood"], np.array([0, 2]), EncodingOptions(["hood"], "mean"), where)
    message = (
        "houses.csv, row 3, column 'hood': missing value, but the training rows had none in this column (levels: "
        "north, south); set handle_unknown: ignore to encode it as all zeros"
    )
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        without.transform(columns, where)
    ignoring = fit_encoding(columns, ["hood"], np.array([0, 2]), EncodingOptions(["hood"], "mean", "ignore"), where)
    np.testing.assert_array_equal(ignoring.transform(columns, where)[:, 0], [0, 0, 1, 0, 0, 0])


@pytest.mark.parametrize("spelling", [*MISSING_SPELLINGS, "NAN", "-nan"])
def test_missing_spellings_are_imputed(spelling: str) -> None:
    columns = {"x": ["1", spelling, "4", "7"]}
    encoding = fit_encoding(columns, ["x"], np.arange(4), EncodingOptions(missing="median"), where)
    reference = SimpleImputer(strategy="median", add_indicator=True).fit_transform(np.array([[1], [np.nan], [4], [7]]))
    np.testing.assert_array_equal(encoding.transform(columns, where), reference)


def refused(columns: dict[str, list[str]], options: EncodingOptions, train: list[int] | None = None) -> str:
    """The one-line message of fitting on ``train`` (default: every row) and transforming every row."""
    rows = np.arange(len(next(iter(columns.values())))) if train is None else np.array(train)
    with pytest.raises(InputError) as raised:
        fit_encoding(columns, list(columns), rows, options, where, source="houses.csv").transform(columns, where)
    message = str(raised.value)
    assert "\n" not in message
    return message


MISSING_HINT = "missing value; set missing: mean or median (--data.missing mean) to"


def test_bad_cells_are_refused_naming_row_column_value_and_option() -> None:
    assert refused({"area": ["1", "abc"]}, EncodingOptions()) == (
        "houses.csv, row 3, column 'area': 'abc' is not a number; add 'area' to categorical if its values are "
        "categories"
    )
    assert refused({"area": ["1", "-inf"]}, EncodingOptions(missing="mean")) == (
        "houses.csv, row 3, column 'area': '-inf' is not a finite number"
    )
    for not_numpys in ("1_000", "١٢"):  # Python's float() reads them; numpy's parser does not
        assert "is not a number" in refused({"area": ["1", not_numpys]}, EncodingOptions())
    assert refused({"area": ["1", "2", ""]}, EncodingOptions()) == (
        f"houses.csv, row 4, column 'area': {MISSING_HINT} impute it"
    )
    assert refused({"hood": ["a", "NA", "b"]}, EncodingOptions(["hood"])) == (
        f"houses.csv, row 3, column 'hood': {MISSING_HINT} encode it as the level '(missing)'"
    )
    # a bad cell outside the training rows is found when the rows are encoded, not at fit
    assert refused({"area": ["1", "2", "x"]}, EncodingOptions(), train=[0, 1]).startswith("houses.csv, row 4,")


def test_the_first_bad_row_is_named_whatever_its_column() -> None:
    columns = {"a": ["1", "2", "3", "x"], "b": ["1", "", "3", "4"]}
    assert refused(columns, EncodingOptions()) == f"houses.csv, row 3, column 'b': {MISSING_HINT} impute it"
    assert refused(columns, EncodingOptions(), train=[3, 1, 0]).startswith("houses.csv, row 3, column 'b'")


def test_columns_with_nothing_to_learn_are_refused() -> None:
    assert refused({"area": ["", "NA", "5"]}, EncodingOptions(missing="mean"), train=[0, 1]) == (
        "houses.csv: column 'area' has only missing cells in the training rows; nothing to impute them with "
        "(remove it from features)"
    )
    assert refused({"hood": ["a", "a", "b"]}, EncodingOptions(["hood"]), train=[0, 1]) == (
        "houses.csv: column 'hood' has one level in the training rows ('a'); nothing to learn (remove it from "
        "features, or set drop_first: false)"
    )
    options = EncodingOptions(["hood"], drop_first=False, handle_unknown="ignore")
    single = fit_encoding({"hood": ["a", "a", "b"]}, ["hood"], np.array([0, 1]), options, where)
    np.testing.assert_array_equal(single.transform({"hood": ["a", "b"]}, where), [[1.0], [0.0]])


def test_design_columns_of_one_name_are_refused() -> None:
    columns = {"x": ["1", ""], "x_missing": ["0", "1"]}
    assert refused(columns, EncodingOptions(missing="mean")) == (
        "houses.csv: two design columns are named 'x_missing' (from columns 'x_missing' and 'x'); rename one of them"
    )
    columns = {"a=c": ["1", "2"], "a": ["b", "c"]}
    assert refused(columns, EncodingOptions(["a"])) == (
        "houses.csv: two design columns are named 'a=c' (from columns 'a=c' and 'a'); rename one of them"
    )


def test_categorical_names_a_feature() -> None:
    with pytest.raises(InputError, match=r"^categorical: 'hod' is not a feature column \(the features: area, hood\)$"):
        fit_encoding({"area": ["1"], "hood": ["a"]}, ["area", "hood"], np.arange(1), EncodingOptions(["hod"]), where)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (EncodingOptions(missing="avg"), "missing must be mean or median, got 'avg'"),
        (EncodingOptions(handle_unknown="skip"), "handle_unknown must be error or ignore, got 'skip'"),
        (EncodingOptions(drop_first="yes"), "drop_first must be true or false, got 'yes'"),
        (EncodingOptions("hood"), "categorical must be a list of column names, got 'hood'"),
        (EncodingOptions(["a", "a"]), "categorical must be a list of distinct column names, got ['a', 'a']"),
    ],
)
def test_options_are_checked(options: EncodingOptions, message: str) -> None:
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        options.check()
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        fit_encoding({"a": ["1"]}, ["a"], np.arange(1), options, where)


def fitted() -> tuple[TableEncoding, dict[str, list[str]]]:
    columns, _, train, _ = make_table(seed=2)
    return fit_encoding(columns, FEATURES, train, EncodingOptions(CATEGORICAL, "median"), where), columns


def plain(value: Any) -> bool:
    """Whether a value is made of what torch.load(weights_only=True) and JSON read back as themselves."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(plain(item) for item in value)
    return value is None or type(value) in (str, float, int, bool)


def test_record_round_trip_is_exact() -> None:
    encoding, columns = fitted()
    record = encoding.to_record()
    assert plain(record)
    buffer = io.BytesIO()
    torch.save(record, buffer)
    buffer.seek(0)
    for stored in (torch.load(buffer, weights_only=True), json.loads(json.dumps(record))):
        assert stored == record
        restored = TableEncoding.from_record(stored, "model.ckpt")
        assert restored == encoding and restored.output_names == encoding.output_names
        np.testing.assert_array_equal(restored.transform(columns, where), encoding.transform(columns, where))


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], Any]:
    def forge(record: dict[str, Any]) -> Any:
        target: Any = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return record

    return forge


def _delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], Any]:
    def forge(record: dict[str, Any]) -> Any:
        target: Any = record
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return record

    return forge


NUMERIC, HOOD, GRADE = ("columns", 0), ("columns", 2), ("columns", 3)  # area, hood, grade in fitted()'s record
FORGERIES = {
    "not a dict": lambda record: [record],
    "no version": _delete(("version",)),
    "an extra key": _set(("pickle",), "os.system"),
    "version 2": _set(("version",), 2),
    "version true": _set(("version",), True),
    "version text": _set(("version",), "1"),
    "version of 5000 digits": _set(("version",), 10**5000),
    "missing avg": _set(("missing",), "avg"),
    "missing a list": _set(("missing",), ["mean"]),
    "missing an array": _set(("missing",), np.array(["mean", "median"])),
    "handle_unknown none": _set(("handle_unknown",), None),
    "no columns": _set(("columns",), []),
    "columns a dict": _set(("columns",), {"0": {}}),
    "a column a list": _set(("columns", 0), ["area"]),
    "an unknown kind": _set((*NUMERIC, "kind"), "ordinal"),
    "no kind": _delete((*NUMERIC, "kind")),
    "a column's extra key": _set((*NUMERIC, "levels"), []),
    "a column without a name": _delete((*HOOD, "name")),
    "a name a number": _set((*NUMERIC, "name"), 3),
    "an empty name": _set((*NUMERIC, "name"), ""),
    "a name twice": _set((*GRADE, "name"), "hood"),
    "fill text": _set((*NUMERIC, "fill"), "1.5"),
    "fill nan": _set((*NUMERIC, "fill"), float("nan")),
    "fill infinite": _set((*NUMERIC, "fill"), float("inf")),
    "fill none while imputing": _set((*NUMERIC, "fill"), None),
    "fill a tensor": _set((*NUMERIC, "fill"), torch.tensor(1.5)),
    "fill while not imputing": lambda record: _set(("missing",), None)(record),
    "indicator text": _set((*NUMERIC, "indicator"), "yes"),
    "indicator 1": _set((*NUMERIC, "indicator"), 1),
    "levels text": _set((*HOOD, "levels"), "east"),
    "a level a number": _set((*HOOD, "levels"), ["east", 2]),
    "a level empty": _set((*HOOD, "levels"), ["", "east"]),
    "a level a missing cell": _set((*HOOD, "levels"), ["NA", "east"]),
    "levels unsorted": _set((*HOOD, "levels"), ["south", "east"]),
    "a level twice": _set((*HOOD, "levels"), ["east", "east"]),
    "text levels all numbers": _set((*HOOD, "levels"), ["1", "2"]),
    "numeric levels with text": _set((*GRADE, "levels"), ["1", "two"]),
    "numeric levels unsorted by value": _set((*GRADE, "levels"), ["1", "10", "2"]),
    "numeric levels one value twice": _set((*GRADE, "levels"), ["1", "1.0", "2"]),
    "numeric levels none": _set((*GRADE, "levels"), []),
    "a numeric level beyond Decimal": _set((*GRADE, "levels"), ["1", "1e99999999999999999999999999999"]),
    "numeric not a bool": _set((*GRADE, "numeric"), "true"),
    "no level at all": lambda record: _set((*HOOD, "missing_level"), False)(_set((*HOOD, "levels"), [])(record)),
    "one level with drop_first": _set((*GRADE, "levels"), ["1"]),
    "drop_first none": _set((*HOOD, "drop_first"), None),
    "a design name twice": _set((*NUMERIC, "name"), "hood=east"),
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_records_are_refused_in_one_line(forge: Callable[[dict[str, Any]], Any]) -> None:
    encoding, _ = fitted()
    record = encoding.to_record()
    assert record["columns"][1]["name"] == "rooms" and record["columns"][2]["levels"]  # the paths FORGERIES use
    with pytest.raises(InputError, match=r"^model\.ckpt: the table encoding") as raised:
        TableEncoding.from_record(forge(copy.deepcopy(record)), "model.ckpt")
    assert "\n" not in str(raised.value)


def test_forged_record_messages_say_what_is_wrong() -> None:
    record = fitted()[0].to_record()
    cases = {
        "model.ckpt: the table encoding's record has no 'version'": _delete(("version",)),
        "model.ckpt: the table encoding's record holds 'pickle', which the encoding does not write": _set(
            ("pickle",), "x"
        ),
        "model.ckpt: the table encoding's columns[2].levels are not distinct and sorted": _set(
            (*HOOD, "levels"), ["south", "east"]
        ),
        "model.ckpt: the table encoding's columns[0].fill is '1.5', not a finite float": _set(
            (*NUMERIC, "fill"), "1.5"
        ),
    }
    for message, forge in cases.items():
        with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
            TableEncoding.from_record(forge(copy.deepcopy(record)), "model.ckpt")
