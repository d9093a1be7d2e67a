"""Parquet files (needs pyarrow, imported only when such a file is read): columns by name, as for CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lr_lightning.data.readers.columns import Table, check_unique, choose_columns
from lr_lightning.errors import InputError, one_line

__all__ = ["parquet_header", "read_parquet"]


def parquet_header(path: Path) -> list[str]:
    """Return the column names of a Parquet file, each unique; refuse a file pyarrow cannot read, or no pyarrow."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet files needs pyarrow (pip install pyarrow)") from None
    try:
        header = list(pq.read_schema(path).names)
    except Exception as error:  # pyarrow raises its own error types for files that are not Parquet
        raise InputError(f"{path}: not a readable Parquet file ({one_line(error)})") from None
    check_unique(header, "column", str(path))
    return header


def read_parquet(
    path: Path,
    features: list[str] | None,
    targets: list[str] | None,
    *,
    labels: bool,
    need_targets: bool,
    delimiter: str = ",",
) -> Table:
    """Read the chosen columns; a missing value (null) is refused, named by its row (from 0) and column.

    Only the chosen columns are read from the file. A label column (``labels``) may hold text. ``delimiter`` is
    for CSV only (:func:`~lr_lightning.data.readers.read_table` refuses another one).
    """
    header = parquet_header(path)
    import pyarrow.parquet as pq  # importable: parquet_header checked

    feature_names, target_names = choose_columns(path, header, features, targets, need_targets)
    table = pq.read_table(path, columns=feature_names + target_names)
    if table.num_rows == 0:
        raise InputError(f"{path}: the file has no rows")

    def column(name: str, allow_labels: bool = False) -> np.ndarray:
        """Return one column as an array of numbers (or, for labels, text); no nulls."""
        values = table.column(name)
        if values.null_count:
            row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}, row {row}, column {name!r}: missing value")
        array = values.to_numpy(zero_copy_only=False)
        if array.dtype == object and allow_labels:
            array = array.astype(str)
        if array.dtype.kind not in "biuf" and not (allow_labels and array.dtype.kind in "US"):
            raise InputError(f"{path}, column {name!r}: expected numbers, got {values.type}")
        return array

    x = np.column_stack([column(name) for name in feature_names]).astype(np.float64, copy=False)
    if not target_names:
        y = None
    elif labels:
        y = column(target_names[0], allow_labels=True)
    else:
        y = np.column_stack([column(name) for name in target_names]).astype(np.float64, copy=False)
    return Table(x, y, feature_names, target_names)
