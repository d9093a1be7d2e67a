"""Hostile data files: each is refused with one line naming the file, the row and the column, before anything is
written; what is accepted (huge integer labels, whitespace-only lines) is read exactly."""

from __future__ import annotations

import os
import pathlib
import re
import zipfile
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from lr_lightning.data import FileDataModule
from lr_lightning.errors import InputError
from lr_lightning.models import LogisticRegression
from tests.helpers import run_cli

ALL_ROWS = {"val_fraction": 0.0, "test_fraction": 0.0}


def write(path: Path, content: str | bytes) -> Path:
    """Write ``content`` exactly (no newline translation) and return the path."""
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def numbers_csv(rows: int = 10) -> str:
    """A small regression table with columns a, b, y."""
    return "a,b,y\n" + "".join(f"{i},{(7 * i) % 5},{2 * i + 1}\n" for i in range(rows))


# -- 1. labels are text or exact integers, never float64 ------------------------------------------------------------


def test_large_integer_labels_stay_distinct_and_exact(tmp_path: Path) -> None:
    huge = "123456789012345678901234567890"
    labels = ["9007199254740992", "9007199254740993", huge]  # 2**53 and 2**53 + 1: one float64
    rows = "".join(f"{i},{i % 4},{labels[i % 3]}\n" for i in range(12))
    module = FileDataModule(str(write(tmp_path / "d.csv", "a,b,y\n" + rows)), task="classification", **ALL_ROWS)
    assert module.class_names == labels  # sorted as exact integers, named by their exact text
    _, encoded = module.split_tensors("train")
    assert sorted(encoded.tolist()) == sorted([i % 3 for i in range(12)])
    model = LogisticRegression(in_features=2, num_classes=3, class_names=module.class_names)
    columns = model.prediction_columns(torch.eye(3, dtype=torch.float64))  # what predictions.csv is written from
    assert columns["label"] == labels and f"p_{huge}" in columns
    # "1", "1.0", "01" and "1e0" are one class "1"; integers sort by value ("10" after "9").
    same = "a,y\n" + "".join(f"{i},{['1', '1.0', '01', '1e0', '9', '10'][i % 6]}\n" for i in range(12))
    module = FileDataModule(str(write(tmp_path / "same.csv", same)), task="classification", **ALL_ROWS)
    assert module.class_names == ["1", "9", "10"]


# -- 2. ragged rows -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("a,b,y\n1,2,3\n3,5,1,99\n", {}, r"d.csv, row 3: 4 cells but the header names 3 columns"),
        ("a,b,y\n1,2,3\n\n4,5,6,\n", {}, r"d.csv, row 4: 4 cells but the header names 3 columns"),
        ("a,b,y\n1,2,3\n4,6\n", {"features": "a", "targets": "b"}, r"d.csv, row 3: 2 cells but the header names 3"),
        ('a,b,y\n"1",2,3\n4,"5",6,7\n', {}, r"d.csv, row 3: 4 cells but the header names 3 columns"),
    ],
    ids=["extra-cell", "extra-after-blank-line", "missing-unused-cell", "quoted-file"],
)
def test_ragged_rows_are_refused(tmp_path: Path, text: str, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _ = FileDataModule(str(write(tmp_path / "d.csv", text)), **kwargs, **ALL_ROWS).num_features


# -- 3. values beyond float32 ---------------------------------------------------------------------------------------


def too_large_files(tmp_path: Path) -> list[tuple[Path, str]]:
    """A CSV and a float64 .npy holding 1e300, with the message naming its cell."""
    text = numbers_csv().replace("\n3,1,7\n", "\n3,1e300,7\n")
    csv_file = write(tmp_path / "big.csv", text)
    array = np.arange(30.0).reshape(10, 3)
    array[4, 2] = -1e300
    np.save(tmp_path / "big.npy", array)
    return [
        (csv_file, r"big.csv, row 5, column 'b': 1e300 is too large for float32"),
        (tmp_path / "big.npy", r"big.npy, row 4, column 'c2': -1e\+300 is too large for float32"),
    ]


def test_values_beyond_float32_are_refused_unless_training_in_float64(tmp_path: Path) -> None:
    for path, message in too_large_files(tmp_path):
        module = FileDataModule(str(path), in_memory=True, **ALL_ROWS)
        assert module.num_features == 2  # reading the file is fine: the trainer's dtype decides
        with pytest.raises(InputError, match=message + r".*trainer.precision: 64-true"):
            module.setup("fit")
        in_float64 = FileDataModule(str(path), in_memory=True, shuffle=False, **ALL_ROWS)
        in_float64.trainer = pl.Trainer(precision="64-true", logger=False, enable_progress_bar=False)
        in_float64.setup("fit")
        features, targets = in_float64.split_tensors("train")
        assert features.dtype == torch.float64
        assert torch.cat([features, targets], dim=1).abs().max().item() == 1e300


# -- 4. too few training rows ---------------------------------------------------------------------------------------


def test_a_one_row_file_is_refused_for_fitting(tmp_path: Path) -> None:
    module = FileDataModule(str(write(tmp_path / "one.csv", "a,b,y\n1,2,3\n")), **ALL_ROWS)
    assert module.num_features == 2  # its shape and names are fine (a one-row file may be predicted on)
    with pytest.raises(
        InputError, match=r"one.csv: the training split needs at least 2 rows, but it has 1 \(1 row in all"
    ):
        module.setup("fit")
    val = write(tmp_path / "val.csv", "a,b,y\n4,5,6\n7,8,9\n")
    with pytest.raises(InputError, match=r"one.csv: the training split needs at least 2 rows, but it has 1"):
        FileDataModule(str(tmp_path / "one.csv"), val_path=str(val)).setup("fit")
    # R² needs two rows in the validation split too: 10 rows and val_fraction 0.1 leave one.
    ten = write(tmp_path / "ten.csv", numbers_csv(10))
    with pytest.raises(InputError, match=r"ten.csv: the validation split has 1 row, but R² needs at least 2"):
        FileDataModule(str(ten), val_fraction=0.1, test_fraction=0.0).setup("fit")
    with pytest.raises(InputError, match=r"one.csv: the validation split has 1 row, but R² needs at least 2"):
        FileDataModule(str(ten), val_path=str(tmp_path / "one.csv")).setup("fit")


# -- 5. unreadable files --------------------------------------------------------------------------------------------


def test_an_unreadable_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "d.csv", numbers_csv())
    if os.geteuid() != 0:  # root reads any file: chmod 000 stops only other users
        path.chmod(0)
        with pytest.raises(InputError, match=r"d.csv: cannot read the file \(Permission denied\)"):
            _ = FileDataModule(str(path)).num_features
        path.chmod(0o644)
    opened = pathlib.Path.open

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "d.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return opened(self, *args, **kwargs)

    with monkeypatch.context() as patch:  # what chmod 000 does, for any user
        patch.setattr(pathlib.Path, "open", refuse)
        with pytest.raises(InputError, match=r"d.csv: cannot read the file \(Permission denied\)"):
            _ = FileDataModule(str(path)).num_features
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputError, match=r"dir.csv: is a directory, not a data file"):
        _ = FileDataModule(str(tmp_path / "dir.csv")).num_features


