"""Standardization statistics from one streaming pass over the training rows, whatever store holds them.

:class:`ColumnMoments` are mergeable (Chan, Golub and LeVeque), so the pass reads a store
chunk by chunk (:meth:`~lr_lightning.data.stores.base.RowStore.chunks`), and under DDP each rank reads only its
shard of the training rows and the ranks' moments are merged in rank order: every rank holds the same statistics,
equal (up to rounding) to a single process's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lr_lightning.data.contract import ScalingStatistics
from lr_lightning.data.ranks import Ranks
from lr_lightning.data.rows import CHUNK_ROWS
from lr_lightning.data.stores.base import RowStore

__all__ = ["ColumnMoments", "fit_scaling", "split_moments"]


@dataclass
class ColumnMoments:
    r"""Count, mean and sum of squared deviations of each column over some rows, float64; mergeable.

    Attributes:
        count: number of rows n (the sum of the rows' weights when weighted).
        mean: column means, shape (C,).
        squared_deviations: :math:`M_2 = \sum_i (x_i - \bar x)^2` per column, shape (C,).

    """

    count: float
    mean: np.ndarray
    squared_deviations: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, weights: np.ndarray | None = None) -> ColumnMoments:
        r"""Moments of the rows of ``values`` (n, C), two passes over rows that are in memory.

        With ``weights`` (n,) the moments are weighted (scikit-learn's ``StandardScaler(sample_weight=...)``): the
        count is :math:`\sum_i w_i`, the mean :math:`\sum_i w_i x_i / \sum_i w_i` and
        :math:`M_2 = \sum_i w_i (x_i - \bar x)^2`.
        """
        values = values.astype(np.float64, copy=False)
        if weights is None:
            mean = values.mean(axis=0)
            return cls(len(values), mean, np.square(values - mean).sum(axis=0))
        total = float(weights.sum())
        if total == 0:
            return cls(0.0, np.zeros(values.shape[1]), np.zeros(values.shape[1]))
        mean = weights @ values / total
        return cls(total, mean, weights @ np.square(values - mean))

    def merge(self, other: ColumnMoments) -> ColumnMoments:
        r"""Moments of both sets of rows (Chan, Golub and LeVeque's pairwise update).

        .. math::

            n = n_a + n_b, \quad \delta = \bar x_b - \bar x_a, \quad
            \bar x = \bar x_a + \delta \frac{n_b}{n}, \quad
            M_2 = M_{2,a} + M_{2,b} + \delta^2 \frac{n_a n_b}{n}

        Unlike accumulating :math:`\sum x^2`, this never subtracts two large sums, so columns far from zero keep
        their precision.
        """
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        deviations = self.squared_deviations + other.squared_deviations + delta**2 * (self.count * other.count / count)
        return ColumnMoments(count, mean, deviations)

    def mean_and_std(self) -> tuple[Tensor, Tensor]:
        """Mean and population standard deviation, float64 tensors of shape (C,)."""
        std = np.sqrt(self.squared_deviations / self.count)
        return torch.from_numpy(self.mean.copy()), torch.from_numpy(std)

    def pack(self) -> np.ndarray:
        """``[count, mean..., squared_deviations...]`` as one float64 vector, to gather across processes."""
        return np.concatenate([[float(self.count)], self.mean, self.squared_deviations])

    @classmethod
    def unpack(cls, packed: np.ndarray) -> ColumnMoments:
        """Rebuild the moments packed by :meth:`pack`."""
        width = (len(packed) - 1) // 2
        return cls(float(packed[0]), packed[1 : 1 + width], packed[1 + width :])


def split_moments(
    store: RowStore, split: str, ranks: Ranks | None = None, chunk_rows: int = CHUNK_ROWS
) -> tuple[ColumnMoments, ColumnMoments]:
    """Moments of the features and of the targets of ``split``, in one streaming pass over the store.

    With several ``ranks``, this rank reads its shard only and the shards' moments are merged in rank order (a
    collective: every rank must call it). ``chunk_rows`` rows are in memory at a time.
    """
    ranks = ranks or Ranks()
    features = targets = None
    for x, y, w in store.chunks(split, chunk_rows, ranks.rank, ranks.world_size):
        x_moments, y_moments = ColumnMoments.of(x, w), ColumnMoments.of(y.reshape(len(y), -1), w)
        features = x_moments if features is None else features.merge(x_moments)
        targets = y_moments if targets is None else targets.merge(y_moments)
    assert features is not None and targets is not None, "a training split has rows"
    if ranks.all_gather is None:
        return features, targets
    merged = []
    for local in (features, targets):
        gathered = ranks.all_gather(local.pack())
        total = ColumnMoments.unpack(gathered[0])
        for row in gathered[1:]:  # rank order: the same sums on every rank
            total = total.merge(ColumnMoments.unpack(row))
        merged.append(total)
    return merged[0], merged[1]


def fit_scaling(
    store: RowStore,
    standardize: bool,
    standardize_targets: bool,
    names: tuple[list[str], list[str]],
    source: str,
    ranks: Ranks | None = None,
) -> ScalingStatistics:
    """Standardization of features (and regression targets) from the training rows of ``store``.

    Each column is centred and divided by its population standard deviation over the training rows (as
    scikit-learn's ``StandardScaler``; weighted by the rows' sample weights when they have some). A column
    constant on those rows keeps scale 1 (it is only centred, so there is no division by zero) and a warning
    names it. Unstandardized columns get mean 0 and scale 1.

    Args:
        store: the rows, any store.
        standardize: standardize the features.
        standardize_targets: standardize the targets too (regression only).
        names: feature names and target names, for the warning.
        source: where the data came from, for the warning.
        ranks: the processes sharing the pass (see :func:`split_moments`); ``None``: this process alone.

    """
    feature_names, target_names = names
    num_features, num_outputs = store.widths
    scale_targets = standardize_targets and store.task == "regression"
    if standardize or scale_targets:
        x_moments, y_moments = split_moments(store, "train", ranks)
    if standardize:
        feature_mean, feature_scale = x_moments.mean_and_std()
        _unit_scale_for_constants(feature_scale, feature_names, "feature", source)
    else:
        feature_mean, feature_scale = torch.zeros(num_features), torch.ones(num_features)
    if scale_targets:
        target_mean, target_scale = y_moments.mean_and_std()
        _unit_scale_for_constants(target_scale, target_names, "target", source)
    else:
        target_mean, target_scale = torch.zeros(num_outputs), torch.ones(num_outputs)
    dtype = store.dtype
    return ScalingStatistics(
        feature_mean=feature_mean.to(dtype),
        feature_scale=feature_scale.to(dtype),
        target_mean=target_mean.to(dtype),
        target_scale=target_scale.to(dtype),
    )


def _unit_scale_for_constants(scale: Tensor, names: list[str], kind: str, source: str) -> None:
    constant = (scale == 0).nonzero().flatten().tolist()
    if constant:
        columns = ", ".join(repr(names[i]) for i in constant)
        rank_zero_warn(
            f"{source}: {kind} column {columns} is constant on the training rows; it is centred but not "
            "scaled (scale 1), and carries no information for the model"
        )
        scale[constant] = 1.0
