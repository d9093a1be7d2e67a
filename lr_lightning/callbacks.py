"""Lightning callbacks of lr_lightning, and what they read from a model and its data.

They read the data through the data contract (:class:`~lr_lightning.data.contract.TrainingData`) and the model
through :class:`LinearModel`, which the package's models satisfy; nothing here imports :mod:`lr_lightning.models`
(the models import :class:`OptimalityGap` from here).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lr_lightning.closed_form import LeastSquaresSolution, through_point
from lr_lightning.data.base import trainer_datamodule
from lr_lightning.data.contract import Task, TrainingData

__all__ = ["LinearModel", "OptimalityGap", "reachable_least_squares"]


@runtime_checkable
class LinearModel(Protocol):
    """What the callbacks read from a model: the package's models (:mod:`lr_lightning.models`) have it all.

    Attributes:
        task: ``"regression"`` or ``"classification"``, as the data's (:data:`lr_lightning.data.contract.TASKS`).
        feature_names: the D feature names.

    """

    task: Task
    feature_names: list[str]

    @property
    def fit_intercept(self) -> bool:
        """Whether the model learns an intercept."""
        ...

    @property
    def output_names(self) -> list[str]:
        """K target names (regression) or C class names (classification)."""
        ...

    def __call__(self, features: Tensor) -> Tensor:
        """Raw features (N, D) -> predictions (N, K) in the targets' units, or class probabilities (N, C)."""
        ...


def reachable_least_squares(data: TrainingData, fit_intercept: bool) -> LeastSquaresSolution | None:
    r"""Return the least-squares fit of the training rows that a linear regression on ``data`` can reach.

    The model is :math:`y = s \odot (W (x - \mu) / \sigma + b) + t` in raw units, with the data's scaling
    (:meth:`~lr_lightning.data.contract.TrainingData.scaling_statistics`): with a bias it is any affine map, so
    its optimum is least squares with an intercept; without one it passes through :math:`(\mu, t)`: least squares
    without an intercept when neither features nor targets are centred, otherwise (centred features) the fit with
    an intercept moved through that point (:func:`~lr_lightning.closed_form.through_point`). Either way the one
    solve is the data's own, cached (:meth:`~lr_lightning.data.contract.TrainingData.least_squares`), so every
    reader of a fit shares it.

    Returns:
        The solution, or ``None`` when the training rows stay on disk, or for a model without a bias on raw
        features whose targets are centred (``standardize_targets`` without ``standardize``), which no solve of
        the data gives.

    """
    if fit_intercept:
        return data.least_squares(fit_intercept=True)
    statistics = data.scaling_statistics()
    centred, shifted = bool(statistics.feature_mean.any()), bool(statistics.target_mean.any())
    if not centred:
        return None if shifted else data.least_squares(fit_intercept=False)
    solution = data.least_squares(fit_intercept=True)
    if solution is None:
        return None
    mean, shift = (t.double().cpu().numpy() for t in (statistics.feature_mean, statistics.target_mean))
    return through_point(solution, mean, shift)


class OptimalityGap(Callback):
    r"""Log how far a linear regression is from least squares: ``optimality_gap`` after every training epoch.

    .. math::

        \text{gap} = \frac{1}{N K} \sum_{i=1}^{N} \lVert y_i - \hat{y}_i \rVert^2
                    - \min_{W, b} \frac{1}{N K} \sum_{i=1}^{N} \lVert y_i - (W x_i + b) \rVert^2,

    both over the *whole* training split, in the targets' units. The first term uses the weights as they are at
    the end of the epoch (after its last optimizer step), computed in one forward pass; the second is the data's
    float64 least-squares fit, solved once per fit and shared with the dashboard (:func:`reachable_least_squares`:
    with an intercept when the model has one). The epoch's ``train_loss`` would be a poorer measure: it averages
    losses taken *before* each step, over batches that saw different weights.

    The gap is >= 0 up to rounding and reaches 0 at the least-squares fit. Penalized models (``l1_strength``,
    ``l2_strength``) converge to a positive gap, by design. ``relative_optimality_gap`` (gap divided by the
    optimum) is logged too when the optimum is above zero, so "within 0.1%" reads as ``<= 0.001``. Models that
    are not least-squares regressions (:class:`~lr_lightning.models.LogisticRegression`), data without the data
    contract and training rows that stay on disk are skipped with a note.
    """

    def __init__(self) -> None:
        self.optimum_mse: float | None = None
        self._rows: tuple[Tensor, Tensor] | None = None  # the training rows, in memory

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Take the least-squares optimum of the training rows (float64) from the data."""
        self.optimum_mse, self._rows = None, None
        data = trainer_datamodule(trainer)
        if not isinstance(data, TrainingData) or not isinstance(pl_module, LinearModel):
            rank_zero_info("OptimalityGap: skipped, the model or the data is not one of lr_lightning's")
            return
        if pl_module.task != "regression":
            rank_zero_info(f"OptimalityGap: skipped, {type(pl_module).__name__} is not a least-squares regression")
            return
        rows = data.rows_in_memory("train")  # (N, D), (N, K)
        solution = reachable_least_squares(data, pl_module.fit_intercept) if rows is not None else None
        if solution is None:
            reason = "the training data stays on disk" if rows is None else "no closed form for this scaling"
            rank_zero_info(f"OptimalityGap: skipped, {reason}")
            return
        self.optimum_mse, self._rows = solution.mse_, rows

    @torch.no_grad()
    def training_mse(self, pl_module: pl.LightningModule) -> float:
        """MSE of the current model over the whole training split, in the targets' units, accumulated in float64."""
        assert self._rows is not None
        features, targets = self._rows
        dtype = pl_module.dtype
        assert isinstance(dtype, torch.dtype)  # Lightning's type allows the str that Module.type("...") would store
        predictions = pl_module(features.to(device=pl_module.device, dtype=dtype))  # (N, D) -> (N, K)
        errors = predictions.double() - targets.to(predictions.device).double()
        return float(errors.square().mean())

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Let go of the training rows."""
        self._rows = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log ``optimality_gap`` (and ``relative_optimality_gap``) for the weights at the end of the epoch."""
        if self.optimum_mse is None or self._rows is None:
            return
        gap = self.training_mse(pl_module) - self.optimum_mse
        # Every rank holds the whole training split and computes the same value; sync_dist only averages equal
        # numbers (once per epoch) and keeps Lightning from warning under DDP.
        pl_module.log("optimality_gap", gap, on_step=False, on_epoch=True, sync_dist=True)
        if self.optimum_mse > 1e-12:  # an exact fit (the 4-point line) has an optimum of ~1e-30: no ratio
            pl_module.log(
                "relative_optimality_gap", gap / self.optimum_mse, on_step=False, on_epoch=True, sync_dist=True
            )
