r"""What a model logs once per epoch of each stage: its weighted mean loss and its metrics, over all processes.

``LightningModule.log`` per step costs more than a linear model's whole step, so the models add every batch's loss
(times its weight: its rows, or the sum of its row weights) to a running tensor (:class:`EpochLoss`) and log the
mean once at the epoch's end. A batch's loss is the weighted mean over its rows, so the epoch's is
:math:`\sum_i w_i l_i / \sum_i w_i` over every row the processes saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from torch import Tensor
from torchmetrics import MetricCollection

__all__ = ["EpochLoss", "log_metrics"]


class EpochLoss:
    """Per stage (``train``, ``val``, ``test``): the epoch's sum of batch loss x batch weight, and of the weights.

    A batch's weight is its number of rows (an ``int``, exact however many) or, with row weights, their sum (a
    scalar tensor, so adding it does not wait for the device).
    """

    def __init__(self) -> None:
        self._sums: dict[str, Tensor] = {}
        self._weights: dict[str, float | Tensor] = {}

    def reset(self, stage: str) -> None:
        """Start the stage's sum afresh."""
        self._sums.pop(stage, None)
        self._weights.pop(stage, None)

    def add(self, stage: str, loss: Tensor, weight: float | Tensor) -> None:
        """Add a batch's (weighted) mean loss, a scalar, times ``weight``, without leaving the loss's device.

        Args:
            stage: ``"train"``, ``"val"`` or ``"test"``.
            loss: the batch's mean loss over its rows, weighted by the row weights if any.
            weight: the batch's number of rows, or the sum of its row weights (a scalar tensor).

        """
        loss = loss.detach()
        # At least float32, so that half-precision runs do not sum an epoch of losses in 8 bits of mantissa.
        dtype = torch.promote_types(loss.dtype, torch.float32)
        if isinstance(weight, Tensor):
            weight = weight.detach().to(dtype)
        if stage in self._sums:
            if isinstance(weight, Tensor):
                self._sums[stage].add_(loss * weight)
            else:
                self._sums[stage].add_(loss, alpha=weight)
            self._weights[stage] = self._weights[stage] + weight
        else:
            self._sums[stage] = loss.to(dtype) * weight
            self._weights[stage] = weight

    def log_mean(self, module: pl.LightningModule, stage: str, like: Tensor) -> None:
        """Log ``<stage>_loss``, the mean of the stage's batch losses weighted as added, over all processes; reset.

        ``like`` gives the device of the zeros a process that saw no batch contributes.
        """
        loss_sum = self._sums.pop(stage, None)
        weight = self._weights.pop(stage, 0)
        if loss_sum is None:
            loss_sum = like.new_zeros(())
        total = torch.stack([loss_sum, torch.as_tensor(weight, dtype=loss_sum.dtype, device=loss_sum.device)])
        if module._trainer is not None and module.trainer.world_size > 1:
            total = module.trainer.strategy.reduce(total, reduce_op="sum")  # ranks may hold unequal weights
        if total[1] > 0:
            # Every rank now holds the same value; sync_dist only averages equal numbers (and keeps Lightning quiet).
            # train_loss and val_loss also show in the progress bar.
            module.log(f"{stage}_loss", total[0] / total[1], sync_dist=True, prog_bar=stage in ("train", "val"))


def log_metrics(module: pl.LightningModule, collection: MetricCollection, output_names: Sequence[str] = ()) -> None:
    """Log each metric's mean over outputs (``val_r2``), and per output when named (``val_r2/flavour``); reset."""
    for name, value in collection.compute().items():
        value = value.float()
        # compute() has already synced the metric across processes, so every rank holds the same value and
        # sync_dist only averages equal numbers (and keeps Lightning from warning under DDP).
        module.log(name, value.mean(), sync_dist=True)
        if output_names and value.numel() > 1:
            for output_name, output_value in zip(output_names, value, strict=True):
                module.log(f"{name}/{output_name}", output_value, sync_dist=True)
    collection.reset()
