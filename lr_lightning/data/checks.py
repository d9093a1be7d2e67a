"""Checks of freshly loaded arrays and of what each stage needs; every user mistake is an InputError naming it.

No Lightning here. :func:`validate_arrays` checks shapes, finiteness and labels once, when the data is loaded;
:func:`stage_problems` finds what would stop ``fit``, ``validate`` or ``test`` (too few rows in a split, a single
class in the training rows) so that the stage is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from lr_lightning.data.contract import TASKS, ArrayData
from lr_lightning.data.rows import CHUNK_ROWS, PageReleaser
from lr_lightning.errors import InputError

if TYPE_CHECKING:
    from lr_lightning.data.stores.base import RowSplit

__all__ = [
    "FLOAT32_MAX",
    "check_finite",
    "class_labels",
    "float32_overflow_message",
    "split_sizes",
    "stage_problems",
    "validate_arrays",
]

#: The largest magnitude a float32 holds (about 3.4e38); training is float32 unless the trainer runs in float64.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def float32_overflow_message(where: str, value: str) -> str:
    """Say that a cell (``where``: file, row and column) holds a value float32 cannot hold, and what to do."""
    return (
        f"{where}: {value} is too large for float32, the training dtype (largest magnitude {FLOAT32_MAX:.4g}); "
        "rescale the column, or train in float64 with trainer.precision: 64-true"
    )


def check_finite(values: np.ndarray, column_names: Sequence[str], where: str, first_row: int = 0) -> str | None:
    """Raise :class:`InputError` naming the first NaN or infinite cell of a 2-D array; report values beyond float32.

    One pass over the array (a memmap is read once). Float64 (and wider) arrays are also searched for finite
    values whose magnitude exceeds float32's (about 3.4e38): they are fine in float64 but become infinite when
    cast to float32, so whether they are an error depends on the trainer's precision, which is not known yet.

    Args:
        values: array of shape (N, C), any dtype (only floating point is checked).
        column_names: C column names, for the message.
        where: what the array is (``"data/houses.csv"``), for the message.
        first_row: number to report for row 0 (e.g. 2 for a CSV whose line 1 is the header).

    Returns:
        The message naming the first cell too large for float32 (see :func:`float32_overflow_message`), or
        ``None`` when every value fits.

    Raises:
        InputError: a cell is NaN or infinite.

    """
    if not np.issubdtype(values.dtype, np.floating):
        return None
    wide = values.dtype.itemsize > 4  # only float64 and wider can hold finite values beyond float32's range
    too_large = None
    release = PageReleaser(values)  # a memmap is read once here: do not leave it resident
    for start in range(0, values.shape[0], CHUNK_ROWS):
        chunk = values[start : start + CHUNK_ROWS]
        if wide and too_large is None:
            outside = ~(np.abs(chunk) <= FLOAT32_MAX)  # NaN compares false: caught here too
            if outside.any():
                _raise_non_finite(chunk, column_names, where, start + first_row)
                row, column = (int(i) for i in np.argwhere(outside)[0])
                cell = f"{where}, row {start + row + first_row}, column {column_names[column]!r}"
                too_large = float32_overflow_message(cell, f"{chunk[row, column]:.6g}")
        else:
            _raise_non_finite(chunk, column_names, where, start + first_row)
        release()
    return too_large


def _raise_non_finite(chunk: np.ndarray, column_names: Sequence[str], where: str, first_row: int) -> None:
    """Raise :class:`InputError` naming the first NaN or infinite cell of ``chunk``, whose row 0 is ``first_row``."""
    bad = ~np.isfinite(chunk)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{where}, row {row + first_row}, column {column_names[column]!r}: {chunk[row, column]} is not a finite "
            "number (remove or fill the missing values)"
        )


def split_sizes(n_rows: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """``(n_train, n_val, n_test)`` of ``n_rows`` rows cut by the fractions; refuse a split that leaves a set empty."""
    n_val = round(n_rows * val_fraction)
    n_test = round(n_rows * test_fraction)
    n_train = n_rows - n_val - n_test
    if n_train < 1 or (val_fraction > 0 and n_val < 1) or (test_fraction > 0 and n_test < 1):
        raise InputError(
            f"cannot split {n_rows} rows with val_fraction={val_fraction} and test_fraction={test_fraction}: "
            f"that leaves {n_train} train, {n_val} val and {n_test} test rows"
        )
    return n_train, n_val, n_test


def class_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Labels (N,) of any numeric dtype as int64 class indices; refuse continuous values, naming the row.

    A float target holding 0.5 is a regression target given to a classifier: casting it to an integer would
    silently train on the wrong classes.
    """
    labels = np.asarray(labels)
    if np.issubdtype(labels.dtype, np.floating):
        fractional = ~np.isfinite(labels) | (labels != np.round(labels))
        if fractional.any():
            row = int(np.argmax(fractional))
            raise InputError(
                f"{where}: the labels look continuous (row {row} holds {labels[row].item()!r}); a classifier needs "
                "class labels: use a regression model (task: regression) for continuous targets"
            )
    elif not np.issubdtype(labels.dtype, np.integer) and labels.dtype != np.bool_:
        raise InputError(f"{where}: class labels must be integers, got an array of dtype {labels.dtype}")
    return labels.astype(np.int64)


