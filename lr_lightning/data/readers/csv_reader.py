"""CSV files: a header row of unique names, then rows of numbers (and a label column for classification).

numpy's C parser reads the cells (1e6 rows/s); the exact passes of :mod:`.csv_scan` check what it does not and,
when something is wrong, name the row as the line number a text editor shows (the header being line 1).
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np

from lr_lightning.data.checks import check_finite
from lr_lightning.data.readers.columns import Table, check_unique, choose_columns
from lr_lightning.data.readers.csv_scan import Lines, check_row_widths, diagnose_csv, encoding_error
from lr_lightning.errors import InputError

__all__ = ["read_csv"]


def _read_header(path: Path) -> list[str]:
    """Return the column names of the first line, stripped, each one present and unique."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: Excel writes a byte-order mark
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError:  # the text layer decodes ahead: the bad byte may be in any early row
        raise encoding_error(path, None) from None
    if header is None:
        raise InputError(f"{path}: the file is empty (expected a header row of column names, then data rows)")
    if not header:
        raise InputError(f"{path}, row 1: the header row is blank (expected the column names on the first line)")
    for name in header:  # before stripping: a quoted trailing line break also moves the data to another line
        if "\n" in name or "\r" in name:
            raise InputError(
                f"{path}, row 1, column {name.strip()!r}: a column name holds a line break (inside quotes); the "
                "header must be the first line, one name per cell"
            )
    names = [name.strip() for name in header]
    for column, name in enumerate(names, start=1):
        if not name:
            # pandas' to_csv() writes its index as a first column without a name.
            hint = "; a pandas index? write the file with to_csv(index=False)" if column == 1 else ""
            raise InputError(f"{path}, row 1, column {column}: empty column name in the header{hint}")
    other = next((separator for separator in (";", "\t", "|") if len(names) == 1 and separator in names[0]), None)
    if other is not None:
        raise InputError(
            f"{path}, row 1: the header is one column {names[0]!r}: the file is separated by {other!r}, not by "
            "commas; save it as comma-separated CSV"
        )
    check_unique(names, "column names", str(path))
    return names


def _source(path: Path, lines: Lines | None) -> Path | io.StringIO:
    """Return what numpy parses: the file, or, with whitespace-only lines, its text with those lines emptied."""
    if lines is None or not lines.whitespace:
        return path
    text = path.read_bytes().split(b"\n")
    for number in lines.whitespace:
        text[number - 1] = b""
    return io.StringIO(b"\n".join(text).decode("utf-8-sig"))


def _load_columns(path: Path, lines: Lines | None, header: list[str], names: list[str], dtype: type) -> np.ndarray:
    """Return columns ``names`` of a CSV as an array (n, len(names)), parsed by numpy's C parser.

    When ``names`` are all the columns, in order, numpy reads every cell and refuses rows of another width itself;
    otherwise it reads only those columns (``usecols``) and ignores extra cells, so
    :func:`~.csv_scan.check_row_widths` must have run (``lines``).
    """
    with warnings.catch_warnings():
        # A header-only file: reported as an InputError by the caller, not as numpy's warning.
        warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
        return np.loadtxt(
            _source(path, lines),
            delimiter=",",
            skiprows=1,
            usecols=None if names == header else [header.index(name) for name in names],
            dtype=dtype,
            comments=None,
            quotechar='"',
            ndmin=2,
            encoding="utf-8",
        )


def read_csv(
    path: Path, features: list[str] | None, targets: list[str] | None, *, labels: bool, need_targets: bool
) -> Table:
    """Read the chosen columns of a CSV; every cell of them is checked here, named by its line number.

    The label column of classification data (``labels``) is read as text, never as a number: its values are
    encoded later, across all files (:func:`~lr_lightning.data.readers.labels.encode_labels`).
    """
    header = _read_header(path)
    feature_names, target_names = choose_columns(path, header, features, targets, need_targets)
    numeric = feature_names + ([] if labels else target_names)
    try:
        # Reading every column, numpy checks the rows' widths itself: the scan runs only if it fails (it may
        # have met a whitespace-only line, which is skipped like a blank one).
        lines = None if numeric == header else check_row_widths(path, len(header))
        try:
            values = _load_columns(path, lines, header, numeric, np.float64)
        except ValueError as error:
            if lines is not None or isinstance(error, UnicodeDecodeError):
                raise
            lines = check_row_widths(path, len(header))  # raises for a row of another width
            if not lines.whitespace:
                raise
            values = _load_columns(path, lines, header, numeric, np.float64)
        target_values = _load_columns(path, lines, header, target_names, str)[:, 0] if labels and target_names else None
    except UnicodeDecodeError:
        raise encoding_error(path, header) from None
    except ValueError:
        diagnose_csv(path, header, numeric)
        raise  # the diagnosis found nothing: a parser problem we do not know, keep numpy's message
    if values.shape[0] == 0:
        raise InputError(f"{path}: the file has a header but no data rows")
    try:
        too_large = check_finite(values, numeric, str(path), first_row=2)
    except InputError:
        diagnose_csv(path, header, numeric)  # the same cell, named by its line number
        raise
    if too_large is not None:
        too_large = diagnose_csv(path, header, numeric, too_large=True) or too_large
    n_features = len(feature_names)
    if labels:
        table_targets = target_values
    elif target_names:
        table_targets = values[:, n_features:]
    else:
        table_targets = None
    return Table(values[:, :n_features], table_targets, feature_names, target_names, lines, too_large)
