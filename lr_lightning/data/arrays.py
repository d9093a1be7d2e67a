"""Arrays the caller already holds, served like any other DataModule: for Python use, tests and benchmarks."""

from __future__ import annotations

from typing import Any

import numpy as np

from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.checks import class_labels
from lr_lightning.data.contract import TASKS, ArrayData
from lr_lightning.data.weights import check_weights, require_positive
from lr_lightning.errors import require

__all__ = ["ArraysDataModule"]


class ArraysDataModule(InMemoryDataModule):
    """Features X (N, D) and targets y (N,) or (N, K), or class labels (N,), passed in from Python.

    The scikit-learn way of handing data over (``fit(X, y)``); the base does the rest (seeded split, scaling
    fitted on the training rows, fast batches). Not for configs: arrays are not plain YAML values.

    Args:
        features: X of shape (N, D).
        targets: y of shape (N,) or (N, K) for regression; integer labels in ``0..C-1`` for classification.
        task: ``"regression"`` or ``"classification"``.
        feature_names: D names; default ``x0, x1, ...``.
        target_names: K names (regression); default ``y`` or ``y0, y1, ...``.
        class_names: C names (classification); default ``"0", "1", ...``.
        weights: sample weights (N,), numbers >= 0, not all 0 (scikit-learn's ``sample_weight``); ``None``: every
            row weighs 1. See :mod:`lr_lightning.data.weights`.
        kwargs: the options every DataModule shares (``batch_size``, ``val_fraction``, ``test_fraction``,
            ``standardize``, ...), as documented in :class:`~lr_lightning.data.base.InMemoryDataModule`; the
            fractions default to 0 (every stage uses all rows), as for a scikit-learn ``fit``.

    """

    def __init__(
        self,
        features: np.ndarray,
        targets: np.ndarray,
        task: str = "regression",
        feature_names: list[str] | None = None,
        target_names: list[str] | None = None,
        class_names: list[str] | None = None,
        weights: np.ndarray | None = None,
        **kwargs: Any,
    ) -> None:
        require(task in TASKS, "task", f"one of {', '.join(TASKS)}", task)
        super().__init__(**kwargs)
        self.task = task
        self._arrays = (features, targets)
        rows = len(features)
        if weights is not None:
            weights = require_positive(check_weights(weights, "weights", _array_row, rows), "weights", "the arrays")
        self._weights = weights
        self._names = (feature_names, target_names, class_names)

    def load_arrays(self) -> ArrayData:
        """Return the arrays with their names."""
        features, targets = self._arrays
        feature_names, target_names, class_names = self._names
        feature_names = feature_names or [f"x{j}" for j in range(features.shape[1])]
        if self.task == "classification":
            labels = class_labels(np.asarray(targets).reshape(-1), "the arrays")
            class_names = class_names or [str(c) for c in range(int(labels.max(initial=-1)) + 1)]
            return ArrayData(
                features,
                labels,
                feature_names,
                ["label"],
                class_names=class_names,
                source="the arrays",
                weights=self._weights,
            )
        targets = np.asarray(targets)
        targets = targets.reshape(len(targets), -1)
        if target_names is None:
            target_names = ["y"] if targets.shape[1] == 1 else [f"y{k}" for k in range(targets.shape[1])]
        return ArrayData(features, targets, feature_names, target_names, source="the arrays", weights=self._weights)


def _array_row(row: int) -> str:
    """Name row ``row`` of arrays passed in from Python."""
    return f"the arrays, row {row}"
