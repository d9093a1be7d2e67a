"""Categorical columns and missing cells of a table's features: text cells in, a float64 design matrix out.

The encoding is fitted on the training rows only (:func:`fit_encoding`) and applied unchanged to every other row
and to a new file at ``predict`` (:meth:`TableEncoding.transform`); it is saved in a checkpoint as plain values
(:meth:`TableEncoding.to_record`). It is scikit-learn's

``ColumnTransformer([("cat", OneHotEncoder(drop="first"), categorical),
("num", SimpleImputer(strategy=missing, add_indicator=True), numeric)])``

up to the order of the design columns:

* a **numeric** column stays in place; with ``missing`` set, a missing cell becomes the training rows' mean or
  median of the column, and a column that had a missing cell in the training rows adds an indicator column
  ``<column>_missing`` (1.0 where missing), after every other design column;
* a **categorical** column becomes, in place, one indicator column ``<column>=<level>`` per level seen in the
  training rows, sorted (by value when every level is a number, ``"2"`` before ``"10"``; as text otherwise);
  missing cells are the last level, ``(missing)``, when ``missing`` is set. With ``drop_first`` (treatment
  coding, for a model with an intercept) the first level has no column: it is the all-zero row.

A cell is missing when it is one of :data:`MISSING_CELLS`, or, in a numeric column, any spelling of NaN.
"""

from __future__ import annotations

import dataclasses
import decimal
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lr_lightning.data.encoding_record import (
    HANDLE_UNKNOWN,
    MISSING_CELLS,
    MISSING_LEVEL,
    MISSING_STRATEGIES,
    CategoricalColumn,
    Column,
    NumericColumn,
    check_columns,
    encoding_from_record,
    encoding_to_record,
    level_value,
)
from lr_lightning.data.readers.csv_scan import parse_number
from lr_lightning.data.readers.text_columns import RowNamer  # (row index) -> "houses.csv, row 7"
from lr_lightning.errors import InputError, require

__all__ = [
    "HANDLE_UNKNOWN",
    "MISSING_CELLS",
    "MISSING_LEVEL",
    "MISSING_STRATEGIES",
    "CategoricalColumn",
    "EncodingOptions",
    "NumericColumn",
    "RowNamer",
    "TableEncoding",
    "fit_encoding",
]


@dataclass(frozen=True)
class EncodingOptions:
    """The user's options (plain values from YAML).

    Attributes:
        categorical: feature columns to one-hot encode (text, or integer-coded categories).
        missing: ``None``: a missing cell is an error; ``"mean"`` or ``"median"``: impute numeric columns with the
            training rows' statistic (and add indicators), and make missing cells of a categorical column a level.
        handle_unknown: ``"error"``: a level not in the training rows is an error; ``"ignore"``: all-zero indicators.
        drop_first: drop each categorical column's first level (treatment coding, for a model with an intercept).

    """

    categorical: list[str] = field(default_factory=list)
    missing: str | None = None
    handle_unknown: str = "error"
    drop_first: bool = True

    def check(self) -> None:
        """Raise :class:`InputError` naming the option of a bad value."""
        require(
            isinstance(self.categorical, (list, tuple)) and all(isinstance(name, str) for name in self.categorical),
            "categorical",
            "a list of column names",
            self.categorical,
        )
        repeated = [name for index, name in enumerate(self.categorical) if name in self.categorical[:index]]
        require(not repeated, "categorical", "a list of distinct column names", self.categorical)
        require(self.missing is None or self.missing in MISSING_STRATEGIES, "missing", "mean or median", self.missing)
        require(self.handle_unknown in HANDLE_UNKNOWN, "handle_unknown", "error or ignore", self.handle_unknown)
        require(isinstance(self.drop_first, bool), "drop_first", "true or false", self.drop_first)


@dataclass(frozen=True)
class _Problem:
    """The first bad cell of one column: its row (an index into the column's cells) and what is wrong."""

    row: int
    column: str
    detail: str


def _missing_hint(what: str) -> str:
    return f"missing value; set missing: mean or median (--data.missing mean) to {what}"


def _unknown_level(column: CategoricalColumn, text: str) -> str:
    unseen = f"level {text!r} was not in the training rows"
    if text in MISSING_CELLS:
        unseen = "missing value, but the training rows had none in this column"
    return f"{unseen} (levels: {column.describe_levels()}); set handle_unknown: ignore to encode it as all zeros"


