r"""What every linear model shares: the affine layer, input scaling, the stage-keyed step, metrics and logging.

A model here is :math:`z = W \tilde{x} + b` on standardized features :math:`\tilde{x} = (x - \mu) / \sigma`,
followed by a model-specific output map (identity and target un-scaling for regression, sigmoid or softmax for
classification). :math:`\mu, \sigma` are buffers filled from the DataModule at the start of ``fit``, so a
checkpoint carries them and the loaded model maps *raw* features to predictions.

Subclasses implement :meth:`LinearModelBase.configure_metrics`, :meth:`LinearModelBase.compute_loss` and
:meth:`LinearModelBase.decode`; the rest lives here once: the weight penalties and initialisation of
:mod:`lr_lightning.penalties`, and the divergence check (a non-finite loss or weight stops training with a
:class:`TrainingDivergedError` before any checkpoint can hold it).
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from typing import IO, Any, TypeVar

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.model_helpers import _restricted_classmethod
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MetricCollection

from lr_lightning.penalties import initialize_linear, soft_threshold, validate_strength, weight_penalty

__all__ = ["STAGES", "LinearModelBase", "TrainingDivergedError"]

STAGES = ("train", "val", "test")

_Model = TypeVar("_Model", bound="LinearModelBase")


class TrainingDivergedError(RuntimeError):
    """The training loss or the weights became NaN or infinite; the message names the epoch, the step and causes."""


class LinearModelBase(pl.LightningModule, ABC):
    r"""Shared base of the linear models.

    Args:
        in_features: D, the number of input features (linked from the DataModule by the CLI).
        num_outputs: width of the affine layer: K targets, one logit (binary) or one per class.
        bias: learn an intercept.
        feature_names: names of the D features, used in coefficient tables and figures.
        l1_strength: L1 penalty strength on the weights (not the bias), >= 0; see :mod:`lr_lightning.penalties`.
        l2_strength: L2 penalty strength on the weights (not the bias), >= 0.
        init: weight initialisation, ``"default"`` (PyTorch's), ``"zeros"`` or ``"normal"``.
        init_std: standard deviation of the ``"normal"`` initialisation.

    The training objective is the model's mean-reduced loss plus
    :math:`\frac{\lambda_2}{K}\lVert W \rVert_F^2 + \frac{\lambda_1}{K}\lVert W \rVert_1` on the weights W (K, D)
    over standardized features; ``train_loss`` logs it, ``val_loss`` and ``test_loss`` log the loss alone. With
    ``torch.optim.SGD`` the L1 term is applied as a proximal (soft-threshold) step after each optimizer step, so
    weights reach exact zeros; with other optimizers its subgradient is used (and a warning says so).

    Buffers (saved in every checkpoint):
        feature_mean: shape (D,), subtracted from raw features.
        feature_scale: shape (D,), divides the centred features.

    """

    #: Log each metric per output (``val_r2/flavour``) besides its mean over outputs (``val_r2``).
    per_output_metrics: bool = False

    #: The data loss is a mean over the outputs too (the MSE over K targets), so the penalty is divided by K; the
    #: log-loss sums over a row's classes, so a classifier's penalty is not divided (see lr_lightning.penalties).
    loss_averages_outputs: bool = True

    def __init__(
        self,
        in_features: int,
        num_outputs: int,
        bias: bool = True,
        feature_names: list[str] | None = None,
        l1_strength: float = 0.0,
        l2_strength: float = 0.0,
        init: str = "default",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        validate_strength("l1_strength", l1_strength)
        validate_strength("l2_strength", l2_strength)
        if in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {in_features}")
        if num_outputs < 1:
            raise ValueError(f"the number of outputs must be >= 1, got {num_outputs}")
        if feature_names is not None and len(feature_names) != in_features:
            raise ValueError(f"feature_names has {len(feature_names)} names but in_features={in_features}")
        # Records the concrete class's constructor arguments (Lightning walks up the __init__ frames); the
        # layer width is derived from them, so it is not a hyperparameter of its own.
        self.save_hyperparameters(ignore=["num_outputs"])
        self.l1_strength = float(l1_strength)
        self.l2_strength = float(l2_strength)
        self.feature_names = list(feature_names) if feature_names else [f"x{i}" for i in range(in_features)]
        self.linear = nn.Linear(in_features, num_outputs, bias=bias)
        initialize_linear(self.linear, init, init_std)
        self.register_buffer("feature_mean", torch.zeros(in_features))
        self.register_buffer("feature_scale", torch.ones(in_features))
        self._loss_sums: dict[str, Tensor] = {}  # stage -> sum over this epoch's batches of batch loss x rows
        self._loss_rows: dict[str, int] = {}  # stage -> rows seen this epoch
        self._last_train_loss: Tensor | None = None
        metrics = self.configure_metrics()
        # One collection per stage, so train/val/test states never mix (ModuleDict keys cannot be "train" etc.
        # clashing with Module attributes, hence the suffix).
        self.metrics = nn.ModuleDict({f"{stage}_metrics": metrics.clone(prefix=f"{stage}_") for stage in STAGES})

    def __setattr__(self, name: str, value: Any) -> None:
        # The Trainer sets `_current_fx_name` (a string) around every hook call, about 44 times per training step;
        # nn.Module.__setattr__ looks for parameters, buffers and submodules of that name first, which costs ten
        # times a plain attribute write and about 5% of a small model's step.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # -- loading -------------------------------------------------------------------------------------------------

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
        """Build the model from a checkpoint, through :func:`lr_lightning.checkpoint.load_checkpoint` only.

        Lightning's signature and results (the model on the device of the loaded weights, in the training mode a
        new module has; ``kwargs`` override the stored hyperparameters; ``strict`` as for ``load_state_dict``),
        but the file is read with ``weights_only=True``, from a local path only, and checked by
        :func:`lr_lightning.checkpoint_contents.check_model_checkpoint` before the model is built: no URL download, no
        ``_instantiator``/``_class_path``, no tensor of the wrong shape or NaN weights.

        Args:
            checkpoint_path: a local checkpoint file (a URL or a file object is refused).
            map_location: as for :func:`torch.load`; default: where the tensors were saved, or the CPU when that
                device is absent (as Lightning).
            hparams_file: not supported (the checkpoint holds the hyperparameters; pass overrides as ``kwargs``).
            strict: refuse missing and unexpected tensors; default ``self.strict_loading`` (True).
            weights_only: ``None`` or ``True``; ``False`` is refused.
            **kwargs: hyperparameters that replace the stored ones.

        Raises:
            InputError: the path, the file or its contents are unusable (the message names the file and the key),
                ``hparams_file`` or ``weights_only=False`` was given.

        """
        from lr_lightning.models.loading import load_model

        return load_model(cls, checkpoint_path, map_location, hparams_file, strict, weights_only, **kwargs)

    # -- what a model file provides ------------------------------------------------------------------------------

    @abstractmethod
    def configure_metrics(self) -> MetricCollection:
        """Metrics updated with ``(decode(z), targets)``; cloned once per stage."""

    @abstractmethod
    def compute_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Return the training objective, a scalar, from layer outputs z of shape (B, num_outputs)."""

    @abstractmethod
    def decode(self, outputs: Tensor) -> Tensor:
        """Map layer outputs z (B, num_outputs) to predictions in the user's units."""

    @property
    def output_names(self) -> list[str]:
        """Names of the outputs used in per-output metric tags and prediction files."""
        return [f"y{i}" for i in range(self.linear.out_features)]

    def output_affine(self) -> tuple[Tensor, Tensor]:
        """Scale and shift (num_outputs,) taking z to output units; identity unless targets are standardized."""
        ones = torch.ones(self.linear.out_features, device=self.feature_mean.device)
        return ones, torch.zeros_like(ones)

    # -- the model -----------------------------------------------------------------------------------------------

    def standardize(self, features: Tensor) -> Tensor:
        """Raw features (B, D) -> standardized features (B, D)."""
        return (features - self.feature_mean) / self.feature_scale

    def forward(self, features: Tensor) -> Tensor:
        """Raw features (B, D) -> predictions (B, num_outputs) in the user's units."""
        return self.decode(self.layer_outputs(features))  # (B, D) -> (B, K)

    def layer_outputs(self, features: Tensor) -> Tensor:
        r"""Raw features (B, D) -> layer outputs z (B, num_outputs) of the layer on standardized features.

        :math:`z = W (x - \mu) / \sigma + b` is computed as :math:`z = (W / \sigma) x + (b - (W / \sigma) \mu)`:
        the same function of the same parameters W and b (so the same gradients and optimizer steps in
        standardized space), but the scaling touches the (num_outputs, D) weights instead of the (B, D) batch,
        which saves two passes over every batch.
        """
        weight = self.linear.weight / self.feature_scale  # (K, D)
        shift = weight @ self.feature_mean  # (K,)
        bias = self.linear.bias - shift if self.linear.bias is not None else -shift
        return F.linear(features, weight, bias)

    def set_scaling(self, feature_mean: Tensor, feature_scale: Tensor, **_: Tensor) -> None:
        """Store the feature scaling fitted by the DataModule (shape (D,) each)."""
        expected = (self.hparams.in_features,)
        if tuple(feature_mean.shape) != expected or tuple(feature_scale.shape) != expected:
            raise ValueError(
                f"feature scaling has shape {tuple(feature_mean.shape)} but the model has {expected[0]} features"
            )
        self.feature_mean.copy_(feature_mean)
        self.feature_scale.copy_(feature_scale)

    def setup(self, stage: str) -> None:
        """At the start of ``fit``, take the scaling fitted by the DataModule on its training rows."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and datamodule is not None and hasattr(datamodule, "scaling_statistics"):
            statistics = datamodule.scaling_statistics()
            self.set_scaling(**vars(statistics))
        if self._trainer is not None and str(self.trainer.precision).startswith("64"):
            # module.double() leaves torchmetrics' states alone; accumulate the metrics in float64 too.
            for collection in self.metrics.values():
                collection.set_dtype(torch.float64)

    @property
    def coef_(self) -> np.ndarray:
        """Weights in original units, shape (num_outputs, D), as scikit-learn's ``coef_``."""
        return self._raw_affine()[0]

    @property
    def intercept_(self) -> np.ndarray:
        """Intercepts in original units, shape (num_outputs,), as scikit-learn's ``intercept_``."""
        return self._raw_affine()[1]

    @torch.no_grad()
    def _raw_affine(self) -> tuple[np.ndarray, np.ndarray]:
        r"""Fold the scaling into the layer: :math:`s \odot (W (x - \mu) / \sigma + b) + t = W' x + b'`."""
        weight = self.linear.weight.double()  # (K, D)
        bias = self.linear.bias.double() if self.linear.bias is not None else torch.zeros(weight.shape[0])
        scale, shift = (t.double().cpu() for t in self.output_affine())
        weight_per_feature = weight.cpu() / self.feature_scale.double().cpu()  # (K, D)
        coef = scale[:, None] * weight_per_feature
        intercept = scale * (bias.cpu() - weight_per_feature @ self.feature_mean.double().cpu()) + shift
        return coef.numpy(), intercept.numpy()

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

    def _training_optimizer(self) -> torch.optim.Optimizer | None:
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        return getattr(optimizers[0], "optimizer", optimizers[0]) if optimizers else None

    def _l1_by_proximal_step(self) -> bool:
        # ISTA is proximal *gradient descent*: the soft-threshold after a step of size lr is exact for plain
        # (full- or mini-batch) SGD, and a standard heuristic with momentum; Adam's per-coordinate steps and
        # L-BFGS's line search have no such step size, so they get the subgradient.
        return type(self._training_optimizer()) is torch.optim.SGD

    def on_train_start(self) -> None:
        """Say once when L1 is penalized with an optimizer that can only use its subgradient."""
        if self.l1_strength and not self._l1_by_proximal_step():
            name = type(self._training_optimizer()).__name__
            rank_zero_warn(
                f"l1_strength with {name} uses the L1 subgradient: weights hover around zero instead of reaching "
                "it; use torch.optim.SGD for proximal steps that give exact zeros"
            )

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Step; then apply the L1 proximal step (plain SGD) and refuse non-finite weights."""
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if self.l1_strength and self._l1_by_proximal_step():
            weight = self.linear.weight
            group = next(g for g in self._training_optimizer().param_groups if any(p is weight for p in g["params"]))
            with torch.no_grad():
                weight.copy_(soft_threshold(weight, group["lr"] * self.l1_strength / self._penalty_divisor))
        self._check_finite()

    def _check_finite(self) -> None:
        """Stop training when this step's loss or the updated weights are NaN or infinite.

        Checked after the optimizer step, before any callback's on_train_batch_end or epoch end can write a
        checkpoint, with one read of three numbers: a sum is non-finite when any entry is (NaN and inf propagate).
        Under DDP the decision rests on the weights alone, which the gradient all-reduce keeps identical on every
        rank (a NaN loss on one rank makes everyone's gradients NaN), so all ranks stop together without a
        collective per step.
        """
        weight, bias = self.linear.weight, self.linear.bias
        with torch.no_grad():
            sums = [weight.sum()] if bias is None else [weight.sum(), bias.sum()]
            loss = self._last_train_loss if self._last_train_loss is not None else weight.new_zeros(())
            loss_value, *weight_sums = torch.stack([loss.to(weight.dtype), *sums]).tolist()
        weights_finite = all(math.isfinite(value) for value in weight_sums)
        loss_finite = math.isfinite(loss_value) or self.trainer.world_size > 1
        if not (weights_finite and loss_finite):
            what = (
                f"the training loss is {loss_value}"
                if not math.isfinite(loss_value)
                else f"the training loss was {loss_value:.6g}"
            )
            if not weights_finite:
                what += " and the weights became non-finite in this optimizer step"
            self._diverged(what, step=self.trainer.global_step)

    def _diverged(self, what: str, step: int) -> None:
        optimizer = self._training_optimizer()
        learning_rate = optimizer.param_groups[0].get("lr") if optimizer is not None else None
        unscaled = bool(torch.all(self.feature_scale == 1) and torch.all(self.feature_mean == 0))
        causes = [
            f"a learning rate too high for this problem (optimizer.init_args.lr is {learning_rate}; try 10x smaller)",
            "unscaled features: they are not standardized (set data.init_args.standardize: true)"
            if unscaled
            else "features on very different scales",
            "NaN, infinite or extreme values in the data",
        ]
        raise TrainingDivergedError(
            f"training diverged at epoch {self.current_epoch}, step {step}: {what}. No checkpoint of this step "
            f"was written. Likely causes: {'; '.join(causes)}."
        )

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        features, targets = batch  # (B, D), (B, K) or (B,)
        outputs = self.layer_outputs(features)  # (B, D) -> (B, num_outputs)
        loss = self.compute_loss(outputs, targets)
        if stage == "train":
            if self.l1_strength or self.l2_strength:
                loss = loss + self.penalty()
            self._last_train_loss = loss.detach()  # checked with the weights after the optimizer step
        else:
            self.update_metrics(stage, outputs, targets)
        # Summed here and logged once per epoch: `self.log` per step costs more than a linear model's whole step.
        rows = features.shape[0]
        if stage in self._loss_sums:
            self._loss_sums[stage].add_(loss.detach(), alpha=rows)
            self._loss_rows[stage] += rows
        else:
            # At least float32, so that half-precision runs do not sum an epoch of losses in 8 bits of mantissa.
            self._loss_sums[stage] = loss.detach().to(torch.promote_types(loss.dtype, torch.float32)) * rows
            self._loss_rows[stage] = rows
        return loss

    def _reset_epoch_loss(self, stage: str) -> None:
        self._loss_sums.pop(stage, None)
        self._loss_rows.pop(stage, None)

    def _log_epoch_loss(self, stage: str) -> None:
        """Log ``<stage>_loss``, the mean of the stage's batch losses weighted by rows, over all processes."""
        loss_sum = self._loss_sums.pop(stage, None)
        rows = self._loss_rows.pop(stage, 0)
        if loss_sum is None:
            loss_sum = self.linear.weight.new_zeros(())
        total = torch.stack([loss_sum, loss_sum.new_tensor(rows)])
        if self._trainer is not None and self.trainer.world_size > 1:
            total = self.trainer.strategy.reduce(total, reduce_op="sum")  # ranks may hold unequal row counts
        if total[1] > 0:
            # Every rank now holds the same value; sync_dist only averages equal numbers (and keeps Lightning quiet).
            self.log(f"{stage}_loss", total[0] / total[1], sync_dist=True)

    def update_metrics(self, stage: str, outputs: Tensor, targets: Tensor) -> None:
        """Update the stage's metrics from layer outputs z (B, num_outputs); default: ``(decode(z), targets)``."""
        self.metrics[f"{stage}_metrics"].update(self.decode(outputs), targets)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """One optimization step's loss on a training batch."""
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Loss and metrics on a validation batch."""
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Loss and metrics on a test batch."""
        return self._shared_step(batch, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Predictions (B, num_outputs) in the user's units for a batch of raw features."""
        return self(batch[0])

    def prediction_columns(self, predictions: Tensor) -> dict[str, list[Any]]:
        """Columns of the prediction file from ``predict_step`` outputs (N, num_outputs): one per output name."""
        values = predictions.double().numpy()
        return {name: values[:, j].tolist() for j, name in enumerate(self.output_names)}

    def _log_epoch_metrics(self, stage: str) -> None:
        collection = self.metrics[f"{stage}_metrics"]
        for name, value in collection.compute().items():
            value = value.float()
            # compute() has already synced the metric across processes, so every rank holds the same value and
            # sync_dist only averages equal numbers (and keeps Lightning from warning under DDP).
            self.log(name, value.mean(), sync_dist=True)
            if self.per_output_metrics and value.numel() > 1:
                for output_name, output_value in zip(self.output_names, value, strict=True):
                    self.log(f"{name}/{output_name}", output_value, sync_dist=True)
        collection.reset()

    def on_train_epoch_start(self) -> None:
        """Start the epoch's loss sum afresh."""
        self._reset_epoch_loss("train")

    def on_train_epoch_end(self) -> None:
        """Log ``train_loss`` (before EarlyStopping and ModelCheckpoint look at it: they run after this hook)."""
        self._log_epoch_loss("train")

    def on_validation_epoch_start(self) -> None:
        """Start the validation loss sum afresh."""
        self._reset_epoch_loss("val")

    def on_validation_epoch_end(self) -> None:
        """Log ``val_loss`` and the validation metrics (torchmetrics has synced them across processes)."""
        self._log_epoch_loss("val")
        self._log_epoch_metrics("val")

    def on_test_epoch_start(self) -> None:
        """Start the test loss sum afresh."""
        self._reset_epoch_loss("test")

    def on_test_epoch_end(self) -> None:
        """Log ``test_loss`` and the test metrics."""
        self._log_epoch_loss("test")
        self._log_epoch_metrics("test")

    def configure_optimizers(self) -> Any:
        """SGD with lr 0.1 for use outside the CLI; the CLI's ``optimizer:`` group replaces it."""
        return torch.optim.SGD(self.parameters(), lr=0.1)
