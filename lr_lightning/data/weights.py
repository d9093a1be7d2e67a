r"""Sample weights: a non-negative number per row, read from a column or given as an array, checked once.

A row of weight :math:`w_i` counts :math:`w_i` times in every sum of a fit: the loss is the weighted mean
:math:`\sum_i w_i \ell_i / \sum_i w_i`, and the standardization, the metrics that can be weighted, the exact solver,
the optimality gap and the inference table use the same weights (weighted least squares). Integer weights give the
fit of the rows repeated that many times. A row of weight 0 is as if absent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lr_lightning.data.readers.csv_scan import parse_number
from lr_lightning.errors import InputError

__all__ = ["check_weight_column", "check_weights", "parse_weights", "require_positive"]


def check_weight_column(
    path: str,
    columns: Sequence[str],
    weights: str,
    roles: Sequence[tuple[str, Sequence[str] | None]],
    *,
    required: bool = True,
) -> None:
    """Refuse a weight column the file lacks, or one also chosen as a feature or a target.

    Args:
        path: the file, for messages.
        columns: the file's column names.
        weights: the weight column (the ``weights`` option).
        roles: the columns the user chose by role, ``("feature", features)`` and ``("target", targets)``; ``None``:
            not chosen.
        required: whether the file must have the column (a file to predict on need not).

    Raises:
        InputError: naming the file and the column.

    """
    if required and weights not in columns:
        raise InputError(f"{path}: no weight column {weights!r} (weights); the columns are {list(columns)}")
    for role, names in roles:
        if names is not None and weights in names:
            raise InputError(f"{path}: column {weights!r} is both a {role} and the weights")


def parse_weights(cells: Sequence[str], column: str, name_row: Callable[[int], str]) -> np.ndarray:
    """Read a weight column's cells (text, as the file holds them) into float64 weights (N,), checked.

    A cell is read as numpy's parser reads a numeric column (:func:`~lr_lightning.data.readers.csv_scan.parse_number`):
    ``1_000`` and non-ASCII digits, which Python's ``float()`` would take, are not numbers.

    Raises:
        InputError: a cell that is empty or not a number, naming its row and the column.

    """
    weights = np.empty(len(cells))
    for row, cell in enumerate(cells):
        value = parse_number(cell)
        if value is None:
            shown = "an empty cell" if not cell.strip() else repr(cell)
            raise InputError(f"{name_row(row)}, column {column!r}: {shown} is not a weight (weights are numbers >= 0)")
        weights[row] = value
    return check_weights(weights, column, name_row)


def check_weights(weights: object, column: str, name_row: Callable[[int], str], rows: int | None = None) -> np.ndarray:
    """Return weights as float64 (N,), refusing a wrong shape, NaN, infinity or a negative weight.

    Args:
        weights: one number per row (an array or a column's values).
        column: what the weights are called in messages (the column's name, or ``"weights"``).
        name_row: how messages name row ``i``.
        rows: the number of rows the weights must have; ``None``: any.

    """
    try:
        values = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{column}: weights must be numbers, one per row") from None
    if values.ndim != 1 or (rows is not None and len(values) != rows):
        expected = f"({rows},)" if rows is not None else "(N,)"
        raise InputError(f"{column}: weights must have shape {expected}, one per row, got {values.shape}")
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(f"{name_row(row)}, column {column!r}: weight {values[row]} is not a number >= 0")
    return values


def require_positive(weights: np.ndarray, column: str, where: str) -> np.ndarray:
    """Return ``weights`` unless every one is 0 (nothing to fit); ``where`` names the data in the message."""
    if not weights.any():
        raise InputError(f"{where}: every weight in {column!r} is 0; at least one row must have a positive weight")
    return weights
