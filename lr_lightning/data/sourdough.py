"""The sourdough table: ten loaves, three measurements, two tasting scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.contract import ArrayData

__all__ = ["SOURDOUGH_FEATURES", "SOURDOUGH_TARGETS", "SourdoughDataModule"]

#: Proofing time (hours), acidity (pH) and starter age (days) of each loaf, shape (10, 3).
SOURDOUGH_FEATURES = np.array(
    [
        [12, 4.5, 32],
        [15, 4.2, 40],
        [18, 4.2, 45],
        [24, 4.0, 51],
        [30, 3.8, 58],
        [18, 3.8, 65],
        [15, 4.0, 70],
        [15, 4.1, 78],
        [18, 3.9, 81],
        [24, 4.0, 90],
    ],
    dtype=np.float64,
)

#: Flavour and crust scores of each loaf, shape (10, 2).
SOURDOUGH_TARGETS = np.array(
    [[70, 70], [72, 75], [80, 70], [85, 75], [85, 80], [82, 85], [90, 85], [87, 90], [85, 90], [90, 95]],
    dtype=np.float64,
)


class SourdoughDataModule(InMemoryDataModule):
    """Ten home-baked loaves: predict flavour and crust from proofing time, acidity and starter age.

    Features (D=3): ``proofing_time_h``, ``acidity_ph``, ``starter_age_days``.
    Targets (K=2): ``flavour``, ``crust``.

    With ten rows there is nothing to spare for held-out splits, so by default every stage (train, val, test,
    predict) uses all ten rows: the validation loss is then the training loss, which is what a tutorial on
    fitting the table wants to watch. Set ``val_fraction``/``test_fraction`` to hold rows out instead.

    Standardizing the features (the default) is recommended: the raw columns differ in scale by a factor of 20,
    which is what made the notebook's plain gradient descent crawl.

    Args:
        batch_size: rows per batch; 10 (the default) is full-batch gradient descent.
        kwargs: the options every DataModule shares (``val_fraction``, ``test_fraction``, ``standardize``, ``seed``,
            ...), as documented in :class:`~lr_lightning.data.base.InMemoryDataModule`.

    """

    def __init__(self, batch_size: int = 10, **kwargs: Any) -> None:
        super().__init__(batch_size=batch_size, **kwargs)

    def load_arrays(self) -> ArrayData:
        """Return the embedded table."""
        return ArrayData(
            features=SOURDOUGH_FEATURES.copy(),
            targets=SOURDOUGH_TARGETS.copy(),
            feature_names=["proofing_time_h", "acidity_ph", "starter_age_days"],
            target_names=["flavour", "crust"],
        )
