"""The reader registry: one reader per suffix, read_table's shared checks, and FileDataModule's forwarded options.

Also a CSV's ``delimiter`` and :func:`read_text_columns`, whose rows must be read_table's, row for row.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.file import FILE_FORMATS, FileDataModule
from lr_lightning.data.readers import READERS, read_table, read_text_columns
from lr_lightning.errors import InputError


def test_formats_come_from_the_registry(tmp_path: Path) -> None:
    assert FILE_FORMATS == tuple(READERS) == (".csv", ".npy", ".npz", ".parquet")
    unknown = tmp_path / "table.xlsx"
    unknown.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"table.xlsx: unknown file type '.xlsx'; expected one of .csv, .npy, .npz"):
        read_table(str(unknown), None, None, labels=False, need_targets=True)


def test_read_table_checks_every_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"is a directory, not a data file"):
        read_table(str(tmp_path), None, None, labels=False, need_targets=True)
    with pytest.raises(InputError, match=r"missing.csv: no such file"):
        read_table(str(tmp_path / "missing.csv"), None, None, labels=False, need_targets=True)
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.parquet: the file is empty"):
        read_table(str(tmp_path / "empty.parquet"), None, None, labels=False, need_targets=True)
    array = np.arange(12.0).reshape(4, 3)
    array[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", array)
    with pytest.raises(InputError, match=r"nan.npy, row 2, column 'c1'"):  # arrays: rows from 0
        read_table(str(tmp_path / "nan.npy"), None, None, labels=False, need_targets=True)


def test_npy_columns_are_c0_c1_and_npz_names_are_the_users(tmp_path: Path) -> None:
    np.save(tmp_path / "table.npy", np.arange(12.0).reshape(4, 3))
    table = read_table(str(tmp_path / "table.npy"), None, ["c0"], labels=False, need_targets=True)
    assert (table.feature_names, table.target_names) == (["c1", "c2"], ["c0"])
    np.savez(tmp_path / "named.npz", inputs=np.ones((3, 2)), outputs=np.zeros(3))
    # The training file's column names (x0, x1) are no array keys: a .npz reads the user's names instead.
    table = read_table(
        str(tmp_path / "named.npz"),
        ["x0", "x1"],
        ["y"],
        labels=False,
        need_targets=True,
        key_names=(["inputs"], ["outputs"]),
    )
    assert (table.feature_names, table.target_names, table.features.shape) == (["x0", "x1"], ["y"], (3, 2))


def test_file_data_module_forwards_the_shared_options() -> None:
    own = inspect.signature(FileDataModule.__init__).parameters
    shared = [name for name in inspect.signature(InMemoryDataModule.__init__).parameters if name != "self"]
    assert "kwargs" in own
    assert {name for name in shared if name in own} == {"val_fraction", "test_fraction"}  # defaults that differ
    module = FileDataModule("data.csv", task="classification", standardize_targets=True, batch_size=7, seed=3)
    assert (module.standardize_targets, module.batch_size, module.seed) == (False, 7, 3)
    assert (module.val_fraction, module.test_fraction) == (0.2, 0.1)
    assert FileDataModule("data.csv", standardize_targets=True).standardize_targets
    with pytest.raises(InputError, match=r"task must be one of \('regression', 'classification'\), got 'clustering'"):
        FileDataModule("data.csv", task="clustering")


def test_cli_parser_sees_every_option() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(FileDataModule, "data")
    defaults = parser.get_defaults().data
    shared = [name for name in inspect.signature(InMemoryDataModule.__init__).parameters if name != "self"]
    for name in ("path", "targets", "features", "task", "val_path", "test_path", "predict_path", *shared):
        assert name in defaults, name
    assert (defaults.val_fraction, defaults.test_fraction, defaults.batch_size) == (0.2, 0.1, 64)
    help_text = parser.format_help()
    for option in ("--data.standardize_targets {true,false}", "--data.in_memory {true,false,null}"):
        assert option in help_text  # typed as in the base, not untyped as a bare **kwargs would be


def test_a_missing_relative_path_names_the_folder_it_was_looked_up_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = re.escape(str(tmp_path))
    expected = rf"^data/houses.csv: no such file \(a relative path, looked up in {folder}\)$"
    with pytest.raises(InputError, match=expected):
        read_table("data/houses.csv", None, None, labels=False, need_targets=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            ",a,b,y\n0,1,2,3\n1,4,5,6\n",
            r"row 1, column 1: empty column name in the header; a pandas index\? write the file with "
            r"to_csv\(index=False\)$",
        ),
        (
            "a;b;y\n1;2;3\n4;5;6\n",
            r"row 1: the header is one column 'a;b;y': the file is separated by ';', not by ','; set delimiter: ';' "
            r"\(--data.delimiter ';'\)$",
        ),
    ],
)
def test_csv_files_from_other_tools_get_a_hint(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_table(str(path), None, None, labels=False, need_targets=True)


ROWS = [["1", "2.5", "a"], ["-3", "4e-1", "b"], ["5", "+6", "a"]]


def _write(path: Path, delimiter: str, rows: list[list[str]] = ROWS) -> str:
    path.write_text("".join(delimiter.join(row) + "\n" for row in [["x0", "x1", "y"], *rows]))
    return str(path)


@pytest.mark.parametrize("delimiter", [";", "\t", "|", " "])
def test_a_delimiter_reads_the_same_values_as_commas(delimiter: str, tmp_path: Path) -> None:
    comma = read_table(_write(tmp_path / "comma.csv", ","), None, None, labels=True, need_targets=True)
    path = _write(tmp_path / "other.csv", delimiter)
    other = read_table(path, None, None, labels=True, need_targets=True, delimiter=delimiter)
    assert other.feature_names == comma.feature_names == ["x0", "x1"]
    np.testing.assert_array_equal(other.features, [[1.0, 2.5], [-3.0, 0.4], [5.0, 6.0]])
    np.testing.assert_array_equal(other.features, comma.features)
    assert other.targets is not None and comma.targets is not None
    assert list(other.targets) == list(comma.targets) == ["a", "b", "a"]
    # Reading only some columns scans the rows' widths by the delimiter.
    some = read_table(path, ["x1"], ["x0"], labels=False, need_targets=True, delimiter=delimiter)
    np.testing.assert_array_equal(some.features[:, 0], [2.5, 0.4, 6.0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x0;x1;y\n1;2;3\n4;oops;6\n",
            r"^(\S+), row 3, column 'x1': 'oops' is not a number; if the column holds categories, list it in "
            r"categorical: \[x1\]$",
        ),
        ("x0;x1;y\n1;2;3\n4;5\n", r"^(\S+), row 3: 2 cells but the header names 3 columns$"),
        ("x0;x1;y\n1;;3\n", r"^(\S+), row 2, column 'x1': '' is not a number \(an empty cell"),
        # With a tab delimiter a line of one tab is two empty cells, not a blank line.
        ("x0\tx1\ty\n1\t2\t3\n\t\n", r"^(\S+), row 3: 2 cells but the header names 3 columns$"),
    ],
)
def test_a_delimiters_bad_cells_are_named(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    delimiter = "\t" if "\t" in text else ";"
    for features in (None, ["x1"]):  # all columns (numpy reads every cell), some (the width scan first)
        with pytest.raises(InputError, match=message):
            read_table(str(path), features, None, labels=False, need_targets=True, delimiter=delimiter)


@pytest.mark.parametrize(
    ("delimiter", "message"),
    [
        ("", r"delimiter must be one character, got ''$"),
        (";;", r"delimiter must be one character, got ';;'$"),
        (
            "\\t",
            r"""delimiter must be one character, got '\\\\t'; a tab is one character: set delimiter: "\\t" """
            r"""\(--data.delimiter \$'\\t'\)$""",
        ),
        ('"', r"""delimiter must not be a quote \(quotes enclose cells\), got '"'$"""),
        ("'", r"""delimiter must not be a quote \(quotes enclose cells\), got "'"$"""),
        ("\n", r"delimiter must not be a line break or another control character, got '\\n'$"),
        ("\r", r"delimiter must not be a line break or another control character, got '\\r'$"),
        *(
            (character, rf"delimiter must not be a letter, a digit, '.', '-' or '\+' \(numbers hold them\), got '{c}'$")
            for character, c in (("1", "1"), ("a", "a"), ("e", "e"), ("E", "E"), (".", r"\."), ("-", "-"), ("+", r"\+"))
        ),
    ],
)
def test_a_delimiter_numbers_or_cells_hold_is_refused(delimiter: str, message: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "table.csv", ",")
    with pytest.raises(InputError, match=message):
        read_table(path, None, None, labels=False, need_targets=True, delimiter=delimiter)
    with pytest.raises(InputError, match=message):
        read_text_columns(path, ["x0"], delimiter=delimiter)


def test_a_delimiter_applies_to_csv_files_only(tmp_path: Path) -> None:
    np.save(tmp_path / "table.npy", np.ones((2, 2)))
    np.savez(tmp_path / "table.npz", x=np.ones((2, 2)), y=np.ones(2))
    (tmp_path / "table.parquet").write_bytes(b"PAR1")  # refused before it is read
    for suffix in (".npy", ".npz", ".parquet"):
        path = str(tmp_path / f"table{suffix}")
        expected = rf"^delimiter applies to CSV files only; {re.escape(path)} is a \{suffix} file$"
        with pytest.raises(InputError, match=expected):
            read_table(path, None, None, labels=False, need_targets=True, delimiter=";")
        with pytest.raises(InputError, match=expected):
            read_text_columns(path, ["c0"], delimiter=";")
    table = read_table(str(tmp_path / "table.npy"), None, None, labels=False, need_targets=True, delimiter=",")
    assert table.features.shape == (2, 1)


@pytest.mark.parametrize(
    ("text", "delimiter", "hint"),
    [
        (
            "a\tb\ty\n1\t2\t3\n",
            ",",
            r"""separated by '\\t', not by ','; set delimiter: "\\t" \(--data.delimiter \$'\\t'\)$""",
        ),
        ("a|b|y\n1|2|3\n", ",", r"separated by '\|', not by ','; set delimiter: '\|' \(--data.delimiter '\|'\)$"),
        ("a,b,y\n1,2,3\n", ";", r"separated by ',', not by ';'; set delimiter: ',' \(--data.delimiter ','\)$"),
    ],
)
def test_the_header_hint_names_the_delimiter_option(text: str, delimiter: str, hint: str, tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=r"row 1: the header is one column .*: the file is " + hint):
        read_table(str(path), None, None, labels=False, need_targets=True, delimiter=delimiter)


def test_text_columns_of_a_csv_skip_the_lines_read_table_skips(tmp_path: Path) -> None:
    path = tmp_path / "predict.csv"
    path.write_text(
        'id,x0,x1,y\n"a, first",1,2,3\n\n   \nB-7 ,4,5,6\r\n \t\n"two\nlines",7,8,9\n""" quoted """,10,11,12\n'
    )
    columns = read_text_columns(str(path), ["id", "x1", "id"])
    assert columns == {"id": ["a, first", "B-7", "two\nlines", '" quoted "'], "x1": ["2", "5", "8", "11"]}
    table = read_table(str(path), ["x0", "x1"], ["y"], labels=False, need_targets=True)
    np.testing.assert_array_equal(table.features[:, 1], [float(cell) for cell in columns["x1"]])
    assert [table.row_number(row) for row in range(3)] == [2, 5, 7]
    assert read_text_columns(str(path), []) == {}


@pytest.mark.parametrize("quoted", [False, True])
def test_text_columns_line_up_with_read_table_row_for_row(quoted: bool, tmp_path: Path) -> None:
    lines = ["id;x;y"]
    for row in range(60):
        lines.append(f'"id {row}";{row};{row % 2}' if quoted else f"{row};{row}.5;{row % 2}")
        lines += [[], ["  "], ["\t"], ["", " "]][row % 4] if row % 3 else []
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    texts = read_text_columns(str(path), ["id", "x"], delimiter=";")
    for features in (["x"], ["x", "id"] if not quoted else ["x"]):
        table = read_table(str(path), features, ["y"], labels=True, need_targets=True, delimiter=";")
        assert len(table.features) == len(texts["id"]) == 60
        np.testing.assert_array_equal(table.features[:, 0], [float(cell) for cell in texts["x"]])
    assert texts["id"][:2] == (["id 0", "id 1"] if quoted else ["0", "1"])


def test_text_columns_of_a_tab_separated_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "table.tsv.csv", "\t", [["1", " 2 ", "a b"], ["3", "4", "c"]])
    assert read_text_columns(path, ["y", "x1"], delimiter="\t") == {"y": ["a b", "c"], "x1": ["2", "4"]}


def test_text_columns_of_an_npy_are_numpys_text(tmp_path: Path) -> None:
    np.save(tmp_path / "wide.npy", np.array([[1.0, 0.5], [2.0, 1e20], [-3.0, 0.1]]))
    np.save(tmp_path / "narrow.npy", np.array([[0.1, 7]], dtype=np.float32))
    np.save(tmp_path / "ints.npy", np.array([[3, 9007199254740993]], dtype=np.int64))
    assert read_text_columns(str(tmp_path / "wide.npy"), ["c1", "c0"]) == {
        "c1": ["0.5", "1e+20", "0.1"],
        "c0": ["1.0", "2.0", "-3.0"],
    }
    assert read_text_columns(str(tmp_path / "narrow.npy"), ["c0"]) == {"c0": ["0.1"]}
    assert read_text_columns(str(tmp_path / "ints.npy"), ["c1"]) == {"c1": ["9007199254740993"]}
    with pytest.raises(InputError, match=r"wide.npy: no column 'id'; the columns are \['c0', 'c1'\]$"):
        read_text_columns(str(tmp_path / "wide.npy"), ["id"])


def test_text_columns_of_a_parquet_file(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "table.parquet"
    columns = {
        "id": ["a", None, "c, d"],
        "n": pa.array([1, None, 3], pa.int64()),
        "f": pa.array([0.1, 0.2, 0.5], pa.float32()),
        "x": [1.5, 2.0, -3.0],
        "y": [0.0, 1.0, 0.0],
    }
    pq.write_table(pa.table(columns), path)
    assert read_text_columns(str(path), ["id", "n", "f", "x"]) == {
        "id": ["a", "", "c, d"],
        "n": ["1", "", "3"],
        "f": ["0.1", "0.2", "0.5"],
        "x": ["1.5", "2.0", "-3.0"],
    }
    assert len(read_table(str(path), ["x"], ["y"], labels=False, need_targets=True).features) == 3
    with pytest.raises(
        InputError, match=r"table.parquet: no column 'z'; the columns are \['id', 'n', 'f', 'x', 'y'\]$"
    ):
        read_text_columns(str(path), ["z"])


def test_text_columns_are_refused_as_read_table_refuses(tmp_path: Path) -> None:
    path = _write(tmp_path / "table.csv", ",")
    with pytest.raises(InputError, match=r"table.csv: no column 'id'; the columns are \['x0', 'x1', 'y'\]$"):
        read_text_columns(path, ["x0", "id"])
    np.savez(tmp_path / "table.npz", x=np.ones((2, 2)), y=np.ones(2))
    with pytest.raises(
        InputError,
        match=r"table.npz: a .npz file has no named columns \(it holds arrays by key\); columns \['id'\] need a "
        r"\.csv, \.npy or \.parquet file$",
    ):
        read_text_columns(str(tmp_path / "table.npz"), ["id"])
    (tmp_path / "table.xlsx").write_text("a,b\n1,2\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "short.csv").write_text("id,x\n1,2\n3\n")
    for name, message in [
        ("table.xlsx", r"table.xlsx: unknown file type '.xlsx'; expected one of .csv, .npy, .npz, .parquet$"),
        ("missing.csv", r"missing.csv: no such file"),
        ("empty.csv", r"empty.csv: the file is empty$"),
        ("short.csv", r"short.csv, row 3: 1 cells but the header names 2 columns$"),
    ]:
        with pytest.raises(InputError, match=message):
            read_text_columns(str(tmp_path / name), ["id"])
        with pytest.raises(InputError, match=message):
            read_table(str(tmp_path / name), None, None, labels=False, need_targets=True)


def test_text_columns_name_a_byte_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"id;x;y\n" + b"a;1;2\n" * 3000 + b"caf\xe9;3;4\n")
    with pytest.raises(InputError, match=r"latin.csv, row 3002, column 'id': byte 0xe9 is not UTF-8 text"):
        read_text_columns(str(path), ["id"], delimiter=";")
