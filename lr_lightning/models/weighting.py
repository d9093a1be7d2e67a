r"""Row weights in a batch: how a batch carries them, the weighted mean of row losses, and mini-batch scaling.

The objective of a weighted fit is the weighted mean over all N training rows,
:math:`L = \sum_i w_i \ell_i / \sum_i w_i`. A batch of B rows estimates it without bias as
:math:`\frac{1}{B \bar w} \sum_{i \in b} w_i \ell_i`, with :math:`\bar w` the mean row weight of the training rows
(taken by the model when training starts); the batch's own weighted mean :math:`\sum_b w_i \ell_i / \sum_b w_i`
would not be (a batch of one row would ignore its weight). On one batch of every row the two are equal.
"""

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
