"""Files read through a table encoding: text and incomplete feature columns, and rows whose target is missing.

When a :class:`~lr_lightning.data.FileDataModule` has ``categorical``, ``missing``, ``drop_missing_targets`` or a
checkpoint's fitted ``encoding``, its CSV or Parquet files are read here instead of by the numeric readers:

1. :func:`read_rows` reads the chosen columns as the file holds them (text); targets are parsed (numbers as numpy
   reads them, or class labels as text), a row with a missing target is refused naming it, or dropped with
   ``drop_missing_targets`` (targets are never imputed), and the weight column is parsed;
2. the caller fits :func:`~lr_lightning.data.encoding.fit_encoding` on the training rows only (or takes a
   checkpoint's);
3. :func:`encoded_table` turns each file's rows into the :class:`~lr_lightning.data.readers.Table` the rest of the
   DataModule reads, its features the design columns (``neighbourhood=north``, ``area_missing``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lightning.pytorch.utilities import rank_zero_info

from lr_lightning.data.checks import check_finite
from lr_lightning.data.encoding import TableEncoding
from lr_lightning.data.encoding_record import MISSING_CELLS
from lr_lightning.data.readers import RowNamer, Table, read_text_columns, row_namer
from lr_lightning.data.readers.columns import choose_columns
from lr_lightning.data.readers.csv_scan import parse_number
from lr_lightning.data.readers.text_columns import column_names
from lr_lightning.data.weights import check_weight_column, parse_weights
from lr_lightning.errors import InputError

__all__ = ["ENCODED_FORMATS", "RawRows", "encoded_table", "read_rows"]

#: The file suffixes whose columns can hold text and empty cells.
ENCODED_FORMATS = (".csv", ".parquet")


@dataclass
class RawRows:
    """The rows of one file as read for an encoding, rows with a missing target already dropped.

    Attributes:
        path: the file, as the user wrote it.
        cells: each feature column's text cells, one per kept row.
        feature_names: the feature columns, in order.
        target_names: the target columns (K), or the label column; empty when the file has none (predict).
        targets: (n, K) float64 targets, (n,) label texts (object), or ``None``.
        weights: (n,) float64 sample weights, or ``None``.
        name_row: names kept row ``i`` in messages by its place in the file.
        kept_rows: (n,) indices of the kept rows among the file's data rows (those of
            :func:`~lr_lightning.data.readers.read_text_columns`); ``None``: every row, none dropped.
        missing_target: why a file that may lack targets has none although it has the target columns: the
            message naming its first missing target (``drop_missing_targets`` not set); ``None`` otherwise.

    """

    path: str
    cells: dict[str, list[str]]
    feature_names: list[str]
    target_names: list[str]
    targets: np.ndarray | None
    weights: np.ndarray | None
    name_row: RowNamer
    kept_rows: np.ndarray | None = None
    missing_target: str | None = None


def read_rows(
    path: str,
    features: list[str] | None,
    targets: list[str] | None,
    *,
    weights: str | None,
    labels: bool,
    need_targets: bool,
    drop_missing_targets: bool,
    delimiter: str,
) -> RawRows:
    """Read a CSV or Parquet file's chosen columns as text, its targets and weights parsed.

    A row with a missing target cell (one of :data:`~lr_lightning.data.encoding_record.MISSING_CELLS`) is dropped
    with ``drop_missing_targets``. Without it, a file that must have targets is refused at the first such row (in
    row order), and a file that need not (one to predict on) keeps every row and reads no targets, the message it
    would have raised in :attr:`RawRows.missing_target`.

    Args:
        path: the file.
        features: feature columns; ``None``: every column that is neither a target nor ``weights``.
        targets: target columns (or the label column); ``None``: the last column that is not ``weights``.
        weights: the weight column, or ``None``.
        labels: the target is a column of class labels, kept as text.
        need_targets: ``False`` for a file to predict on, which may lack the targets (and the weights).
        drop_missing_targets: drop a row whose target is missing (and say how many), instead of refusing it.
        delimiter: the CSV's cell separator.

    Raises:
        InputError: a file of another format, a column it lacks or chosen twice, a missing target (see above), a
            target or weight that is not a number, naming its row and column.

    """
    if not path.lower().endswith(ENCODED_FORMATS):
        raise InputError(
            f"{path}: categorical, missing and drop_missing_targets read CSV or Parquet files; use one of those"
        )
    header = column_names(path, delimiter=delimiter)
    assert header is not None
    if weights is not None:
        roles = (("feature", features), ("target", targets))
        check_weight_column(path, header, weights, roles, required=need_targets)
    available = [name for name in header if name != weights]
    feature_names, target_names = choose_columns(Path(path), available, features, targets, need_targets)
    use_weights = weights is not None and weights in header and bool(target_names)
    wanted = [*feature_names, *target_names, *([weights] if use_weights and weights else [])]
    cells = read_text_columns(path, wanted, delimiter=delimiter)
    namer = row_namer(path, delimiter=delimiter)
    rows = len(cells[wanted[0]])
    missing = np.array([[cell in MISSING_CELLS for cell in cells[name]] for name in target_names], dtype=bool)
    missing = missing.reshape(len(target_names), rows).T  # (n, K)
    keep = ~missing.any(axis=1)  # (n,)
    if not keep.all() and not drop_missing_targets:
        row = int(np.argmin(keep))
        name = target_names[int(np.argmax(missing[row]))]
        message = (
            f"{namer(row)}, column {name!r}: missing target; targets are never imputed: fill it, or set "
            "drop_missing_targets: true (--data.drop_missing_targets true) to drop such rows"
        )
        if need_targets:
            raise InputError(message)
        features_only = {name: cells[name] for name in feature_names}
        return RawRows(path, features_only, feature_names, [], None, None, namer, missing_target=message)
    kept = np.flatnonzero(keep)
    if len(kept) < rows:
        rank_zero_info(
            f"{path}: dropped {rows - len(kept)} of {rows} rows with a missing target (drop_missing_targets)"
        )
    if not len(kept):
        raise InputError(f"{path}: every row has a missing target; nothing is left")

    def name_kept(row: int) -> str:
        return namer(int(kept[row]))

    def column(name: str) -> list[str]:
        return [cells[name][row] for row in kept] if len(kept) < rows else cells[name]

    parsed = None
    if target_names:
        texts = np.array([column(name) for name in target_names], dtype=object).T  # (n, K)
        parsed = texts[:, 0].copy() if labels else _numbers(texts, target_names, name_kept)
    sample_weights = parse_weights(column(weights), weights, name_kept) if use_weights and weights else None
    return RawRows(
        path,
        {name: column(name) for name in feature_names},
        feature_names,
        target_names,
        parsed,
        sample_weights,
        name_kept,
        kept_rows=kept if len(kept) < rows else None,
    )


def _numbers(texts: np.ndarray, names: list[str], name_row: RowNamer) -> np.ndarray:
    """Parse target cells (n, K) into finite float64 numbers as numpy's parser reads a numeric column.

    Raises:
        InputError: at the first bad cell (row by row), naming its row and column.

    """
    values = np.empty(texts.shape)
    for (row, k), text in np.ndenumerate(texts):
        value = parse_number(text)
        if value is None:
            raise InputError(f"{name_row(row)}, column {names[k]!r}: {text!r} is not a number")
        if not math.isfinite(value):
            raise InputError(f"{name_row(row)}, column {names[k]!r}: {text!r} is not a finite number")
        values[row, k] = value
    return values


def encoded_table(rows: RawRows, encoding: TableEncoding) -> Table:
    """Encode one file's rows into a :class:`Table` of design columns (float64), its targets as read.

    Raises:
        InputError: a feature column the encoding reads is not in the file, or a cell the encoding refuses (a
            level the training rows did not have, a missing cell it does not impute), naming row and column.

    """
    absent = [name for name in encoding.input_columns if name not in rows.cells]
    if absent:
        raise InputError(f"{rows.path}: no feature column {absent[0]!r}; the model reads {encoding.input_columns}")
    features = encoding.transform(rows.cells, rows.name_row)  # (n, D)
    too_large = check_finite(features, encoding.output_names, rows.path)
    return Table(features, rows.targets, encoding.output_names, rows.target_names, None, too_large)
