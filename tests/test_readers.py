"""The reader registry: one reader per suffix, read_table's shared checks, and FileDataModule's forwarded options."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.file import FILE_FORMATS, FileDataModule
from lr_lightning.data.readers import READERS, read_table
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
            r"row 1: the header is one column 'a;b;y': the file is separated by ';', not by commas; save it as "
            r"comma-separated CSV$",
        ),
    ],
)
def test_csv_files_from_other_tools_get_a_hint(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_table(str(path), None, None, labels=False, need_targets=True)
