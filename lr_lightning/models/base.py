r"""What every linear model shares: the task, penalties, the optimizer, the stage-keyed step, metrics and logs.

A model here is the affine layer :math:`z = W \tilde{x} + b` on standardized features of
:class:`~lr_lightning.models.affine.AffineModel`, followed by a model-specific output map (identity and target
un-scaling for regression, sigmoid or softmax for classification).

Subclasses set :attr:`LinearModelBase.task` and implement :meth:`LinearModelBase.configure_metrics`,
:meth:`LinearModelBase.compute_loss` and :meth:`LinearModelBase.decode`; the rest lives here once: the batches
with or without row weights (:mod:`lr_lightning.models.weighting`), the weight penalties and initialisation of
:mod:`lr_lightning.penalties`, and, after every optimizer step, the L1 proximal step and the divergence check of
:mod:`lr_lightning.models.optimizer_step` (a non-finite loss or weight stops training with a
:class:`TrainingDivergedError` before any checkpoint can hold it), and the epoch logs of
:mod:`lr_lightning.models.epoch_logs`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import IO, Any, ClassVar, TypeVar

import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.model_helpers import _restricted_classmethod
from torch import Tensor, nn
from torch.optim import Optimizer
from torchmetrics import MetricCollection

from lr_lightning.data.base import trainer_datamodule
from lr_lightning.data.contract import Task, TrainingData
from lr_lightning.errors import InputError, require
from lr_lightning.models.affine import AffineModel
from lr_lightning.models.arrays_api import ArrayPredictions
from lr_lightning.models.checkpoint_record import CheckpointRecord
from lr_lightning.models.epoch_logs import EpochLoss, log_metrics
from lr_lightning.models.optimizer_step import (
    TrainingDivergedError,
    check_finite,
    l1_proximal_step,
    uses_l1_proximal_step,
)
from lr_lightning.models.solvers import GRADIENT, EpochPass, count_step
from lr_lightning.models.statistics import InferenceStatistics
from lr_lightning.models.weighting import split_batch
from lr_lightning.penalties import validate_strength, weight_penalty

__all__ = ["STAGES", "LinearModelBase", "TrainingDivergedError"]

STAGES = ("train", "val", "test")


_Model = TypeVar("_Model", bound="LinearModelBase")


class LinearModelBase(InferenceStatistics, CheckpointRecord, ArrayPredictions, AffineModel, ABC):
    r"""Shared base of the linear models.

    Args:
        in_features: D, the number of input features (linked from the DataModule by the CLI).
        num_outputs: width of the affine layer: K targets, one logit (binary) or one per class.
        l1_strength: L1 penalty strength on the weights (not the bias), >= 0; see :mod:`lr_lightning.penalties`.
        l2_strength: L2 penalty strength on the weights (not the bias), >= 0.
        optimizer: builds the optimizer from the parameters, e.g. ``lambda params: torch.optim.LBFGS(params)``;
            default SGD with lr 0.1. Not a hyperparameter (checkpoints do not hold it); under the CLI the
            ``optimizer:`` group replaces it.
        layer: the layer's options, ``bias``, ``feature_names``, ``init`` and ``init_std``: see
            :class:`~lr_lightning.models.affine.AffineModel`.

    The training objective is the model's mean-reduced loss plus the weight penalty of :mod:`lr_lightning.penalties`
    (which also gives the scikit-learn equivalents); ``train_loss`` logs it, ``val_loss`` and ``test_loss`` log the
    loss alone. When the data has row weights :math:`w_i` (its batches are ``(features, targets, weights)``), the
    mean over rows is the weighted one, :math:`\sum_i w_i l_i / \sum_i w_i` per batch, and the logged losses
    are the epoch's weighted means over all processes; the metrics weigh rows by the same sample weights (those
    that can: see the model's metrics).

    With ``torch.optim.SGD`` the L1 term is applied as a proximal (soft-threshold) step after each
    optimizer step, so weights reach exact zeros; with other optimizers its subgradient is used (and a warning
    says so). The buffers ``feature_mean`` and ``feature_scale`` are :class:`~lr_lightning.models.affine.AffineModel`'s.

    """

    #: What the model solves, in the data contract's vocabulary (:data:`lr_lightning.data.contract.TASKS`); ``fit``
    #: refuses data of another task.
    task: ClassVar[Task]

    #: Log each metric per output (``val_r2/flavour``) besides its mean over outputs (``val_r2``).
    per_output_metrics: bool = False

    #: The data loss is a mean over the outputs (the MSE over K targets), so the penalty is divided by K (see
    #: lr_lightning.penalties).
    loss_averages_outputs: bool = True

    def __init__(
        self,
        in_features: int,
        num_outputs: int,
        l1_strength: float = 0.0,
        l2_strength: float = 0.0,
        optimizer: OptimizerCallable | None = None,
        **layer: Any,
    ) -> None:
        super().__init__(in_features, num_outputs, **layer)
        self.l1_strength = validate_strength("l1_strength", l1_strength)
        self.l2_strength = validate_strength("l2_strength", l2_strength)
        require(optimizer is None or callable(optimizer), "optimizer", "a function of the parameters", optimizer)
        self.build_optimizer = optimizer
        self._built_optimizer = False  # whether configure_optimizers used it (the CLI replaces that method)
        self._epoch_loss = EpochLoss()
        self._pass: EpochPass | None = None
        self._last_train_loss: Tensor | None = None
        self._mean_row_weight = 1.0  # of the training rows, taken at the start of training (weighted data)
        metrics = self.configure_metrics()
        # One collection per stage, so train/val/test states never mix (ModuleDict keys cannot be "train" etc.
        # clashing with Module attributes, hence the suffix).
        self.metrics = nn.ModuleDict({f"{stage}_metrics": metrics.clone(prefix=f"{stage}_") for stage in STAGES})

    @_restricted_classmethod
    def load_from_checkpoint(
        cls: type[_Model],
        checkpoint_path: str | os.PathLike | IO,
        map_location: Any = None,
        hparams_file: str | os.PathLike | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> _Model:
        """Build the model from a local checkpoint file, read with ``weights_only=True`` and checked first.

        Lightning's signature and results (but in eval mode, ready to predict), without its URL downloads and
        ``_instantiator`` entries: see :func:`lr_lightning.models.loading.load_model` for the arguments and errors.
        """
        from lr_lightning.models.loading import LoadOptions, load_model

        options = LoadOptions(map_location, hparams_file, strict, weights_only)
        return load_model(cls, checkpoint_path, options, kwargs)

    # -- what a model file provides ------------------------------------------------------------------------------

    @abstractmethod
    def configure_metrics(self) -> MetricCollection:
        """Metrics updated with ``(decode(z), targets)``; cloned once per stage."""

    @abstractmethod
    def compute_loss(self, outputs: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        """Return the data loss, a scalar, from layer outputs z (B, num_outputs): the rows' mean, weighted if given.

        Args:
            outputs: layer outputs z of shape (B, num_outputs).
            targets: the batch's targets (B, K) or labels (B,).
            weights: the rows' weights in the loss (B,) (:meth:`row_weights`); ``None``: every row weighs 1.

        """

    @property
    def has_class_weights(self) -> bool:
        """Whether :meth:`row_weights` multiplies in a weight per class (a classifier's ``class_weight``)."""
        return False

    def row_weights(self, targets: Tensor, weights: Tensor | None) -> Tensor | None:
        """Return each row's weight in the loss (B,) from the batch's sample weights; ``None`` when all weigh 1.

        Here the sample weights themselves; a classifier with class weights multiplies them in.
        """
        return weights

    @abstractmethod
    def decode(self, outputs: Tensor) -> Tensor:
        """Map layer outputs z (B, num_outputs) to predictions in the user's units."""

    def forward(self, features: Tensor) -> Tensor:
        """Raw features (B, D) -> predictions (B, num_outputs) in the user's units."""
        return self.decode(self.layer_outputs(features))  # (B, D) -> (B, K)

    #: ``"gradient"``, or the model's pass solver (:mod:`lr_lightning.models.solvers`); set by the subclass.
    solver: str = GRADIENT

    @property
    def streams_training_rows(self) -> bool:
        """Whether the solver folds whole passes over the training rows (the exact and Newton solvers).

        ``fit`` then asks the data for one covering pass per epoch in chunks instead of shuffled batches
        (:meth:`~lr_lightning.data.contract.TrainingData.stream_training_rows`), and no optimizer steps.
        """
        return self.solver != GRADIENT

    def start_pass(self) -> EpochPass | None:
        """Return the epoch's pass solver (``None`` for gradient steps); a model with a pass solver has its own."""
        return None

    def training_data(self) -> TrainingData | None:
        """Return the trainer's DataModule if it serves the data contract (:mod:`lr_lightning.data.contract`)."""
        datamodule = trainer_datamodule(self._trainer) if self._trainer is not None else None
        return datamodule if isinstance(datamodule, TrainingData) else None

    def check_training_data(self, data: TrainingData) -> None:
        """Refuse data this model cannot fit (another task; a subclass adds its own), with an :class:`InputError`.

        The CLI calls it as soon as both exist, before anything is written; ``setup("fit")`` calls it again.
        """
        if data.task != self.task:
            raise InputError(
                f"{type(self).__name__} is a {self.task} model but {type(data).__name__} holds {data.task} data"
            )

    def setup(self, stage: str) -> None:
        """At the start of ``fit``, check the data (:meth:`check_training_data`) and take its training scaling."""
        data = self.training_data()
        if stage == "fit" and data is not None:
            self.check_training_data(data)
            self.set_scaling(data.scaling_statistics())
            data.stream_training_rows(self.streams_training_rows)
        if self._trainer is not None and str(self.trainer.precision).startswith("64"):
            # module.double() leaves torchmetrics' states alone; accumulate the metrics in float64 too.
            for metrics_stage in STAGES:
                self.stage_metrics(metrics_stage).set_dtype(torch.float64)

    # -- training, evaluation, prediction ----------------------------------------------------------------------------

    def penalty(self) -> Tensor:
        """Return the weight penalty of :mod:`lr_lightning.penalties`, a scalar.

        Its L1 part carries no gradient when the optimizer applies it as a proximal step instead.
        """
        penalty = weight_penalty(self.linear.weight, l2_strength=self.l2_strength, num_averaged=self._penalty_divisor)
        if self.l1_strength:
            weight = self.linear.weight.detach() if self._l1_by_proximal_step() else self.linear.weight
            penalty = penalty + weight_penalty(weight, l1_strength=self.l1_strength, num_averaged=self._penalty_divisor)
        return penalty

    @property
    def _penalty_divisor(self) -> int:
        return self.linear.out_features if self.loss_averages_outputs else 1

    def _training_optimizer(self) -> Optimizer | None:
        # The trainer holds the torch optimizers themselves (hooks get them wrapped in a LightningOptimizer).
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        return optimizers[0] if optimizers else None

    def _l1_by_proximal_step(self) -> bool:
        return uses_l1_proximal_step(self._training_optimizer())

    def on_fit_start(self) -> None:
        """Refuse an ``optimizer`` that the fit does not use (the CLI's ``optimizer:`` group replaced it)."""
        if self.build_optimizer is not None and not self._built_optimizer:
            raise InputError(
                "the model's optimizer argument was given but another optimizer replaced it (under lr-lightning, "
                "the optimizer: group sets the optimizer; remove model.init_args.optimizer)"
            )

    def on_train_start(self) -> None:
        """Take the training rows' mean row weight (weighted data); say when L1 can only use its subgradient."""
        data = self.training_data()
        if data is not None and not self.streams_training_rows:
            self._mean_row_weight = self._training_mean_row_weight(data)
        if self.l1_strength and not self._l1_by_proximal_step():
            name = type(self._training_optimizer()).__name__
            rank_zero_warn(
                f"l1_strength with {name} uses the L1 subgradient: weights hover around zero instead of reaching "
                "it; use torch.optim.SGD for proximal steps that give exact zeros"
            )

    def _training_mean_row_weight(self, data: TrainingData) -> float:
        """Return the mean of :meth:`row_weights` over the training rows: 1 unless rows or classes are weighted."""
        if not (data.weighted or self.has_class_weights):
            return 1.0
        total, rows = 0.0, 0
        for _, targets, weights in data.chunks("train"):
            chunk = self.row_weights(torch.from_numpy(targets), None if weights is None else torch.from_numpy(weights))
            assert chunk is not None, "weighted rows or classes give every row a weight"
            total, rows = total + float(chunk.double().sum()), rows + len(targets)
        return total / rows

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Step; then apply the L1 proximal step (plain SGD) and refuse non-finite weights."""
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        training_optimizer = self._training_optimizer()
        if self.l1_strength and uses_l1_proximal_step(training_optimizer):
            assert training_optimizer is not None
            l1_proximal_step(self.linear.weight, training_optimizer, self.l1_strength / self._penalty_divisor)
        check_finite(
            self.linear,
            self._last_train_loss,
            epoch=self.current_epoch,
            step=self.trainer.global_step,
            world_size=self.trainer.world_size,
            optimizer=training_optimizer,
            feature_mean=self.feature_mean,
            feature_scale=self.feature_scale,
        )

    def _shared_step(self, batch: Sequence[Tensor], stage: str) -> Tensor:
        features, targets, weights = split_batch(batch)  # (B, D), (B, K) or (B,), (B,) or None
        outputs = self.layer_outputs(features)  # (B, D) -> (B, num_outputs)
        loss_weights = self.row_weights(targets, weights)
        loss = self.compute_loss(outputs, targets, loss_weights)
        weight: float | Tensor = features.shape[0] if loss_weights is None else loss_weights.sum()
        if stage == "train":
            if loss_weights is not None:  # the batch's unbiased estimate of the weighted mean (models.weighting)
                weight = features.shape[0] * self._mean_row_weight
                loss = loss * (loss_weights.sum() / weight)
            if self.l1_strength or self.l2_strength:
                loss = loss + self.penalty()
            self._last_train_loss = loss.detach()  # checked with the weights after the optimizer step
        else:
            self.update_metrics(stage, outputs, targets, weights)
        self._epoch_loss.add(stage, loss, weight)
        return loss

    def _log_epoch(self, stage: str) -> None:
        """Log ``<stage>_loss`` and, but for training, the stage's metrics (see :mod:`.epoch_logs`)."""
        self._epoch_loss.log_mean(self, stage, like=self.linear.weight)
        if stage != "train":
            log_metrics(self, self.stage_metrics(stage), self.output_names if self.per_output_metrics else ())

    def stage_metrics(self, stage: str) -> MetricCollection:
        """Return the metrics of ``stage`` (``"train"``, ``"val"`` or ``"test"``), a clone of configure_metrics'."""
        metrics = self.metrics[f"{stage}_metrics"]
        assert isinstance(metrics, MetricCollection)  # nn.ModuleDict types its values as Module
        return metrics

    def update_metrics(self, stage: str, outputs: Tensor, targets: Tensor, weights: Tensor | None = None) -> None:
        """Update the stage's metrics from layer outputs z (B, num_outputs); default: ``(decode(z), targets)``.

        ``weights`` (B,), the sample weights, go to the metrics whose ``update`` takes them (the collection
        leaves them out of the others').
        """
        self.stage_metrics(stage).update(self.decode(outputs), targets, weights=weights)

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        """One optimization step's loss on a training batch; a pass solver folds the chunk into its sums instead."""
        if self._pass is None:
            return self._shared_step(batch, "train")
        features, targets, weights = split_batch(batch)  # raw (n, D), (n, K) or (n,), (n,) or None
        self._pass.update(features, targets, weights)
        return features.new_zeros(())  # nothing to step on: the epoch's objective is logged once solved

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Pass solver: count the chunk as a step; after the epoch's last chunk, finish (before validation)."""
        if self._pass is None:
            return
        count_step(self.trainer)
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self._finish_pass()

    def _finish_pass(self) -> None:
        assert self._pass is not None
        objective = self._pass.finish(self)
        self._epoch_loss.reset("train")
        if objective is not None:  # train_loss: the objective the pass measured, the same on every rank
            self._epoch_loss.add("train", self.linear.weight.new_tensor(objective), 1)

    def validation_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        """Loss and metrics on a validation batch."""
        return self._shared_step(batch, "val")

    def test_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        """Loss and metrics on a test batch."""
        return self._shared_step(batch, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Predictions (B, num_outputs) in the user's units for a batch of raw features."""
        return self(batch[0])

    def prediction_columns(self, predictions: Tensor, target_columns: list[str] | None = None) -> dict[str, Any]:
        """Columns of the prediction file from ``predict_step`` outputs (N, K): one array (N,) per target name."""
        values = predictions.numpy()
        return {name: values[:, j] for j, name in enumerate(self.output_names)}

    def on_train_epoch_start(self) -> None:
        """Start the epoch's loss sum (and a pass solver's sums) afresh."""
        self._epoch_loss.reset("train")
        self._pass = self.start_pass() if self.streams_training_rows else None

    def on_train_epoch_end(self) -> None:
        """Log ``train_loss`` (before EarlyStopping and ModelCheckpoint look at it: they run after this hook).

        A pass solver that a stop cut short of its last chunk finishes first.
        """
        if self._pass is not None and not self._pass.done:
            self._finish_pass()
        self._log_epoch("train")

    def on_validation_epoch_start(self) -> None:
        """Start the validation loss sum afresh."""
        self._epoch_loss.reset("val")

    def on_validation_epoch_end(self) -> None:
        """Log ``val_loss`` and the validation metrics (torchmetrics has synced them across processes)."""
        self._log_epoch("val")

    def on_test_epoch_start(self) -> None:
        """Start the test loss sum afresh."""
        self._epoch_loss.reset("test")

    def on_test_epoch_end(self) -> None:
        """Log ``test_loss`` and the test metrics."""
        self._log_epoch("test")

    def configure_optimizers(self) -> Any:
        """Build the constructor's ``optimizer``, or SGD with lr 0.1; the CLI's ``optimizer:`` group replaces this."""
        if self.build_optimizer is not None:
            self._built_optimizer = True
            return self.build_optimizer(self.parameters())
        return torch.optim.SGD(self.parameters(), lr=0.1)
