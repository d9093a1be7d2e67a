"""The course notebook's four points on the line y = 3x + 1."""

from __future__ import annotations

from typing import Any

import numpy as np

from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.contract import ArrayData

__all__ = ["LINE_X", "LINE_Y", "LineDataModule"]

#: The notebook's inputs, shape (4, 1).
LINE_X = np.array([[1.0], [2.0], [5.0], [-1.0]])

#: Their targets y = 3x + 1, shape (4, 1).
LINE_Y = 3.0 * LINE_X + 1.0


class LineDataModule(InMemoryDataModule):
    """Four points on y = 3x + 1: one feature ``x``, one target ``y``; every stage uses all four.

    The notebook fitted them with plain gradient descent (lr 1e-4, the intercept as a second, constant feature)
    and needed 17,695 steps to bring the MSE below 3e-3. The exact answer is slope 3, intercept 1, MSE 0.

    Args:
        batch_size: rows per batch; 4 (the default) is full-batch gradient descent.
        shuffle: reshuffle the rows each epoch (irrelevant for full batches).
        kwargs: the options every DataModule shares (``standardize``, ``seed``, ...), as documented in
            :class:`~lr_lightning.data.base.InMemoryDataModule`; ``standardize`` centres ``x`` on the four points
            (mean 1.75, std 2.17).

    """

    def __init__(self, batch_size: int = 4, shuffle: bool = False, **kwargs: Any) -> None:
        super().__init__(batch_size=batch_size, shuffle=shuffle, **kwargs)

    def load_arrays(self) -> ArrayData:
        """Return the four points."""
        return ArrayData(features=LINE_X.copy(), targets=LINE_Y.copy(), feature_names=["x"], target_names=["y"])