# -- 6. not UTF-8 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (b"a,b,y\n1,2,3\n4,caf\xe9,6\n", {}, r"d.csv, row 3, column 'b': byte 0xe9 is not UTF-8"),
        (b"a,b\xe9,y\n1,2,3\n", {}, r"d.csv, row 1, column 2: byte 0xe9 is not UTF-8"),
        (numbers_csv(3000).encode() + b"1,2,\xff\n", {}, r"d.csv, row 3002, column 'y': byte 0xff is not UTF-8"),
        (b"a,y\n1,cat\n2,d\xe9g\n", {"task": "classification"}, r"d.csv, row 3, column 'y': byte 0xe9 is not UTF-8"),
    ],
    ids=["data-row", "header", "past-the-first-buffer", "label-column"],
)
def test_bytes_that_are_not_utf8_are_named(tmp_path: Path, content: bytes, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message + r" text; the file must be UTF-8"):
        _ = FileDataModule(str(write(tmp_path / "d.csv", content)), **kwargs, **ALL_ROWS).num_features


# -- 7. whitespace-only lines, and cells numpy cannot read ----------------------------------------------------------


def test_whitespace_only_lines_are_skipped_like_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,b,y\r\n1,2,3\r\n   \r\n\t\r\n\r\n4,5,6\r\n  ")
    module = FileDataModule(str(path), shuffle=False, **ALL_ROWS)
    torch.testing.assert_close(module.split_tensors("train")[0], torch.tensor([[1.0, 2.0], [4.0, 5.0]]))
    predict = write(tmp_path / "new.csv", "a,b\n1,2\n \n3,4\n")  # and in a file of features only
    module = FileDataModule(str(path), predict_path=str(predict), **ALL_ROWS)
    torch.testing.assert_close(module.predict_features(), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    one_column = write(tmp_path / "one.csv", "a\n1\n  \n2\n")
    module = FileDataModule(str(path), features="a", predict_path=str(one_column), **ALL_ROWS)
    assert module.predict_features().shape == (2, 1)
    write(path, "a,b,y\n1,2,3\n  \n4,nan,6\n")  # counted as lines in messages
    with pytest.raises(InputError, match=r"d.csv, row 4, column 'b': nan is not a finite number"):
        _ = FileDataModule(str(path)).num_features


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,y\n1,2,3\n \n4,1_000,6\n", r"d.csv, row 4, column 'b': '1_000' is not a number$"),
        ("a,b,y\n1,2,3\n4,٤٢,6\n", r"d.csv, row 3, column 'b': '٤٢' is not a number$"),
        ("a,b,y\n1,2,3\n,,\n", r"d.csv, row 3, column 'a': '' is not a number"),
    ],
    ids=["underscore", "arabic-digits", "row-of-empty-cells"],
)
def test_cells_numpy_cannot_read_are_named_by_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _ = FileDataModule(str(write(tmp_path / "d.csv", text))).num_features


