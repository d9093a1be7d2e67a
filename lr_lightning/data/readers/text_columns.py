"""Columns of a data file as text, row for row with what :func:`~lr_lightning.data.readers.read_table` reads.

They are copied through to ``predictions.csv`` (an ``id`` column, text or numbers) as the file holds them, so the
rows must be exactly the numeric reader's: a CSV skips the blank and whitespace-only lines it skips.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from lr_lightning.data.readers.csv_reader import read_header
from lr_lightning.data.readers.csv_scan import SPACE, data_rows, encoding_error
from lr_lightning.data.readers.numpy_reader import load_npy, npy_column_names
from lr_lightning.data.readers.parquet_reader import parquet_header
from lr_lightning.errors import InputError

__all__ = [
    "ReadText",
    "RowNamer",
    "column_names",
    "csv_text",
    "npy_text",
    "parquet_text",
    "read_text_columns",
    "row_namer",
]

#: How messages name data row ``i`` (0-based, in the rows' order) of a file: ``"houses.csv, row 7"``.
RowNamer = Callable[[int], str]


class ReadText(Protocol):
    """Read columns of one file as text: the signature of every format's text reader (:attr:`Reader.read_text`)."""

    def __call__(self, path: Path, names: list[str], *, delimiter: str) -> dict[str, list[str]]:
        """Return each of ``names`` (unique) as one text per data row; raise InputError for a missing name."""
        ...


def _check_names(path: Path, header: list[str], names: list[str]) -> None:
    """Refuse a name that is not one of the file's columns."""
    missing = [name for name in names if name not in header]
    if missing:
        raise InputError(f"{path}: no column {missing[0]!r}; the columns are {header}")


def csv_text(path: Path, names: list[str], *, delimiter: str) -> dict[str, list[str]]:
    """Return CSV cells stripped of ASCII whitespace, skipping the lines the numeric reader skips."""
    header = read_header(path, delimiter)
    _check_names(path, header, names)
    indices = [header.index(name) for name in names]
    cells: list[list[str]] = [[] for _ in names]
    try:
        for _, row in data_rows(path, header, delimiter):
            for column, index in zip(cells, indices, strict=True):
                column.append(row[index].strip(SPACE))
    except UnicodeDecodeError:
        raise encoding_error(path, header, delimiter) from None
    return dict(zip(names, cells, strict=True))


def npy_text(path: Path, names: list[str], *, delimiter: str) -> dict[str, list[str]]:
    """Return columns ``c0``, ``c1``, ... of a 2-D array, each value as ``str()`` of its numpy scalar (``1.5``)."""
    array = load_npy(path)
    header = npy_column_names(array)
    _check_names(path, header, names)
    return {name: [str(value) for value in array[:, header.index(name)]] for name in names}


def parquet_text(path: Path, names: list[str], *, delimiter: str) -> dict[str, list[str]]:
    """Return Parquet values as ``str()`` of each (a float32 as numpy writes it, ``0.1``); a null is ``""``."""
    header = parquet_header(path)
    _check_names(path, header, names)
    import pyarrow as pa
    import pyarrow.parquet as pq  # importable: parquet_header checked

    table = pq.read_table(path, columns=names)
    columns = {}
    for name in names:
        values = table.column(name)
        # Python's float would write a float32's binary expansion (0.10000000149011612).
        narrow = pa.types.is_floating(values.type) and values.type.bit_width < 64
        scalar = np.dtype(values.type.to_pandas_dtype()).type if narrow else str
        columns[name] = ["" if value is None else str(scalar(value)) for value in values.to_pylist()]
    return columns


def read_text_columns(path: str, names: list[str], *, delimiter: str = ",") -> dict[str, list[str]]:
    """Return the named columns of a data file as text, one entry per data row, in the rows' order.

    The rows are those :func:`~lr_lightning.data.readers.read_table` returns for the same file; the values are
    the file's own (CSV: the cell, stripped; Parquet: ``str()`` of each value, a null ``""``; ``.npy``: columns
    ``c0``, ``c1``, ..., ``str()`` of each value). A ``.npz`` file has no named columns and is refused.

    Args:
        path: the file, as the user wrote it; the same checks as :func:`read_table` (it exists, a known suffix).
        names: column names (a repeated name is read once).
        delimiter: the CSV's cell separator (see :func:`read_table`).

    Returns:
        ``{name: [text of row 0, text of row 1, ...]}``, every list as long as the file's data rows.

    """
    from lr_lightning.data.readers import READERS, find_reader  # the package imports this module

    file, reader = find_reader(path, delimiter=delimiter)
    if reader.read_text is None:
        *others, last = [suffix for suffix, other in READERS.items() if other.read_text is not None]
        named = f"{', '.join(others)} or {last}"
        raise InputError(
            f"{path}: a {file.suffix.lower()} file has no named columns (it holds arrays by key); columns {names} "
            f"need a {named} file"
        )
    try:
        return reader.read_text(file, list(dict.fromkeys(names)), delimiter=delimiter)
    except OSError as error:  # no permission to read, an I/O error
        raise InputError(f"{path}: cannot read the file ({error.strerror or error})") from None


def row_namer(path: str, *, delimiter: str = ",") -> RowNamer:
    """Return how messages name the data rows of ``path``: a CSV's line number (the header is line 1), else the index.

    The CSV's lines are scanned only when a message needs one (a mistake is rare; reading the file again is then
    fine), so the rows of :func:`read_text_columns` map to the lines a text editor shows, blank lines skipped.
    """
    if not path.lower().endswith(".csv"):
        return lambda row: f"{path}, row {row}"
    lines: list[int] = []

    def name(row: int) -> str:
        if not lines:
            file = Path(path)
            lines.extend(line for line, _ in data_rows(file, read_header(file, delimiter), delimiter))
        return f"{path}, row {lines[row]}"

    return name


def column_names(path: str, *, delimiter: str = ",") -> list[str] | None:
    """Return the column names of a CSV, Parquet or ``.npy`` file (``c0``, ``c1``, ...); ``None`` for a ``.npz``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return read_header(Path(path), delimiter)
    if suffix == ".parquet":
        return parquet_header(Path(path))
    if suffix == ".npy":
        return npy_column_names(load_npy(Path(path)))
    return None
