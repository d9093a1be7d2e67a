"""Synthetic data from scikit-learn's generators, with the true parameters kept for tests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.contract import ArrayData
from lr_lightning.errors import require

__all__ = ["SyntheticClassificationDataModule", "SyntheticRegressionDataModule"]


class GeneratedDataModule(InMemoryDataModule):
    """Rows drawn by one of scikit-learn's generators, seeded by ``seed``: N rows of D features.

    Args:
        n_samples: N, the number of rows (>= 1).
        n_features: D, the number of features (>= 1).
        val_fraction: share of rows held out for validation (0 validates on all rows).
        test_fraction: share of rows held out for testing (0 tests on all rows).
        kwargs: the options every DataModule shares (``batch_size``, ``standardize``, ``seed``, ...), as
            documented in :class:`~lr_lightning.data.base.InMemoryDataModule`; ``seed`` also draws the data.

    """

    def __init__(
        self, n_samples: int, n_features: int, val_fraction: float = 0.2, test_fraction: float = 0.1, **kwargs: Any
    ) -> None:
        super().__init__(val_fraction=val_fraction, test_fraction=test_fraction, **kwargs)
        require(n_samples >= 1, "n_samples", ">= 1", n_samples)
        require(n_features >= 1, "n_features", ">= 1", n_features)
        self.n_samples, self.n_features = n_samples, n_features


class SyntheticClassificationDataModule(GeneratedDataModule):
    """Labelled clusters from :func:`sklearn.datasets.make_classification` for the logistic model.

    Each class is a Gaussian cluster (or two, scikit-learn's default) around vertices of a hypercube of side
    ``2 * class_sep`` in the ``n_informative`` informative dimensions; the other features are random linear
    combinations of those (redundant) or noise. Labels are int64 in ``0..n_classes-1`` and the classes are named
    ``"0"``, ``"1"``, ...

    Args:
        n_samples: N, the number of rows.
        n_features: D, the number of features.
        n_informative: features that carry the class signal (<= ``n_features``).
        n_classes: C >= 2.
        class_sep: distance of the class clusters (larger is easier).
        kwargs: ``val_fraction`` (0.2), ``test_fraction`` (0.1) and the options every DataModule shares: see
            :class:`GeneratedDataModule`.

    """

    task = "classification"

    def __init__(
        self,
        n_samples: int = 1000,
        n_features: int = 4,
        n_informative: int = 2,
        n_classes: int = 2,
        class_sep: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(n_samples, n_features, **kwargs)
        require(1 <= n_informative <= n_features, "n_informative", f"in 1..n_features={n_features}", n_informative)
        require(n_classes >= 2, "n_classes", ">= 2", n_classes)
        require(0 < class_sep < math.inf, "class_sep", "> 0 and finite", class_sep)
        self.n_informative = n_informative
        self.n_classes = n_classes
        self.class_sep = class_sep

    def load_arrays(self) -> ArrayData:
        """Draw the clusters: features (N, D) float64, labels (N,) int64."""
        # make_classification needs n_informative + n_redundant + n_repeated <= n_features; use no redundant
        # features when the informative ones leave no room for scikit-learn's default of two.
        n_redundant = min(2, self.n_features - self.n_informative)
        # One cluster per class when two per class would not fit in the informative dimensions.
        clusters_per_class = 2 if self.n_classes * 2 <= 2**self.n_informative else 1
        from sklearn.datasets import make_classification  # scikit-learn is slow to import: only when used

        features, labels = make_classification(
            n_samples=self.n_samples,
            n_features=self.n_features,
            n_informative=self.n_informative,
            n_redundant=n_redundant,
            n_classes=self.n_classes,
            n_clusters_per_class=clusters_per_class,
            class_sep=self.class_sep,
            random_state=self.seed,
        )
        return ArrayData(
            features=features,
            targets=labels.astype(np.int64),
            feature_names=[f"x{i}" for i in range(self.n_features)],
            target_names=["label"],
            class_names=[str(c) for c in range(self.n_classes)],
            source=f"make_classification(n_samples={self.n_samples}, n_features={self.n_features})",
        )


class SyntheticRegressionDataModule(GeneratedDataModule):
    r"""Linear data with known coefficients from :func:`sklearn.datasets.make_regression`.

    :math:`y = X w + b + \varepsilon` with standard normal features X (N, D), ``n_informative`` non-zero
    coefficients per target and Gaussian noise of standard deviation ``noise``. The true coefficients are kept in
    :attr:`true_coef` (K, D) and :attr:`true_intercept` (K,), in the same layout as a model's ``coef_`` and
    ``intercept_``, so tests and users can check what training recovered.

    Memory: scikit-learn draws float64; the module keeps a float32 copy of X for training (one copy: splits are
    views, scaling is applied per batch) and releases scikit-learn's arrays after ``setup``. 1,000,000 x 100 is
    400 MB in float32.

    Args:
        n_samples: N, the number of rows (>= 1).
        n_features: D, the number of features (>= 1).
        n_informative: features with a non-zero coefficient (<= ``n_features``); ``None`` means all of them.
        n_targets: K, the number of targets.
        noise: standard deviation of the Gaussian noise added to the targets.
        bias: the true intercept of every target.
        kwargs: ``val_fraction`` (0.2), ``test_fraction`` (0.1) and the options every DataModule shares: see
            :class:`GeneratedDataModule`. make_regression's targets have a scale of ~100: ``standardize_targets``
            helps plain SGD.

    """

    def __init__(
        self,
        n_samples: int = 1000,
        n_features: int = 10,
        n_informative: int | None = None,
        n_targets: int = 1,
        noise: float = 1.0,
        bias: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(n_samples, n_features, **kwargs)
        require(n_targets >= 1, "n_targets", ">= 1", n_targets)
        informative_ok = n_informative is None or 0 <= n_informative <= n_features
        require(informative_ok, "n_informative", f"in 0..n_features={n_features}", n_informative)
        require(0 <= noise < math.inf, "noise", ">= 0 and finite", noise)
        require(math.isfinite(bias), "bias", "finite", bias)
        self.n_informative = n_features if n_informative is None else n_informative
        self.n_targets = n_targets
        self.noise = noise
        self.bias = bias
        self.true_coef: np.ndarray | None = None
        self.true_intercept: np.ndarray | None = None

    def load_arrays(self) -> ArrayData:
        """Draw X (N, D) and Y (N, K) and remember the true coefficients (K, D)."""
        from sklearn.datasets import make_regression

        features, targets, coef = make_regression(
            n_samples=self.n_samples,
            n_features=self.n_features,
            n_informative=self.n_informative,
            n_targets=self.n_targets,
            noise=self.noise,
            bias=self.bias,
            coef=True,
            random_state=self.seed,
        )
        self.true_coef = np.asarray(coef, dtype=np.float64).reshape(self.n_features, self.n_targets).T.copy()
        self.true_intercept = np.full(self.n_targets, float(self.bias))
        return ArrayData(
            features=features,
            targets=targets.reshape(self.n_samples, self.n_targets),
            feature_names=[f"x{i}" for i in range(self.n_features)],
            target_names=[f"y{k}" for k in range(self.n_targets)],
            source=f"make_regression(n_samples={self.n_samples}, n_features={self.n_features})",
        )