# -- 8. a line break inside a column name ---------------------------------------------------------------------------


def test_a_quoted_line_break_in_the_header_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", '"a\nb",c,y\n1,2,3\n4,5,6\n')
    with pytest.raises(InputError, match=r"d.csv, row 1, column 'a\\nb': a column name holds a line break") as error:
        _ = FileDataModule(str(path)).num_features
    assert "\n" not in str(error.value)
    write(path, '"a\n",b,y\n1,2,3\n')  # a trailing one too, although the name stripped is just 'a'
    with pytest.raises(InputError, match=r"d.csv, row 1, column 'a': a column name holds a line break"):
        _ = FileDataModule(str(path)).num_features


# -- 9. files that are not NumPy files ------------------------------------------------------------------------------


def not_numpy_files(tmp_path: Path) -> list[Path]:
    """A .npy and a .npz of random bytes, and .npz archives whose member is no array or a broken one."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=300, dtype=np.uint8).tobytes()
    paths = [write(tmp_path / "noise.npy", noise), write(tmp_path / "noise.npz", noise)]
    for name, member in (("bytes.npz", noise), ("header.npz", b"\x93NUMPY\x01\x00\x10\x00{'descr': garbage" + noise)):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            archive.writestr("X.npy", member)
            archive.writestr("y.npy", member)
        paths.append(tmp_path / name)
    return paths


def test_files_that_are_not_numpy_files_are_not_called_object_arrays(tmp_path: Path) -> None:
    for path in not_numpy_files(tmp_path):
        with pytest.raises(InputError, match=rf"{path.name}: .*not a (readable )?NumPy (file|array)") as error:
            _ = FileDataModule(str(path)).num_features
        assert "Python objects" not in str(error.value)
    np.savez(tmp_path / "objects.npz", X=np.array([[1, "a"]], dtype=object), y=np.zeros(1))
    with pytest.raises(InputError, match=r"objects.npz: array 'X' cannot be read without unpickling: it holds Python"):
        _ = FileDataModule(str(tmp_path / "objects.npz")).num_features


# -- 10. one class in the training rows -----------------------------------------------------------------------------


def single_class_files(tmp_path: Path) -> tuple[Path, Path]:
    """A training file of class 1 only, and a validation file with classes 0 and 1."""
    train = write(tmp_path / "train.csv", "a,b,y\n" + "".join(f"{i},{i % 3},1\n" for i in range(8)))
    val = write(tmp_path / "val.csv", "a,b,y\n0,1,0\n5,2,1\n")
    return train, val


def test_a_single_class_in_the_training_rows_names_file_and_column(tmp_path: Path) -> None:
    train, val = single_class_files(tmp_path)
    module = FileDataModule(str(train), val_path=str(val), task="classification")
    assert module.class_names == ["0", "1"]
    with pytest.raises(
        InputError, match=r"train.csv, column 'y': the training rows hold a single class \(1\) of the 2"
    ):
        module.setup("fit")


# -- through the CLI: exit 2, one line, nothing written -------------------------------------------------------------


def cli_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """CLI arguments and the expected message for each bad input refused only once the trainer exists."""
    (csv_file, csv_message), (npy_file, npy_message) = too_large_files(tmp_path)
    train, val = single_class_files(tmp_path)
    one = write(tmp_path / "one.csv", "a,b,y\n1,2,3\n")
    regression = ["--model", "lr_lightning.models.LinearRegression", "--data", "lr_lightning.data.FileDataModule"]
    classification = ["--model", "lr_lightning.models.LogisticRegression", "--data", "lr_lightning.data.FileDataModule"]
    fractions = ["--data.val_fraction", "0", "--data.test_fraction", "0"]
    return {
        "too-large-csv": ([*regression, "--data.path", str(csv_file), *fractions], csv_message),
        "too-large-npy": ([*regression, "--data.path", str(npy_file), *fractions], npy_message),
        "one-row": ([*regression, "--data.path", str(one), *fractions], r"the training split needs at least 2 rows"),
        "single-class": (
            [*classification, "--data.path", str(train), "--data.val_path", str(val), "--data.task", "classification"],
            r"train.csv, column 'y': the training rows hold a single class \(1\)",
        ),
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", ["too-large-csv", "too-large-npy", "one-row", "single-class"])
def test_the_cli_refuses_hostile_data_before_writing_anything(tmp_path: Path, case: str) -> None:
    args, message = cli_cases(tmp_path)[case]
    result = run_cli(["fit", *args, "--trainer.max_epochs", "1"], cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("lr-lightning: error:")]
    assert len(errors) == 1 and re.search(message, errors[0]), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "lightning_logs").exists()