def _distinct(cells: list[str]) -> tuple[list[str], np.ndarray]:
    """Return the distinct cells (first appearance first) and each cell's index among them, shape (n,)."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(cell, len(index)) for cell in cells), dtype=np.intp, count=len(cells))
    return list(index), codes


def _first_row(codes: np.ndarray, bad: dict[int, str], column: str) -> _Problem | None:
    """Return the problem of the first row whose distinct cell is in ``bad`` (distinct index -> detail)."""
    if not bad:
        return None
    row = int(np.flatnonzero(np.isin(codes, list(bad)))[0])
    return _Problem(row, column, bad[int(codes[row])])


def _number(text: str) -> float | None:
    """Return the number in a cell (NaN for a missing cell, maybe infinite); ``None`` if it is not a number.

    A present cell is read as numpy's parser reads numeric columns without this module (:func:`parse_number`), so
    the two agree (``1_000`` and non-ASCII digits are not numbers).
    """
    return float("nan") if text in MISSING_CELLS else parse_number(text)


def _read_numbers(column: str, cells: list[str], allow_missing: bool) -> tuple[np.ndarray, _Problem | None]:
    """Return a numeric column's values, shape (n,) float64 with NaN where missing, and its first bad cell."""
    texts, codes = _distinct(cells)
    values = np.full(len(texts), np.nan)
    bad: dict[int, str] = {}
    for index, text in enumerate(texts):
        value = _number(text)
        if value is None:
            bad[index] = f"{text!r} is not a number; add {column!r} to categorical if its values are categories"
        elif abs(value) == float("inf"):
            bad[index] = f"{text!r} is not a finite number"
        elif value != value and not allow_missing:  # NaN: a missing cell
            bad[index] = _missing_hint("impute it")
        else:
            values[index] = value
    return values[codes], _first_row(codes, bad, column)


def _sorted_levels(texts: list[str]) -> tuple[tuple[str, ...], bool]:
    """Return the levels of distinct non-missing texts, sorted, and whether they are numbers (one level per value)."""
    values = [level_value(text) for text in texts]
    if not texts or None in values:
        return tuple(sorted(texts)), False
    by_value: dict[decimal.Decimal, list[str]] = {}
    for text, value in zip(texts, values, strict=True):
        assert value is not None
        by_value.setdefault(value, []).append(text)
    return tuple(min(by_value[value], key=lambda text: (len(text), text)) for value in sorted(by_value)), True


@dataclass(frozen=True)
class TableEncoding:
    """The fitted encoding of a table's feature columns (immutable).

    Attributes:
        columns: one fitted column per feature, in the features' order.
        missing: the ``missing`` option it was fitted with (``None``, ``"mean"`` or ``"median"``).
        handle_unknown: ``"error"`` or ``"ignore"`` (a level not in the training rows).

    """

    columns: tuple[Column, ...]
    missing: str | None
    handle_unknown: str

    @property
    def input_columns(self) -> list[str]:
        """The feature columns it reads, in order."""
        return [column.name for column in self.columns]

    @property
    def output_names(self) -> list[str]:
        """The D design columns: each feature's in place (``area``, ``neighbourhood=north``), then the indicators."""
        names = [name for column in self.columns for name in column.output_names]
        return names + [f"{column.name}_missing" for column in self.indicated_columns]

    @property
    def indicated_columns(self) -> list[NumericColumn]:
        """The numeric columns with an indicator ``<name>_missing`` (a missing cell in the training rows)."""
        return [column for column in self.columns if isinstance(column, NumericColumn) and column.indicator]

    def transform(self, columns: dict[str, list[str]], where: RowNamer) -> np.ndarray:
        """Encode rows of text cells into the design matrix.

        Args:
            columns: at least :attr:`input_columns`, each one text per row (n rows, the same for every column).
            where: names a row (an index into the lists) in messages.

        Returns:
            The design matrix of shape (n, D), float64, its columns named by :attr:`output_names`.

        Raises:
            InputError: at the first row (in row order) with a bad cell: not a number, a missing value that
                ``missing`` does not impute, or a level not in the training rows with ``handle_unknown: error``.

        """
        lengths = {len(columns[name]) for name in self.input_columns}
        if len(lengths) > 1:
            raise ValueError(f"the columns have different lengths {sorted(lengths)}")
        rows = lengths.pop() if lengths else 0
        blocks: list[np.ndarray] = []
        indicators: list[np.ndarray] = []
        problems: list[_Problem] = []
        for column in self.columns:
            cells = columns[column.name]
            if isinstance(column, NumericColumn):
                values, problem = _read_numbers(column.name, cells, allow_missing=column.fill is not None)
                missing = np.isnan(values)  # (n,)
                blocks.append(np.where(missing, column.fill if column.fill is not None else 0.0, values)[:, None])
                if column.indicator:
                    indicators.append(missing[:, None].astype(np.float64))
            else:
                block, problem = self._one_hot(column, cells)
                blocks.append(block)
            if problem is not None:
                problems.append(problem)
        if problems:
            first = min(problems, key=lambda problem: problem.row)  # min keeps the first column of a row
            raise InputError(f"{where(first.row)}, column {first.column!r}: {first.detail}")
        return np.hstack([np.empty((rows, 0)), *blocks, *indicators])  # (n, D)

    def _one_hot(self, column: CategoricalColumn, cells: list[str]) -> tuple[np.ndarray, _Problem | None]:
        """Return a categorical column's indicators, shape (n, levels - drop_first), and its first bad cell."""
        texts, codes = _distinct(cells)
        level_codes = np.empty(len(texts), dtype=np.intp)
        bad: dict[int, str] = {}
        for index, text in enumerate(texts):
            level = column.level_of(text)
            if level is None and text in MISSING_CELLS and self.missing is None:
                bad[index] = _missing_hint(f"encode it as the level {MISSING_LEVEL!r}")
            elif level is None and self.handle_unknown == "error":
                bad[index] = _unknown_level(column, text)
            level_codes[index] = -1 if level is None else level  # -1: all zeros
        kept = np.arange(int(column.drop_first), len(column.all_levels))  # (L',)
        block = (level_codes[codes][:, None] == kept[None, :]).astype(np.float64)  # (n, 1) == (1, L') -> (n, L')
        return block, _first_row(codes, bad, column.name)

    def with_options(
        self, categorical: list[str] | None, missing: str | None, drop_first: bool | None, handle_unknown: str | None
    ) -> TableEncoding:
        """Return this fitted encoding for the options a user gave beside it, ``handle_unknown`` replaced if given.

        The encoding decides ``categorical``, ``missing`` and ``drop_first``: each may be given (not ``None``) only
        with the value it holds. ``drop_first`` holds for every categorical column (any value when there is none).

        Raises:
            InputError: an option given with another value than the encoding's, naming it.

        """
        categorical_columns = [column for column in self.columns if isinstance(column, CategoricalColumn)]
        differs = {
            "categorical": categorical is not None
            and sorted(categorical) != sorted(column.name for column in categorical_columns),
            "missing": missing is not None and missing != self.missing,
            "drop_first": drop_first is not None
            and any(column.drop_first != drop_first for column in categorical_columns),
        }
        for option, different in differs.items():
            if different:
                raise InputError(
                    "encoding: the checkpoint's table encoding already decides categorical, missing and drop_first; "
                    f"remove --data.{option}"
                )
        if handle_unknown is None or handle_unknown == self.handle_unknown:
            return self
        return dataclasses.replace(self, handle_unknown=handle_unknown)

    def to_record(self) -> dict[str, Any]:
        """Return the encoding as plain values (dict, list, str, float, int, bool, None) for a checkpoint."""
        return encoding_to_record(self.columns, self.missing, self.handle_unknown)

    @classmethod
    def from_record(cls, record: Any, source: str) -> TableEncoding:
        """Read what :meth:`to_record` wrote; anything else is an :class:`InputError` naming ``source``."""
        return cls(*encoding_from_record(record, source))


