"""The sourdough table: ten loaves, three measurements, two tasting scores."""

from __future__ import annotations

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

    Args:
        batch_size: rows per batch; 10 (the default) is full-batch gradient descent.
        val_fraction: share of rows held out for validation; 0 uses all rows.
        test_fraction: share of rows held out for testing; 0 uses all rows.
        standardize: standardize the features on the training rows (recommended: the raw columns differ in
            scale by a factor of 20, which is what made the notebook's plain gradient descent crawl).
        standardize_targets: standardize the two scores too.
        shuffle: reshuffle training rows each epoch.
        seed: seed of the split and the shuffles.

    """

    def __init__(
        self,
        batch_size: int = 10,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
        standardize: bool = True,
        standardize_targets: bool = False,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            standardize=standardize,
            standardize_targets=standardize_targets,
            shuffle=shuffle,
            seed=seed,
        )

    def load_arrays(self) -> ArrayData:
        """Return the embedded table."""
        return ArrayData(
            features=SOURDOUGH_FEATURES.copy(),
            targets=SOURDOUGH_TARGETS.copy(),
            feature_names=["proofing_time_h", "acidity_ph", "starter_age_days"],
            target_names=["flavour", "crust"],
        )
