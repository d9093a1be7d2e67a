"""What a fitted table encoding holds (its columns) and its checkpoint record: plain values, checked on the way in.

:func:`encoding_to_record` writes dicts, lists, texts, floats and bools only, which ``torch.load(weights_only=True)``
reads; :func:`encoding_from_record` reads it back and refuses anything else it could be given (a key too many or
too few, a wrong type, unsorted levels) with one :class:`~lr_lightning.errors.InputError` line, so a forged
checkpoint never ends in a ``KeyError`` or ``TypeError``. Fitting and applying the encoding: :mod:`.encoding`.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from lr_lightning.errors import InputError

__all__ = [
    "HANDLE_UNKNOWN",
    "MISSING_CELLS",
    "MISSING_LEVEL",
    "MISSING_STRATEGIES",
    "RECORD_VERSION",
    "CategoricalColumn",
    "Column",
    "NumericColumn",
    "check_columns",
    "encoding_from_record",
    "encoding_to_record",
    "level_value",
]

#: The texts of a missing cell: an empty cell (a Parquet null reads as ``""``) and the spellings pandas and
#: spreadsheets write for one. In a numeric column any spelling of NaN (``NAN``, ``-nan``) is missing too.
MISSING_CELLS = ("", "NA", "N/A", "n/a", "#N/A", "<NA>", "NaN", "nan", "null", "NULL", "None")
#: The name of the level of a categorical column's missing cells (``missing`` set): ``neighbourhood=(missing)``.
MISSING_LEVEL = "(missing)"
MISSING_STRATEGIES = ("mean", "median")
HANDLE_UNKNOWN = ("error", "ignore")
#: A finite number as a level may be written (ASCII digits only): integer-coded categories, ``"3"``, ``"3.0"``.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: The version of the record's layout.
RECORD_VERSION = 1

_SHOWN_LEVELS = 10  # an unknown level's message lists at most this many levels
_RECORD_KEYS = ("version", "missing", "handle_unknown", "columns")
_NUMERIC_KEYS = ("kind", "name", "fill", "indicator")
_CATEGORICAL_KEYS = ("kind", "name", "levels", "numeric", "missing_level", "drop_first")


def level_value(text: str) -> decimal.Decimal | None:
    """Return the exact value of a level written as a number (``"1.0"`` is 1); ``None`` for any other text."""
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return decimal.Decimal(text)  # exact: 9007199254740993 stays itself
    except decimal.InvalidOperation:  # an exponent beyond Decimal's range: text, not a category code
        return None


@dataclass(frozen=True)
class NumericColumn:
    """A numeric feature column, fitted.

    Attributes:
        name: the column.
        fill: the value of its missing cells (the training rows' mean or median); ``None``: missing is an error.
        indicator: whether the design has ``<name>_missing`` (the column had a missing training cell).

    """

    name: str
    fill: float | None
    indicator: bool

    @property
    def output_names(self) -> list[str]:
        """The name of its design column (the indicators come after every column's)."""
        return [self.name]


@dataclass(frozen=True)
class CategoricalColumn:
    """A categorical feature column, fitted: its levels in the training rows.

    Attributes:
        name: the column.
        levels: the distinct non-missing texts of the training rows, sorted; when ``numeric``, one per value,
            named by its shortest text (``"1"`` for ``1`` and ``1.0``).
        numeric: whether every level is a number: cells then match a level by value (``"1.0"`` is level ``"1"``).
        missing_level: whether the training rows had a missing cell: the level :data:`MISSING_LEVEL`, last.
        drop_first: whether the first level has no design column (treatment coding).

    """

    name: str
    levels: tuple[str, ...]
    numeric: bool
    missing_level: bool
    drop_first: bool
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _by_value: dict[decimal.Decimal, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {level: index for index, level in enumerate(self.levels)})
        values = [level_value(level) for level in self.levels] if self.numeric else []
        by_value = {value: index for index, value in enumerate(values) if value is not None}
        object.__setattr__(self, "_by_value", by_value)

    @property
    def all_levels(self) -> list[str]:
        """Every level, the missing level last when there is one."""
        return [*self.levels, *([MISSING_LEVEL] if self.missing_level else [])]

    @property
    def output_names(self) -> list[str]:
        """``<name>=<level>`` for each level that has a design column."""
        return [f"{self.name}={level}" for level in self.all_levels[int(self.drop_first) :]]

    def level_of(self, cell: str) -> int | None:
        """Return the index of ``cell``'s level in :attr:`all_levels`; ``None`` for a level not in the training rows."""
        if cell in MISSING_CELLS:
            return len(self.levels) if self.missing_level else None
        index = self._index.get(cell)
        if index is None and self.numeric and (value := level_value(cell)) is not None:
            index = self._by_value.get(value)
        return index

    def describe_levels(self) -> str:
        """Return the levels for a message: ``east, north, south`` (the first few, then how many more)."""
        levels = self.all_levels
        shown = ", ".join(levels[:_SHOWN_LEVELS])
        return shown if len(levels) <= _SHOWN_LEVELS else f"{shown} and {len(levels) - _SHOWN_LEVELS} more"


Column = NumericColumn | CategoricalColumn


def check_columns(columns: Sequence[Column], missing: str | None, source: str) -> None:
    """Refuse fitted columns that cannot be used: one with nothing to learn, two design columns of one name."""
    for column in columns:
        if isinstance(column, NumericColumn) and missing is not None and column.fill is None:
            raise InputError(
                f"{source}: column {column.name!r} has only missing cells in the training rows; nothing to impute "
                "them with (remove it from features)"
            )
        if isinstance(column, CategoricalColumn) and column.drop_first and len(column.all_levels) == 1:
            raise InputError(
                f"{source}: column {column.name!r} has one level in the training rows ({column.all_levels[0]!r}); "
                "nothing to learn (remove it from features, or set drop_first: false)"
            )
    named = [(name, column.name) for column in columns for name in column.output_names]
    indicated = [column.name for column in columns if isinstance(column, NumericColumn) and column.indicator]
    makers: dict[str, str] = {}
    for name, maker in [*named, *((f"{name}_missing", name) for name in indicated)]:
        if name in makers:
            raise InputError(
                f"{source}: two design columns are named {name!r} (from columns {makers[name]!r} and {maker!r}); "
                "rename one of them"
            )
        makers[name] = maker


def encoding_to_record(columns: tuple[Column, ...], missing: str | None, handle_unknown: str) -> dict[str, Any]:
    """Return a fitted encoding as plain values: dicts, lists, texts, floats, bools and ``None``."""
    return {
        "version": RECORD_VERSION,
        "missing": missing,
        "handle_unknown": handle_unknown,
        "columns": [_column_record(column) for column in columns],
    }


def _column_record(column: Column) -> dict[str, Any]:
    if isinstance(column, NumericColumn):
        fill = None if column.fill is None else float(column.fill)
        return {"kind": "numeric", "name": column.name, "fill": fill, "indicator": bool(column.indicator)}
    return {
        "kind": "categorical",
        "name": column.name,
        "levels": list(column.levels),
        "numeric": bool(column.numeric),
        "missing_level": bool(column.missing_level),
        "drop_first": bool(column.drop_first),
    }


class _Refused(Exception):
    """What is wrong with a record, as the end of a sentence that names it."""


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise _Refused(problem)


def _keys(raw: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    """Return ``raw`` if it is a dict with exactly ``keys``."""
    _require(isinstance(raw, dict), f"{where} is a {type(raw).__name__}, not a dict")
    for key in keys:
        _require(key in raw, f"{where} has no {key!r}")
    for key in raw:
        _require(key in keys, f"{where} holds {_shown(key)}, which the encoding does not write")
    return dict(raw)


def _bool(value: Any, where: str) -> bool:
    _require(isinstance(value, bool), f"{where} is {_shown(value)}, not true or false")
    return bool(value)


def _choice(value: Any, choices: tuple[Any, ...], where: str) -> Any:
    valid = any(type(value) is type(choice) and value == choice for choice in choices)
    _require(valid, f"{where} is {_shown(value)}, not one of {', '.join(map(str, choices))}")
    return value


def _shown(value: Any) -> str:
    """Return a short one-line picture of a value of any type."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
        return "a large integer"  # repr() refuses integers of more than 4300 digits
    text = repr(value) if isinstance(value, (str, int, float, type(None))) else f"a {type(value).__name__}"
    return text if len(text) <= 60 else f"{text[:57]}..."


def encoding_from_record(record: Any, source: str) -> tuple[tuple[Column, ...], str | None, str]:
    """Read what :func:`encoding_to_record` wrote: the columns, ``missing`` and ``handle_unknown``.

    Raises:
        InputError: ``"<source>: the table encoding's <part> ..."`` for anything :func:`encoding_to_record` does
            not write.

    """
    try:
        raw = _keys(record, _RECORD_KEYS, "record")
        version = raw["version"]
        _require(type(version) is int, f"version is {_shown(version)}, not a number")
        _require(version == RECORD_VERSION, f"version is {_shown(version)}; this package reads {RECORD_VERSION}")
        missing = _choice(raw["missing"], (None, *MISSING_STRATEGIES), "missing")
        handle_unknown = _choice(raw["handle_unknown"], HANDLE_UNKNOWN, "handle_unknown")
        _require(isinstance(raw["columns"], list) and bool(raw["columns"]), "columns is not a non-empty list")
        columns = tuple(
            _column_from_record(column, missing, f"columns[{index}]") for index, column in enumerate(raw["columns"])
        )
        names = [column.name for column in columns]
        for index, name in enumerate(names):
            _require(name not in names[:index], f"columns name {name!r} twice")
    except _Refused as refused:
        raise InputError(f"{source}: the table encoding's {refused}") from None
    check_columns(columns, missing, f"{source}: the table encoding")
    return columns, missing, handle_unknown


def _column_from_record(raw: Any, missing: str | None, where: str) -> Column:
    _require(isinstance(raw, dict), f"{where} is a {type(raw).__name__}, not a dict")
    _require("kind" in raw, f"{where} has no 'kind'")
    kind = _choice(raw["kind"], ("numeric", "categorical"), f"{where}.kind")
    column = _keys(raw, _NUMERIC_KEYS if kind == "numeric" else _CATEGORICAL_KEYS, where)
    name = column["name"]
    _require(isinstance(name, str) and bool(name), f"{where}.name is {_shown(name)}, not a column name")
    if kind == "numeric":
        fill = column["fill"]
        if missing is None:
            _require(fill is None, f"{where}.fill is {_shown(fill)}, but missing cells are not imputed")
        else:
            valid = isinstance(fill, float) and math.isfinite(fill)
            _require(valid, f"{where}.fill is {_shown(fill)}, not a finite float")
        indicator = _bool(column["indicator"], f"{where}.indicator")
        _require(missing is not None or not indicator, f"{where}.indicator is true, but missing cells are not imputed")
        return NumericColumn(name, fill, indicator)
    levels = column["levels"]
    _require(
        isinstance(levels, list) and all(isinstance(level, str) and level not in MISSING_CELLS for level in levels),
        f"{where}.levels is not a list of level names",
    )
    numeric = _bool(column["numeric"], f"{where}.numeric")
    if numeric:
        values = [value for value in map(level_value, levels) if value is not None]
        _require(bool(levels) and len(values) == len(levels), f"{where}.levels are not numbers")
        _require(all(a < b for a, b in pairwise(values)), f"{where}.levels are not in increasing order")
    else:
        _require(all(a < b for a, b in pairwise(levels)), f"{where}.levels are not distinct and sorted")
        _require(not levels or any(level_value(level) is None for level in levels), f"{where}.levels are numbers")
    missing_level = _bool(column["missing_level"], f"{where}.missing_level")
    _require(missing is not None or not missing_level, f"{where}.missing_level is true, but missing is not set")
    _require(bool(levels) or missing_level, f"{where} has no level")
    drop_first = _bool(column["drop_first"], f"{where}.drop_first")
    return CategoricalColumn(name, tuple(levels), numeric, missing_level, drop_first)
