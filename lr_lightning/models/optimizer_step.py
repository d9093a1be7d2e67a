r"""What follows every optimizer step of a linear model: the L1 proximal step, then the divergence check.

The L1 term of :mod:`lr_lightning.penalties` is not differentiable at 0. After a plain SGD step it is applied as
its proximal operator (:func:`~lr_lightning.penalties.soft_threshold`), so weights reach exact zeros; other
optimizers get its subgradient instead. Then the step's loss and the updated weights are checked: a NaN or an
infinity stops training with a :class:`TrainingDivergedError` before any callback can write a checkpoint of them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from lr_lightning.penalties import soft_threshold

__all__ = ["TrainingDivergedError", "check_finite", "l1_proximal_step", "uses_l1_proximal_step"]


class TrainingDivergedError(RuntimeError):
    """The training loss or the weights became NaN or infinite; the message names the epoch, the step and causes."""


def uses_l1_proximal_step(optimizer: Optimizer | None) -> bool:
    """Whether the L1 term is applied as a proximal step after ``optimizer``'s steps, not through its subgradient.

    ISTA is proximal *gradient descent*: the soft-threshold after a step of size lr is exact for plain (full- or
    mini-batch) SGD, and a standard heuristic with momentum; Adam's per-coordinate steps and L-BFGS's line search
    have no such step size, so they get the subgradient.
    """
    return type(optimizer) is torch.optim.SGD


@torch.no_grad()
def l1_proximal_step(weight: Tensor, optimizer: Optimizer, strength: float) -> None:
    """Soft-threshold ``weight`` in place by ``strength`` times the learning rate of its parameter group."""
    group = next(g for g in optimizer.param_groups if any(p is weight for p in g["params"]))
    weight.copy_(soft_threshold(weight, group["lr"] * strength))


@torch.no_grad()
def check_finite(
    linear: nn.Linear,
    loss: Tensor | None,
    *,
    epoch: int,
    step: int,
    world_size: int,
    optimizer: Optimizer | None,
    feature_mean: Tensor,
    feature_scale: Tensor,
) -> None:
    """Raise :class:`TrainingDivergedError` when this step's loss or the updated weights are NaN or infinite.

    Checked after the optimizer step, before any callback's on_train_batch_end or epoch end can write a
    checkpoint, with one read of three numbers: a sum is non-finite when any entry is (NaN and inf propagate).
    Under DDP (``world_size > 1``) the decision rests on the weights alone, which the gradient all-reduce keeps
    identical on every rank (a NaN loss on one rank makes everyone's gradients NaN), so all ranks stop together
    without a collective per step.

    Args:
        linear: the layer just updated.
        loss: the step's training loss (``None`` before the first step).
        epoch: the current epoch, for the message.
        step: the global step, for the message.
        world_size: the number of processes.
        optimizer: the optimizer, whose learning rate the message names.
        feature_mean: the model's feature means (D,); with ``feature_scale`` they say whether features are scaled.
        feature_scale: the model's feature scales (D,).

    """
    weight, bias = linear.weight, linear.bias
    sums = [weight.sum()] if bias is None else [weight.sum(), bias.sum()]
    loss = loss if loss is not None else weight.new_zeros(())
    loss_value, *weight_sums = torch.stack([loss.to(weight.dtype), *sums]).tolist()
    weights_finite = all(math.isfinite(value) for value in weight_sums)
    if weights_finite and (math.isfinite(loss_value) or world_size > 1):
        return
    what = (
        f"the training loss is {loss_value}"
        if not math.isfinite(loss_value)
        else f"the training loss was {loss_value:.6g}"
    )
    if not weights_finite:
        what += " and the weights became non-finite in this optimizer step"
    learning_rate = optimizer.param_groups[0].get("lr") if optimizer is not None else None
    unscaled = bool(torch.all(feature_scale == 1) and torch.all(feature_mean == 0))
    causes = [
        f"a learning rate too high for this problem (optimizer.init_args.lr is {learning_rate}; try 10x smaller)",
        "unscaled features: they are not standardized (set data.init_args.standardize: true)"
        if unscaled
        else "features on very different scales",
        "NaN, infinite or extreme values in the data",
    ]
    raise TrainingDivergedError(
        f"training diverged at epoch {epoch}, step {step}: {what}. No checkpoint of this step was written. "
        f"Likely causes: {'; '.join(causes)}."
    )
