"""What a reader returns (:class:`Table`) and how every format picks its feature and target columns by name."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lr_lightning.errors import InputError

if TYPE_CHECKING:
    from lr_lightning.data.readers.csv_scan import Lines

__all__ = ["Table", "as_names", "check_unique", "choose_columns", "require_feature_columns", "resolve_columns"]


@dataclass
class Table:
    """The columns read from one file: features (n, D) numeric, targets (n, K) numeric or (n,) raw labels.

    Attributes:
        features: the feature columns, in the order of ``feature_names``.
        targets: the target columns, or a predict file's ``None``; for classification, one column of labels as
            the file holds them (text or numbers), encoded later across all files (:mod:`.labels`).
        feature_names: the names messages and the model use for the feature columns.
        target_names: the names of the target columns (empty for a predict file).
        lines: for a CSV whose rows were scanned (always when it has a label column), its skipped lines, to turn
            row indices into line numbers; ``None`` for arrays, whose rows are counted from 0.
        too_large: the message naming the first cell beyond float32's range, if any (see
            :attr:`~lr_lightning.data.contract.ArrayData.too_large_for_float32`).

    """

    features: np.ndarray
    targets: np.ndarray | None
    feature_names: list[str]
    target_names: list[str]
    lines: Lines | None = None
    too_large: str | None = None

    def row_number(self, row: int) -> int:
        """Return how messages name row ``row`` (0-based): a CSV's line number, an array's index."""
        return self.lines.line_of(row) if self.lines is not None else row


def as_names(value: str | Sequence[str] | None) -> list[str] | None:
    """Return column names as a list of text: one name (a YAML scalar may be a number) or several; ``None`` stays."""
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return [str(value)]
    return [str(v) for v in value]


def check_unique(names: Sequence[str], what: str, where: str) -> None:
    """Refuse repeated names: a column chosen by a name that two columns share would be a guess."""
    duplicates = sorted(name for name, count in collections.Counter(names).items() if count > 1)
    if duplicates:
        raise InputError(f"{where}: duplicate {what} {duplicates}; names must be unique")


def resolve_columns(
    available: list[str],
    features: list[str] | None,
    targets: list[str] | None,
    where: str,
) -> tuple[list[str], list[str]]:
    """Pick feature and target column names: by name, or the last column as target and the rest as features."""
    for role, chosen in (("feature", features), ("target", targets)):
        missing = [name for name in chosen or [] if name not in available]
        if missing:
            raise InputError(f"{where}: no {role} column {missing[0]!r}; the columns are {available}")
    if targets is None:
        targets = [available[-1]]
    if features is None:
        features = [name for name in available if name not in targets]
    overlap = sorted(set(features) & set(targets))
    if overlap:
        raise InputError(f"{where}: column {overlap[0]!r} is both a feature and a target")
    if not features:
        raise InputError(f"{where}: no feature columns left besides the targets {targets}")
    check_unique(features, "feature names", where)
    check_unique(targets, "target names", where)
    if not targets:
        raise InputError(f"{where}: no target column")
    return features, targets


def require_feature_columns(path: Path, header: list[str], features: list[str]) -> None:
    """Check that a predict file has every feature column of the training file, by name (in any order)."""
    missing = [name for name in features if name not in header]
    if missing:
        raise InputError(
            f"{path}: no feature column {missing[0]!r}; the model takes {features} (the file has {header})"
        )


def choose_columns(
    path: Path, header: list[str], features: list[str] | None, targets: list[str] | None, need_targets: bool
) -> tuple[list[str], list[str]]:
    """Return the feature and target column names of a file whose columns are ``header``.

    A training or evaluation file resolves them (:func:`resolve_columns`); a predict file must have the model's
    feature columns, and its targets are read when every one of them is there (the actual values, to compare
    with the predictions), else none.
    """
    if need_targets:
        return resolve_columns(header, features, targets, str(path))
    assert features is not None
    require_feature_columns(path, header, features)
    if targets and all(name in header for name in targets):
        return resolve_columns(header, features, targets, str(path))
    check_unique(features, "feature names", str(path))
    return features, []