def label_column(data: ArrayData) -> str:
    """Return the name of the label column of classification data, for messages."""
    return data.target_names[0] if data.target_names else "label"


def validate_arrays(data: ArrayData, task: str) -> None:
    """Check shapes, finiteness and labels of freshly loaded arrays; raise InputError naming the problem.

    Also records in ``data.too_large_for_float32`` the first value float32 cannot hold. The values themselves are
    read only when the loader has not checked them (``data.values_checked``).
    """
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    features, targets = data.features, data.targets
    where = data.source
    if features.ndim != 2:
        raise InputError(f"{where}: features must be a 2-D array (rows, columns), got shape {features.shape}")
    if features.shape[0] == 0 or features.shape[1] == 0:
        raise InputError(f"{where}: no data (features of shape {features.shape})")
    if targets.shape[0] != features.shape[0]:
        raise InputError(f"{where}: {features.shape[0]} rows of features but {targets.shape[0]} rows of targets")
    if data.weights is not None and data.weights.shape != (features.shape[0],):
        raise InputError(f"{where}: {features.shape[0]} rows but weights of shape {data.weights.shape}")
    if len(data.feature_names) != features.shape[1]:
        raise InputError(f"{where}: {len(data.feature_names)} feature names for {features.shape[1]} features")
    if task == "regression" and targets.ndim not in (1, 2):
        raise InputError(f"{where}: targets must be 1-D or 2-D, got shape {targets.shape}")
    if task == "classification":
        _validate_labels(data)
    predict = data.predict_features
    if predict is not None and (predict.ndim != 2 or predict.shape[1] != features.shape[1]):
        raise InputError(
            f"{where}: the predict data has shape {predict.shape} but the model takes {features.shape[1]} features"
        )
    actual = data.predict_targets
    if actual is not None and (predict is None or actual.shape[0] != predict.shape[0]):
        raise InputError(f"{where}: the predict data's targets have {actual.shape[0]} rows, its features do not")
    if data.values_checked:
        return
    too_large = [check_finite(features, data.feature_names, where)]
    if task == "regression":
        too_large.append(check_finite(targets.reshape(len(targets), -1), data.target_names, where))
    if predict is not None:
        too_large.append(check_finite(predict, data.feature_names, f"{where} (predict)"))
    if data.too_large_for_float32 is None:
        data.too_large_for_float32 = next((message for message in too_large if message), None)


