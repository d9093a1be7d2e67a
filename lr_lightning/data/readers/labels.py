"""Class labels as the files hold them (text or numbers) mapped to indices ``0..C-1`` shared by every file.

Labels never go through float64: a thirty-digit integer label, or ``9007199254740993``, stays itself and distinct
from its neighbours.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable

import numpy as np

from lr_lightning.data.readers.columns import Table
from lr_lightning.data.readers.csv_scan import SPACE
from lr_lightning.errors import InputError

__all__ = ["encode_labels"]

#: How a number may be written as a label: an integer, a decimal, an exponent, or NaN/infinity (refused).
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)

#: Integer labels with more digits than this are refused (Python prints at most 4300 digits of an int).
_MAX_LABEL_DIGITS = 4000


def _raw_labels(table: Table) -> np.ndarray:
    """Return a table's label column; only a predict file, which has no labels to encode, has none."""
    assert table.targets is not None
    return table.targets


def _distinct_labels(labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Return the distinct labels of one file as text, and for each row the index of its label in that list.

    Text is stripped of whitespace; integers (any size) are written exactly; floats as Python writes them
    (``3.0``). Nothing goes through float64 on the way, so ``9007199254740993`` stays itself.
    """
    labels = np.asarray(labels)
    unique, inverse = np.unique(labels, return_inverse=True)
    kind = labels.dtype.kind
    if kind in "iub":
        texts = [str(int(value)) for value in unique]
    elif kind == "f":
        texts = [repr(float(value)) for value in unique]
    else:
        texts = [str(value).strip(SPACE) for value in unique]
    return texts, inverse.reshape(-1)


def _integer_label(text: str) -> int | None:
    """Return the exact integer a numeric label means (``"7.0"`` and ``"7e0"`` are 7); ``None`` if not whole."""
    number = decimal.Decimal(text)
    if not number.is_finite():
        return None
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    if exponent < 0 and any(digits[exponent:]):
        return None  # a fraction: digits after the point that are not zero
    return int(number)  # exact: no float in between


def encode_labels(
    tables: list[tuple[Table, str]], column: str, known: list[str] | None = None
) -> tuple[list[np.ndarray], list[str]]:
    """Map raw labels of several files to indices ``0..C-1`` shared by all, and return the class names.

    Labels are read as text or exact integers, never through float64, so large integer labels stay distinct
    and exact. When every label of every file is a number, the classes are integers: sorted by value and named
    by that value in decimal (``"3"``, ``"7"``, ``"10"``, or all thirty digits of a thirty-digit label); ``"1"``,
    ``"1.0"`` and ``"01"`` are the one class ``"1"``, and a label that is not a whole number (``0.5``, ``nan``)
    is refused. Otherwise every label is text (``"setosa"``): sorted as text and named as written, stripped of
    surrounding whitespace (then ``"1"`` and ``"1.0"`` are two classes).

    Args:
        tables: ``(table, file name)`` per file; each table's targets are its raw labels (n,).
        column: the name of the label column, for messages.
        known: the class names, in order (a trained model's): every label must be one of them, by its text or,
            for a number, by its integer value (``"1.0"`` is class ``"1"``); ``None``: the classes found.

    Returns:
        The labels of each file as int64 indices (n,), in the order of ``tables``, and the class names.

    """
    distinct = [_distinct_labels(_raw_labels(table)) for table, _ in tables]

    def refuse(is_bad: Callable[[str], bool], problem: str) -> None:
        """Raise an error naming the first row (in file order) whose label ``is_bad``."""
        for (texts, inverse), (table, where) in zip(distinct, tables, strict=True):
            bad = [index for index, text in enumerate(texts) if is_bad(text)]
            if bad:
                row = int(np.flatnonzero(np.isin(inverse, bad))[0])
                text = texts[inverse[row]]
                raise InputError(
                    f"{where}, row {table.row_number(row)}, column {column!r}: {problem.format(label=text)}"
                )

    refuse(lambda text: not text, "empty class label")
    all_texts = {text for texts, _ in distinct for text in texts}
    if known is not None:
        class_of = {text: _known_class(text, known) for text in all_texts}
        listed = str(known).replace("{", "{{").replace("}", "}}")
        refuse(lambda text: class_of[text] < 0, f"label {{label}} is not one of the model's classes {listed}")
        encoded = [np.array([class_of[text] for text in texts], dtype=np.int64)[inverse] for texts, inverse in distinct]
        return encoded, list(known)
    if all(_NUMBER.fullmatch(text) for text in all_texts):
        refuse(
            lambda text: decimal.Decimal(text).is_finite() and decimal.Decimal(text).adjusted() >= _MAX_LABEL_DIGITS,
            f"label {{label}} has more than {_MAX_LABEL_DIGITS} digits; use text labels",
        )
        values = {text: _integer_label(text) for text in all_texts}
        refuse(
            lambda text: values[text] is None,
            "label {label} is not an integer; classification needs class labels (use task: regression for "
            "continuous targets)",
        )
        classes = sorted({value for value in values.values() if value is not None})
        class_names = [str(value) for value in classes]
        index = {value: position for position, value in enumerate(classes)}
        class_of = {text: index[value] for text, value in values.items() if value is not None}
    else:
        class_names = sorted(all_texts)
        class_of = {text: position for position, text in enumerate(class_names)}
    encoded = [np.array([class_of[text] for text in texts], dtype=np.int64)[inverse] for texts, inverse in distinct]
    return encoded, class_names


def _known_class(text: str, known: list[str]) -> int:
    """Return the index of label ``text`` among the class names ``known`` (-1 if none)."""
    if text in known:
        return known.index(text)
    if _NUMBER.fullmatch(text) and decimal.Decimal(text).adjusted() < _MAX_LABEL_DIGITS:
        value = _integer_label(text)
        if value is not None and str(value) in known:
            return known.index(str(value))
    return -1
