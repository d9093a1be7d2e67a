"""The shared base of every DataModule: arrays in memory, seeded splits, scaling fitted on train, fast loaders.

A subclass only says where its arrays come from (:meth:`InMemoryDataModule.load_arrays`); everything else —
splitting, standardization, batching, sharding under DDP — lives here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from lr_lightning.data.loader import InMemoryBatchLoader

__all__ = ["ArrayData", "InMemoryDataModule", "ScalingStatistics"]


@dataclass
class ArrayData:
    """Arrays a DataModule serves.

    Attributes:
        features: X of shape (N, D), floating point.
        targets: Y of shape (N, K) for regression (floating point) or labels of shape (N,) for classification.
        feature_names: D column names.
        target_names: K target names (regression) or the name of the label column (classification).

    """

    features: np.ndarray
    targets: np.ndarray
    feature_names: list[str]
    target_names: list[str]


@dataclass
class ScalingStatistics:
    """Affine maps fitted on the training rows; the model stores them as buffers so checkpoints work in raw units.

    Attributes:
        feature_mean: shape (D,); zeros when features are not standardized.
        feature_scale: shape (D,); ones when features are not standardized.
        target_mean: shape (K,); zeros when targets are not standardized (always for classification).
        target_scale: shape (K,); ones when targets are not standardized.

    """

    feature_mean: Tensor
    feature_scale: Tensor
    target_mean: Tensor
    target_scale: Tensor


def _split_sizes(n_rows: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    n_val = round(n_rows * val_fraction)
    n_test = round(n_rows * test_fraction)
    n_train = n_rows - n_val - n_test
    if n_train < 1 or (val_fraction > 0 and n_val < 1) or (test_fraction > 0 and n_test < 1):
        raise ValueError(
            f"cannot split {n_rows} rows with val_fraction={val_fraction} and test_fraction={test_fraction}: "
            f"that leaves {n_train} train, {n_val} val and {n_test} test rows"
        )
    return n_train, n_val, n_test


class InMemoryDataModule(pl.LightningDataModule, ABC):
    """Serve features and targets held in memory, split by a seed, with scaling fitted on the training split.

    Splits: the rows are permuted once with ``seed`` and cut into train, val and test blocks of the requested
    fractions; the tensors are stored in that order, so each split is a contiguous view (one copy of the data,
    not one per split). A fraction of 0 means that stage uses *all* rows, which is the right default for tiny
    tables (the 10-row sourdough data) where holding rows out leaves nothing to learn from.

    Scaling: with ``standardize=True`` each feature is centred and divided by its standard deviation over the
    training rows only (population std, as scikit-learn's ``StandardScaler``; a constant column keeps scale 1).
    The model receives these statistics as buffers and applies them itself, so it always takes raw features.

    Args:
        batch_size: rows per training batch (>= 1); evaluation uses the same size.
        val_fraction: share of rows held out for validation, in [0, 1); 0 validates on all rows.
        test_fraction: share of rows held out for testing, in [0, 1); 0 tests on all rows.
        standardize: standardize features with statistics of the training rows.
        standardize_targets: standardize regression targets too (the loss is then in standardized units).
        shuffle: reshuffle training rows every epoch (seeded by ``seed + epoch``).
        seed: seed of the split and of the shuffles.

    """

    task: str = "regression"

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
        standardize: bool = True,
        standardize_targets: bool = False,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1 to leave training rows, got {val_fraction + test_fraction}"
            )
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.standardize = standardize
        self.standardize_targets = standardize_targets
        self.shuffle = shuffle
        self.seed = seed
        self._data: ArrayData | None = None
        self._features: Tensor | None = None  # (N, D), rows in split order
        self._targets: Tensor | None = None  # (N, K) or (N,)
        self._splits: dict[str, slice] = {}
        self._scaling: ScalingStatistics | None = None

    def __repr__(self) -> str:
        # LightningDataModule's own __str__ builds every dataloader (loading the data) just to print sizes.
        fields = ("batch_size", "val_fraction", "test_fraction", "standardize", "seed")
        return f"{type(self).__name__}({', '.join(f'{name}={getattr(self, name)!r}' for name in fields)})"

    __str__ = __repr__

    # -- what a subclass provides -------------------------------------------------------------------------------

    @abstractmethod
    def load_arrays(self) -> ArrayData:
        """Return the whole dataset; called once, lazily, the first time the data or its shape is needed."""

    # -- shape and names, available right after construction (the CLI links them into the model) -----------------

    @property
    def data(self) -> ArrayData:
        """The dataset, loaded on first use."""
        if self._data is None:
            self._data = self.load_arrays()
        return self._data

    @property
    def num_features(self) -> int:
        """D, the number of input features."""
        return int(self.data.features.shape[1])

    @property
    def num_targets(self) -> int:
        """K, the number of regression targets."""
        targets = self.data.targets
        return 1 if targets.ndim == 1 else int(targets.shape[1])

    @property
    def feature_names(self) -> list[str]:
        """Names of the D features."""
        return list(self.data.feature_names)

    @property
    def target_names(self) -> list[str]:
        """Names of the K targets."""
        return list(self.data.target_names)

    # -- Lightning hooks ------------------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Split the rows (once) and fit the scaling on the training rows."""
        if self._features is not None:
            return
        data = self.data
        n_rows = data.features.shape[0]
        n_train, n_val, n_test = _split_sizes(n_rows, self.val_fraction, self.test_fraction)
        held_out = n_val + n_test
        if held_out:
            order = np.random.default_rng(self.seed).permutation(n_rows)
            features, targets = data.features[order], data.targets[order]
        else:
            features, targets = data.features, data.targets
        self._features = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32))
        self._targets = self._targets_to_tensor(np.ascontiguousarray(targets))
        everything = slice(0, n_rows)
        self._splits = {
            "train": slice(0, n_train),
            "val": slice(n_train, n_train + n_val) if n_val else everything,
            "test": slice(n_train + n_val, n_rows) if n_test else everything,
            "predict": everything,
        }
        self._scaling = self._fit_scaling()

    def _targets_to_tensor(self, targets: np.ndarray) -> Tensor:
        """Regression targets as float32 of shape (N, K); classification overrides this for labels."""
        if targets.ndim == 1:
            targets = targets[:, None]
        return torch.as_tensor(targets.astype(np.float32, copy=False))

    def _fit_scaling(self) -> ScalingStatistics:
        x_train, y_train = self.split_tensors("train")
        num_features = x_train.shape[1]
        if self.standardize:
            feature_mean = x_train.double().mean(dim=0)
            feature_scale = x_train.double().std(dim=0, correction=0)
            feature_scale[feature_scale == 0] = 1.0
        else:
            feature_mean, feature_scale = torch.zeros(num_features), torch.ones(num_features)
        num_outputs = y_train.shape[1] if y_train.ndim == 2 else 1
        if self.standardize_targets and self.task == "regression":
            target_mean = y_train.double().mean(dim=0)
            target_scale = y_train.double().std(dim=0, correction=0)
            target_scale[target_scale == 0] = 1.0
        else:
            target_mean, target_scale = torch.zeros(num_outputs), torch.ones(num_outputs)
        return ScalingStatistics(
            feature_mean=feature_mean.float(),
            feature_scale=feature_scale.float(),
            target_mean=target_mean.float(),
            target_scale=target_scale.float(),
        )

    def scaling_statistics(self) -> ScalingStatistics:
        """Scaling fitted on the training rows (call after ``setup``)."""
        if self._scaling is None:
            self.setup("fit")
        assert self._scaling is not None
        return self._scaling

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor]:
        """Raw features (n, D) and targets of one split: ``train``, ``val``, ``test`` or ``predict``."""
        if self._features is None:
            self.setup("fit")
        assert self._features is not None and self._targets is not None
        rows = self._splits[split]
        return self._features[rows], self._targets[rows]

    def _loader(self, split: str, shuffle: bool, tensors: tuple[Tensor, ...]) -> InMemoryBatchLoader:
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return InMemoryBatchLoader(
            *tensors,
            batch_size=self.batch_size,
            shuffle=shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world_size,
        )

    def train_dataloader(self) -> InMemoryBatchLoader:
        """Shuffled (seed + epoch) batches of the training rows."""
        return self._loader("train", self.shuffle, self.split_tensors("train"))

    def val_dataloader(self) -> InMemoryBatchLoader:
        """Batches of the validation rows, in order."""
        return self._loader("val", False, self.split_tensors("val"))

    def test_dataloader(self) -> InMemoryBatchLoader:
        """Batches of the test rows, in order."""
        return self._loader("test", False, self.split_tensors("test"))

    def predict_dataloader(self) -> InMemoryBatchLoader:
        """Batches of features only, in row order, so predictions line up with the input rows."""
        features, _ = self.split_tensors("predict")
        return self._loader("predict", False, (features,))
