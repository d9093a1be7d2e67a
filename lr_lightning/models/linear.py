r"""Linear regression: one or several real-valued targets, mean squared error."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from lr_lightning.callbacks import OptimalityGap
from lr_lightning.data.contract import ScalingStatistics, Task
from lr_lightning.errors import InputError
from lr_lightning.models.base import LinearModelBase
from lr_lightning.models.exact_fit import ExactFit, check_solver, count_step

__all__ = ["LinearRegression"]


class LinearRegression(LinearModelBase):
    r"""Least-squares linear regression :math:`\hat{y} = W x + b` by gradient descent or exactly.

    The loss is the mean-reduced squared error over the B rows and K targets of a batch,

    .. math::

        L(W, b) = \frac{1}{B K} \sum_{i=1}^{B} \lVert \tilde{y}_i - (W \tilde{x}_i + b) \rVert_2^2,

    on standardized features :math:`\tilde{x}` and on targets :math:`\tilde{y}` that are standardized only when
    the DataModule was asked to (``standardize_targets``); otherwise :math:`\tilde{y} = y` and the loss is the
    plain MSE in the targets' units. Metrics (MSE, MAE, R²) are always computed in the targets' units.

    Args:
        in_features: D, the number of features (the CLI links it from ``data.num_features``).
        out_features: K, the number of targets (linked from ``data.num_targets``).
        target_names: names of the K targets (linked from the data); name the prediction columns.
        optimality_gap: log ``optimality_gap`` every epoch (:class:`~lr_lightning.callbacks.OptimalityGap`). It
            needs the least-squares fit of the training split, solved once per fit (about 3 s for
            1,000,000 x 100), so a benchmark of raw speed may turn it off.
        solver: ``"gradient"`` (the default): train the layer with the optimizer; ``"exact"``: solve least
            squares or ridge in closed form from one float64 pass over the training rows per epoch, merged across
            DDP ranks, with no optimizer step (one epoch is a whole fit; later ones give the same weights;
            ``l1_strength`` must be 0): see :mod:`lr_lightning.models.exact_fit`.
        kwargs: the options every model shares, ``bias``, ``feature_names``, ``l1_strength``, ``l2_strength``,
            ``init``, ``init_std`` and ``optimizer``: see :class:`~lr_lightning.models.base.LinearModelBase`
            (``optimizer`` builds the optimizer from the parameters; the CLI's ``optimizer:`` group replaces it).

    With penalties the objective is the loss above plus the weight penalty of :mod:`lr_lightning.penalties`,
    whose docstring gives the scikit-learn estimators (``Ridge``, ``Lasso``, ``ElasticNet``) with the same minimizer.

    Buffers: ``feature_mean``/``feature_scale`` of shape (D,), ``target_mean``/``target_scale`` of shape (K,).

    Attributes:
        coef_: weights in original units, shape (K, D).
        intercept_: intercepts in original units, shape (K,).

    """

    task: ClassVar[Task] = "regression"

    # Buffers, registered in __init__ (see AffineModel's feature_mean).
    target_mean: Tensor
    target_scale: Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        target_names: list[str] | None = None,
        optimality_gap: bool = True,
        solver: str = "gradient",
        **kwargs: Any,
    ) -> None:
        if target_names is not None and len(target_names) != out_features:
            raise InputError(f"target_names has {len(target_names)} names but out_features={out_features}")
        self.target_names = list(target_names) if target_names else [f"y{i}" for i in range(out_features)]
        super().__init__(in_features, out_features, **kwargs)
        self.register_buffer("target_mean", torch.zeros(out_features))
        self.register_buffer("target_scale", torch.ones(out_features))
        self.solver = check_solver(solver, self.l1_strength)
        # The exact solver steps no optimizer: Lightning's manual optimization, whose steps it never takes.
        self.automatic_optimization = self.solver == "gradient"
        self._exact_fit: ExactFit | None = None

    def configure_callbacks(self) -> list[Callback]:
        """Log ``optimality_gap`` (training MSE minus least squares') every epoch, with or without the CLI."""
        return [OptimalityGap()] if self.hparams["optimality_gap"] else []

    def on_train_epoch_start(self) -> None:
        """Start the epoch's loss sum (and, for the exact solver, its pass) afresh."""
        super().on_train_epoch_start()
        self._exact_fit = ExactFit(self) if self.solver == "exact" else None

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Return the gradient solver's loss on a batch; the exact solver folds the batch into its pass instead."""
        if self._exact_fit is None:
            return super().training_step(batch, batch_idx)
        features, targets = batch  # raw (B, D), (B, K) or (B,)
        self._exact_fit.update(features, targets)
        return features.new_zeros(())  # no loss to step on: the epoch's objective is logged once solved

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Exact solver: count the batch as a step; after the epoch's last batch, solve (before validation)."""
        if self._exact_fit is None:
            return
        count_step(self.trainer)
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self._solve_exact()

    def on_train_epoch_end(self) -> None:
        """Solve if the last batch did not (a stop before it), then log ``train_loss``."""
        if self._exact_fit is not None and not self._exact_fit.solved:
            self._solve_exact()
        super().on_train_epoch_end()

    def _solve_exact(self) -> None:
        assert self._exact_fit is not None
        objective = self._exact_fit.solve_into(self)
        self._epoch_loss.reset("train")
        if objective is not None:  # train_loss: the objective at the solution, the same on every rank
            self._epoch_loss.add("train", objective, rows=1)

    def configure_metrics(self) -> MetricCollection:
        """MSE, MAE and R² per target (their means over targets are what ``val_mse`` etc. report)."""
        num_outputs = len(self.target_names)
        return MetricCollection(
            {
                "mse": MeanSquaredError(num_outputs=num_outputs),
                "mae": MeanAbsoluteError(num_outputs=num_outputs),
                "r2": R2Score(multioutput="raw_values"),
            }
        )

    @property
    def output_names(self) -> list[str]:
        """The target names."""
        return self.target_names

    def output_affine(self) -> tuple[Tensor, Tensor]:
        """Target scale and mean, shape (K,) each."""
        return self.target_scale, self.target_mean

    def set_scaling(self, statistics: ScalingStatistics) -> None:
        """Store feature (D,) and target (K,) scaling fitted by the DataModule."""
        super().set_scaling(statistics)
        target_mean, target_scale = statistics.target_mean, statistics.target_scale
        if target_mean.shape != self.target_mean.shape or target_scale.shape != self.target_scale.shape:
            raise InputError(
                f"the data has {tuple(target_mean.shape)[-1]} targets but the model has "
                f"out_features={self.target_mean.shape[0]}"
            )
        self.store_buffer("target_mean", target_mean)
        self.store_buffer("target_scale", target_scale)

    def compute_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean squared error between outputs (B, K) and the (scaled) targets (B, K)."""
        scaled_targets = (targets - self.target_mean) / self.target_scale  # (B, K), identity by default
        return F.mse_loss(outputs, scaled_targets)

    def decode(self, outputs: Tensor) -> Tensor:
        """Map outputs (B, K) in scaled units to predictions (B, K) in the targets' units."""
        return outputs * self.target_scale + self.target_mean