def fit_encoding(
    columns: dict[str, list[str]],
    feature_names: list[str],
    train_rows: np.ndarray,
    options: EncodingOptions,
    where: RowNamer,
    *,
    source: str = "the data",
) -> TableEncoding:
    """Fit the encoding of the feature columns on the training rows.

    Args:
        columns: the text cells of every feature column, one per row of the data (all rows, not only training).
        feature_names: the feature columns, in the design's order.
        train_rows: indices into the cells of the training rows, shape (n_train,), int.
        options: the user's options (checked here).
        where: names a row (an index into the cells) in messages.
        source: names the data in messages about a whole column (``houses.csv``).

    Returns:
        The fitted encoding.

    Raises:
        InputError: a bad option; a bad training cell (naming its row); a numeric column without a value in the
            training rows to impute from; a categorical column of one level with ``drop_first``; two design
            columns of the same name.

    """
    options.check()
    unknown = [name for name in options.categorical if name not in feature_names]
    if unknown:
        features = ", ".join(feature_names)
        raise InputError(f"categorical: {unknown[0]!r} is not a feature column (the features: {features})")
    rows = np.sort(np.asarray(train_rows))
    if rows.ndim != 1 or rows.size == 0 or rows.dtype.kind not in "iu" or rows[0] < 0:
        raise ValueError(f"train_rows must be a non-empty 1-D array of row indices, got {train_rows!r}")
    fitted: list[Column] = []
    problems: list[_Problem] = []
    for name in feature_names:
        cells = [columns[name][row] for row in rows.tolist()]
        if name in options.categorical:
            texts, codes = _distinct(cells)
            hint = _missing_hint(f"encode it as the level {MISSING_LEVEL!r}")
            missing = {index: hint for index, text in enumerate(texts) if text in MISSING_CELLS}
            levels, numeric = _sorted_levels([text for text in texts if text not in MISSING_CELLS])
            fitted.append(CategoricalColumn(name, levels, numeric, bool(missing), options.drop_first))
            problem = _first_row(codes, missing, name) if options.missing is None else None
        else:
            values, problem = _read_numbers(name, cells, allow_missing=options.missing is not None)
            observed = values[~np.isnan(values)]
            fill = None
            if options.missing is not None and observed.size:
                fill = float(np.mean(observed) if options.missing == "mean" else np.median(observed))
            indicator = options.missing is not None and observed.size < len(cells)
            fitted.append(NumericColumn(name, fill, indicator))
        if problem is not None:
            problems.append(problem)
    if problems:
        first = min(problems, key=lambda problem: problem.row)
        raise InputError(f"{where(int(rows[first.row]))}, column {first.column!r}: {first.detail}")
    check_columns(fitted, options.missing, source)
    return TableEncoding(tuple(fitted), options.missing, options.handle_unknown)
