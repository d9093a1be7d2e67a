"""Row weights in a batch: how a batch carries them, and the weighted mean of row losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["split_batch", "weighted_mean"]


def split_batch(batch: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor | None]:
    """Return a training, validation or test batch as features (B, D), targets (B, K) or (B,), and row weights.

    The loaders serve ``(features, targets)`` when the data has no row weights and ``(features, targets, weights)``
    with weights (B,) when it has; ``None`` stands for every row weighing 1.
    """
    if len(batch) == 2:
        features, targets = batch
        return features, targets, None
    features, targets, weights = batch
    return features, targets, weights


def weighted_mean(row_losses: Tensor, weights: Tensor | None) -> Tensor:
    r"""Return :math:`\sum_i w_i l_i / \sum_i w_i` of row losses (B,) and weights (B,); the plain mean without weights.

    A batch whose rows all weigh 0 has loss 0 and no gradient (it counts for nothing in the epoch's mean either).
    """
    if weights is None:
        return row_losses.mean()
    weights = weights.to(row_losses.dtype)
    return (weights @ row_losses) / weights.sum().clamp_min(torch.finfo(row_losses.dtype).tiny)