def _validate_labels(data: ArrayData) -> None:
    """Classification labels: integers of shape (N,) in ``0..C-1``, with at least two class names."""
    where, targets, class_names = data.source, data.targets, data.class_names
    if class_names is not None and len(class_names) == 1:
        raise InputError(
            f"{where}, column {label_column(data)!r}: every row holds the same class ({class_names[0]}); a "
            "classifier needs at least two"
        )
    if class_names is None or len(class_names) < 2:
        raise InputError(f"{where}: classification needs at least two classes, got {class_names}")
    if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
        raise InputError(f"{where}: class labels must be integers of shape (N,), got {targets.dtype} {targets.shape}")
    outside = (targets < 0) | (targets >= len(class_names))
    if outside.any():
        row = int(np.argmax(outside))
        raise InputError(f"{where}, row {row}: label {targets[row]} outside 0..{len(class_names) - 1}")


def _weightless_splits(data: ArrayData, split: RowSplit, how: str) -> dict[str, str]:
    """Name each stage whose rows all have weight 0: its weighted loss and metrics would divide by zero."""
    if data.weights is None:
        return {}
    problems = {}
    for stage, name, label in (
        ("fit", "train", "training"),
        ("validate", "val", "validation"),
        ("test", "test", "test"),
    ):
        if not data.weights[split.source_rows(name)].any():
            problems[stage] = f"{data.source}: every {label} row has weight 0 ({how}); nothing to {stage} on"
    if "validate" in problems:
        problems.setdefault("fit", problems["validate"])  # fit validates every epoch
    return problems


def stage_problems(
    data: ArrayData, task: str, split: RowSplit, val_fraction: float, test_fraction: float
) -> dict[str, str]:
    """Find, when the data is loaded, what would stop a stage; the DataModule raises it when that stage starts.

    Training needs at least two rows and, for classification, two classes in the training split; a regression
    model's R² needs at least two rows in the validation (used by ``fit`` and ``validate``) and test splits. Only
    messages are kept: the data may still serve other stages (a one-row file may be predicted on).

    Args:
        data: the checked arrays.
        task: ``"regression"`` or ``"classification"``.
        split: which rows each split holds (see :class:`~lr_lightning.data.stores.base.RowSplit`).
        val_fraction: the option that made the split, for messages.
        test_fraction: likewise.

    Returns:
        Messages by stage (``"fit"``, ``"validate"``, ``"test"``); empty when every stage can run.

    """
    if data.unlabelled is not None:
        return dict.fromkeys(("fit", "validate", "test"), data.unlabelled)
    where = data.source
    n_rows = data.features.shape[0]
    n_train, n_val, n_test = (split.size(name) for name in ("train", "val", "test"))
    if data.split_sizes is not None:
        how = "all rows of the file"
    else:
        rows = f"{n_rows} row{'' if n_rows == 1 else 's'} in all"
        how = f"{rows}, val_fraction={val_fraction}, test_fraction={test_fraction}"
    if n_train < 2:
        return {"fit": f"{where}: the training split needs at least 2 rows, but it has {n_train} ({how})"}
    problems = _weightless_splits(data, split, how)
    if problems:
        return problems
    if task == "regression":
        sources = data.split_sources if data.split_sizes is not None and data.split_sources else (None, None)
        for stage, name, size, source, fraction in (
            ("validate", "validation", n_val, sources[0], "val_fraction"),
            ("test", "test", n_test, sources[1], "test_fraction"),
        ):
            if size < 2:
                hint = "" if source else f"; raise {fraction}, or set it to 0 to use all rows"
                problems[stage] = (
                    f"{source or where}: the {name} split has {size} row, but R² needs at least 2 ({how}){hint}"
                )
        if "validate" in problems:
            problems["fit"] = problems["validate"]  # fit validates every epoch
        return problems
    assert data.class_names is not None  # validate_arrays made sure
    present = np.unique(split.gather(data.targets, "train", np.int64))
    if len(present) < 2:
        problems["fit"] = (
            f"{where}, column {label_column(data)!r}: the training rows hold a single class "
            f"({data.class_names[int(present[0])]}) of the {len(data.class_names)} in the data; a classifier "
            "needs at least two (change seed or val_fraction/test_fraction, or add rows of the other classes)"
        )
    return problems
