"""CSV files: a header row of unique names, then rows of numbers (and a label column for classification).

Cells are separated by a comma, or by the one character the user names (``delimiter``, :func:`check_delimiter`).

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

__all__ = ["check_delimiter", "read_csv", "read_header"]

#: Separators a one-column header is searched for when it holds one of them: the file is separated by it.
_OTHER_DELIMITERS = (",", ";", "\t", "|")

#: How a user sets a tab delimiter: YAML's double quotes read an escape, single quotes and shells do not.
_SET_TAB = """delimiter: "\\t" (--data.delimiter $'\\t')"""


def check_delimiter(delimiter: str) -> None:
    """Refuse a delimiter that is not one character, or one that cells hold: a quote, a line break, a number's.

    A tab is fine. Raises :class:`~lr_lightning.errors.InputError` naming the option and the value.
    """
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        hint = f"; a tab is one character: set {_SET_TAB}" if delimiter == "\\t" else ""
        raise InputError(f"delimiter must be one character, got {delimiter!r}{hint}")
    if delimiter in "\"'":
        reason = "a quote (quotes enclose cells)"
    elif not delimiter.isprintable() and delimiter != "\t":
        reason = "a line break or another control character"
    elif delimiter.isalnum() or delimiter in ".-+":
        reason = "a letter, a digit, '.', '-' or '+' (numbers hold them)"
    else:
        return
    raise InputError(f"delimiter must not be {reason}, got {delimiter!r}")


def _option(delimiter: str) -> str:
    """Return how the user sets ``delimiter``, in YAML and on the command line."""
    if delimiter == "\t":
        return _SET_TAB
    return f"delimiter: {delimiter!r} (--data.delimiter {delimiter!r})"


def read_header(path: Path, delimiter: str) -> list[str]:
    """Return the column names of the first line, stripped, each one present and unique."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: Excel writes a byte-order mark
            header = next(csv.reader(handle, delimiter=delimiter), None)
    except UnicodeDecodeError:  # the text layer decodes ahead: the bad byte may be in any early row
        raise encoding_error(path, None, delimiter) from None
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
    others = [separator for separator in _OTHER_DELIMITERS if separator != delimiter]
    other = next((separator for separator in others if len(names) == 1 and separator in names[0]), None)
    if other is not None:
        raise InputError(
            f"{path}, row 1: the header is one column {names[0]!r}: the file is separated by {other!r}, not by "
            f"{delimiter!r}; set {_option(other)}"
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


def _load_columns(
    path: Path, lines: Lines | None, header: list[str], names: list[str], dtype: type, delimiter: str
) -> np.ndarray:
    """Return columns ``names`` of a CSV as an array (n, len(names)), parsed by numpy's C parser.

    When ``names`` are all the columns, in order, numpy reads every cell and refuses rows of another width itself;
    otherwise it reads only those columns (``usecols``) and ignores extra cells, so
    :func:`~.csv_scan.check_row_widths` must have run (``lines``).
    """
    with warnings.catch_warnings():
        # A header-only file: reported as an InputError by the caller, not as numpy's warning.
        warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
        # Text (labels) is read in chunks of rows; a blank line is skipped, as it should be, with this warning.
        warnings.filterwarnings("ignore", message=r"Input line \d+ contained no data")
        return np.loadtxt(
            _source(path, lines),
            delimiter=delimiter,
            skiprows=1,
            usecols=None if names == header else [header.index(name) for name in names],
            dtype=dtype,
            comments=None,
            quotechar='"',
            ndmin=2,
            encoding="utf-8",
        )


def read_csv(
    path: Path,
    features: list[str] | None,
    targets: list[str] | None,
    *,
    labels: bool,
    need_targets: bool,
    delimiter: str = ",",
) -> Table:
    """Read the chosen columns of a CSV; every cell of them is checked here, named by its line number.

    The label column of classification data (``labels``) is read as text, never as a number: its values are
    encoded later, across all files (:func:`~lr_lightning.data.readers.labels.encode_labels`). ``delimiter``
    separates the cells (checked by :func:`check_delimiter`).
    """
    check_delimiter(delimiter)
    header = read_header(path, delimiter)
    feature_names, target_names = choose_columns(path, header, features, targets, need_targets)
    numeric = feature_names + ([] if labels else target_names)
    try:
        # Reading every column, numpy checks the rows' widths itself: the scan runs only if it fails (it may
        # have met a whitespace-only line, which is skipped like a blank one).
        lines = None if numeric == header else check_row_widths(path, len(header), delimiter)
        try:
            values = _load_columns(path, lines, header, numeric, np.float64, delimiter)
        except ValueError as error:
            if lines is not None or isinstance(error, UnicodeDecodeError):
                raise
            lines = check_row_widths(path, len(header), delimiter)  # raises for a row of another width
            if not lines.whitespace:
                raise
            values = _load_columns(path, lines, header, numeric, np.float64, delimiter)
        target_values = None
        if labels and target_names:
            target_values = _load_columns(path, lines, header, target_names, str, delimiter)[:, 0]
    except UnicodeDecodeError:
        raise encoding_error(path, header, delimiter) from None
    except ValueError:
        diagnose_csv(path, header, numeric, delimiter, features=feature_names)
        raise  # the diagnosis found nothing: a parser problem we do not know, keep numpy's message
    if values.shape[0] == 0:
        raise InputError(f"{path}: the file has a header but no data rows")
    try:
        too_large = check_finite(values, numeric, str(path), first_row=2)
    except InputError:
        diagnose_csv(path, header, numeric, delimiter, features=feature_names)  # the same cell, by its line number
        raise
    if too_large is not None:
        too_large = diagnose_csv(path, header, numeric, delimiter, too_large=True) or too_large
    n_features = len(feature_names)
    if labels:
        table_targets = target_values
    elif target_names:
        table_targets = values[:, n_features:]
    else:
        table_targets = None
    return Table(values[:, :n_features], table_targets, feature_names, target_names, lines, too_large)
