"""Readers of data files, one per suffix in :data:`READERS`, and :func:`read_table`, the checks every file gets.

Every mistake in a file raises :class:`~lr_lightning.errors.InputError` naming the file, the row (for CSV the line
number a text editor shows, the header being line 1; for arrays and Parquet the index from 0) and the column.
A new format is one module with a function of the :class:`ReadColumns` signature and one entry in :data:`READERS`.
:func:`read_text_columns` reads columns as the file holds them (text), row for row with :func:`read_table`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lr_lightning.data.checks import check_finite
from lr_lightning.data.readers.columns import Table, as_names
from lr_lightning.data.readers.csv_reader import check_delimiter, read_csv
from lr_lightning.data.readers.labels import encode_labels
from lr_lightning.data.readers.numpy_reader import read_npy, read_npz
from lr_lightning.data.readers.parquet_reader import read_parquet
from lr_lightning.data.readers.text_columns import (
    ReadText,
    RowNamer,
    column_names,
    csv_text,
    npy_text,
    parquet_text,
    read_text_columns,
    row_namer,
)
from lr_lightning.errors import InputError

__all__ = [
    "FILE_FORMATS",
    "READERS",
    "ReadColumns",
    "ReadText",
    "Reader",
    "RowNamer",
    "Table",
    "as_names",
    "check_delimiter",
    "column_names",
    "encode_labels",
    "find_reader",
    "read_table",
    "read_text_columns",
    "row_namer",
]


class ReadColumns(Protocol):
    """Read the chosen columns of one file into a :class:`Table`: the one signature of every format's reader.

    Args:
        path: an existing, non-empty file of the reader's format.
        features: feature column names; ``None``: every column that is not a target.
        targets: target column names; ``None``: the last column.
        labels: the target column holds class labels, read as the file holds them (text or numbers) and
            encoded later across all files (:func:`encode_labels`); otherwise targets are numbers.
        need_targets: ``False`` for a predict file: ``features`` are the model's, and the targets may be missing
            (the table then has none).
        delimiter: the character between cells, for a format that has one (:attr:`Reader.takes_delimiter`);
            the others are never given another than ``","``.

    """

    def __call__(
        self,
        path: Path,
        features: list[str] | None,
        targets: list[str] | None,
        *,
        labels: bool,
        need_targets: bool,
        delimiter: str = ",",
    ) -> Table:
        """Return the chosen columns of ``path``; raise :class:`~lr_lightning.errors.InputError` naming a mistake."""
        ...


@dataclass(frozen=True)
class Reader:
    """One file format: its reader, and what :func:`read_table` does around it.

    Attributes:
        read: the format's reader.
        names_are_keys: ``features`` and ``targets`` name arrays in the file, not columns (``.npz``): every file of
            a module is read with the user's names, not with the column names the training file gave.
        checks_cells: the reader checks every value for NaN, infinity and float32's range itself (CSV, to name
            the line number); otherwise :func:`read_table` does, counting rows from 0.
        reports_empty: the reader words the error for an empty (0-byte) file itself (``.npz``).
        takes_delimiter: the format's cells are separated by a character the user may choose (CSV); for the
            others, another ``delimiter`` than ``","`` is refused.
        read_text: the format's reader of columns as text (:func:`read_text_columns`); ``None``: the format has
            no named columns (``.npz``).

    """

    read: ReadColumns
    read_text: ReadText | None
    names_are_keys: bool = False
    checks_cells: bool = False
    reports_empty: bool = False
    takes_delimiter: bool = False


#: The reader of each file suffix (lower case).
READERS: dict[str, Reader] = {
    ".csv": Reader(read_csv, csv_text, checks_cells=True, takes_delimiter=True),
    ".npy": Reader(read_npy, npy_text),
    ".npz": Reader(read_npz, None, names_are_keys=True, reports_empty=True),
    ".parquet": Reader(read_parquet, parquet_text),
}

#: File suffixes :func:`read_table` reads.
FILE_FORMATS = tuple(READERS)


def find_reader(path: str, *, delimiter: str = ",") -> tuple[Path, Reader]:
    """Check what every file must be before it is read, and return it with the reader of its suffix.

    The ``delimiter`` is a valid one (:func:`check_delimiter`), and the default unless the format takes one; the
    file exists, is no directory, has a known suffix and, unless its reader says so itself, is not empty.
    """
    check_delimiter(delimiter)
    file = Path(path)
    if file.is_dir():
        raise InputError(f"{path}: is a directory, not a data file")
    if not file.is_file():
        where = "" if file.is_absolute() else f" (a relative path, looked up in {Path.cwd()})"
        raise InputError(f"{path}: no such file{where}")
    suffix = file.suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        raise InputError(f"{path}: unknown file type {suffix!r}; expected one of {', '.join(FILE_FORMATS)}")
    if delimiter != "," and not reader.takes_delimiter:
        raise InputError(f"delimiter applies to CSV files only; {path} is a {suffix} file")
    if not reader.reports_empty and file.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    return file, reader


def read_table(
    path: str,
    features: list[str] | None,
    targets: list[str] | None,
    *,
    labels: bool,
    need_targets: bool,
    key_names: tuple[list[str] | None, list[str] | None] | None = None,
    delimiter: str = ",",
) -> Table:
    """Read one data file with the reader of its suffix, and check what every format must hold.

    Args:
        path: the file, as the user wrote it (messages name it so).
        features: feature column names (see :class:`ReadColumns`).
        targets: target column names.
        labels: classification: one target column of class labels, returned as raw labels (n,).
        need_targets: ``False`` for a predict file.
        key_names: the user's own ``(features, targets)``, read instead of ``features`` and ``targets`` by a
            format whose names are array keys (:attr:`Reader.names_are_keys`); ``None``: the same as those.
        delimiter: the character between a CSV's cells (one that no number holds, see :func:`check_delimiter`);
            another than ``","`` is refused for the other formats.

    Returns:
        The table; values beyond float32's range are named in :attr:`Table.too_large`, not refused.

    """
    file, reader = find_reader(path, delimiter=delimiter)
    if reader.names_are_keys and key_names is not None:
        features, targets = key_names
    try:
        table = reader.read(file, features, targets, labels=labels, need_targets=need_targets, delimiter=delimiter)
    except OSError as error:  # no permission to read, an I/O error
        raise InputError(f"{path}: cannot read the file ({error.strerror or error})") from None
    if labels and need_targets:
        assert table.targets is not None
        if len(table.target_names) != 1:
            raise InputError(f"{path}: classification takes one label column, got {table.target_names}")
        table.targets = table.targets.reshape(-1)
    if not reader.checks_cells:  # array rows count from 0
        too_large = [check_finite(table.features, table.feature_names, str(path))]
        if table.targets is not None and not labels:
            too_large.append(check_finite(table.targets.reshape(len(table.targets), -1), table.target_names, str(path)))
        table.too_large = next((message for message in too_large if message), None)
    return table
