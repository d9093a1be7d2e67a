r"""Logistic regression's Newton solver (``solver="newton"``) and the log-loss certificate of any fit.

**One epoch, one Newton step.** The DataModule serves the training rows as one covering pass in chunks
(:meth:`~lr_lightning.data.contract.TrainingData.stream_training_rows`: under DDP each rank its shard). Each chunk
adds its rows' log-loss, gradient and Hessian, in float64, to :class:`~lr_lightning.streaming.newton_logistic.
NewtonSums` at the layer's current parameters (the weights on standardized features and the bias: the layer's own
coordinates). After the last chunk the ranks' sums are all-gathered and added in rank order, Newton's direction is
solved (:func:`~lr_lightning.streaming.newton_logistic.newton_step`), a second pass sums the objective at 21
trial steps at once and Armijo's rule picks the largest good one, and the layer takes the step, on every rank the
same. Near the optimum the convergence is quadratic: a few epochs reach machine precision, and once the Newton
decrement's estimate of the gap is below ``1e-15`` of the objective the full step is taken without the second pass.

**Logs.** ``train_loss`` is the objective (mean log-loss plus the L2 penalty) at the epoch's starting weights,
``log_loss_gap`` the Newton decrement's estimate :math:`\lambda^2 / 2` of its distance to the optimum there.

**Separable rows.** Unpenalized (``l2_strength = 0``), if some iterate classifies every training row correctly
the rows are linearly separable and the log-loss has no minimum: the fit stops with an ``InputError`` that says
so and suggests ``l2_strength``.

**The certificate** (:class:`LogLossCertificate`, for any optimizer): at the end of ``fit`` one more pass gives
the Newton decrement at the final weights, :math:`\lambda^2 / 2 \approx f(\theta) - f^*`, logged as
``log_loss_certificate`` (at the last step, beside the Newton solver's per-epoch ``log_loss_gap``) and printed with
the end-of-fit summary.

**Limits.** The Hessian is :math:`P^2` float64 values with :math:`P = K (D + 1)` (K = 1 logit for two classes,
C otherwise); above :data:`~lr_lightning.streaming.newton_logistic.MAX_PARAMETERS` = 4096 parameters (a 128 MB
Hessian) the solver is refused and the certificate skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from lr_lightning.data.base import trainer_datamodule
from lr_lightning.data.contract import TrainingData
from lr_lightning.data.ranks import Ranks
from lr_lightning.errors import InputError
from lr_lightning.inference.logistic import class_counts
from lr_lightning.streaming.newton_logistic import (
    Layout,
    LineSearchSums,
    NewtonStep,
    NewtonSums,
    check_separable,
    choose_step,
    newton_step,
)

if TYPE_CHECKING:
    from lr_lightning.models.logistic import LogisticRegression

__all__ = ["CONVERGED", "FinalSums", "LogLossCertificate", "NewtonEpoch", "final_sums"]

#: The relative gap estimate below which the full Newton step is taken without a line search.
CONVERGED = 1e-15


class _Parameters:
    """The layer's parameters as Newton's flat float64 vector theta, and back."""

    def __init__(self, model: LogisticRegression) -> None:
        self.layout = Layout.for_classes(model.num_classes, model.linear.in_features, model.fit_intercept)
        self.mean = model.feature_mean.detach().double().cpu().numpy()  # (D,)
        self.scale = model.feature_scale.detach().double().cpu().numpy()  # (D,)

    def read(self, model: LogisticRegression) -> np.ndarray:
        """Theta (P,) of ``model``'s layer."""
        layer = model.linear
        bias = layer.bias.detach().double().cpu().numpy() if layer.bias is not None else None
        return self.layout.pack(layer.weight.detach().double().cpu().numpy(), bias)

    @torch.no_grad()
    def write(self, model: LogisticRegression, theta: np.ndarray) -> None:
        """Set ``model``'s layer to theta (P,)."""
        weight, bias = self.layout.unpack(theta)
        layer = model.linear
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype, device=layer.weight.device))
        if layer.bias is not None and bias is not None:
            layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype, device=layer.bias.device))


def _row_weights(model: LogisticRegression, labels: Any, weights: Any) -> np.ndarray | None:
    """Float64 weights (n,) of a chunk's rows: sample weights times class weights; ``None`` when every row weighs 1."""
    row_weights = model.row_weights(torch.as_tensor(labels), None if weights is None else torch.as_tensor(weights))
    return None if row_weights is None else row_weights.detach().to("cpu", torch.float64).numpy()


def _training_data(model: pl.LightningModule) -> TrainingData:
    data = trainer_datamodule(model.trainer)
    if not isinstance(data, TrainingData):
        raise InputError("solver 'newton' needs one of lr_lightning's DataModules (it streams the training rows)")
    return data


class NewtonEpoch:
    """One epoch of the Newton solver for ``model``: :meth:`update` per chunk, then :meth:`step`."""

    def __init__(self, model: LogisticRegression) -> None:
        self.model = model
        self.parameters = _Parameters(model)
        self.theta = self.parameters.read(model)
        self.sums = NewtonSums(self.parameters.layout)
        self.done = False

    def update(self, features: Tensor, labels: Tensor, weights: Tensor | None = None) -> None:
        """Add a chunk of raw features (n, D), labels (n,) and sample weights (n,) at the epoch's parameters."""
        x = features.detach().to("cpu", torch.float64).numpy()
        y = labels.detach().cpu().numpy()
        w = _row_weights(self.model, y, weights)
        self.sums.add(x, y, self.theta, self.parameters.mean, self.parameters.scale, weights=w)

    def finish(self, model: LogisticRegression) -> float:
        """Take the epoch's Newton step (:meth:`step`), log ``log_loss_gap``; return the objective (``train_loss``)."""
        step = self.step(model)
        model.log("log_loss_gap", step.decrement / 2, on_step=False, on_epoch=True, sync_dist=True)
        return step.objective

    def step(self, model: LogisticRegression) -> NewtonStep:
        """Merge the ranks' sums, take the Newton step with a line search, and set ``model``'s layer.

        Returns:
            The step at the epoch's starting parameters: objective, gradient, direction, decrement.

        Raises:
            InputError: unpenalized and linearly separable rows (no minimum exists).

        """
        self.done = True
        layout, l2 = self.parameters.layout, model.l2_strength
        ranks = Ranks.of(model._trainer)
        sums = NewtonSums.from_vector(layout, ranks.sum(self.sums.to_vector()))
        check_separable(sums.nonpositive, sums.count, l2)
        step = newton_step(sums, self.theta, l2)
        if step.decrement / 2 <= CONVERGED * abs(step.objective):
            self.parameters.write(model, self.theta + step.direction)
            return step
        search = LineSearchSums(layout)
        data = _training_data(model)
        for features, labels, weights in data.chunks("train", ranks.rank, ranks.world_size):
            w = _row_weights(model, labels, weights)
            search.add(
                features, labels, self.theta, step.direction, self.parameters.mean, self.parameters.scale, weights=w
            )
        search = LineSearchSums.from_vector(layout, tuple(search.steps), ranks.sum(search.to_vector()))
        size = choose_step(search, step, self.theta, l2)
        if size == 0:  # rounding swamps the decrease: the weights stay, and the logged gap says how close they are
            rank_zero_warn(
                f"Newton's line search found no step that lowers the objective (gap estimate {step.decrement / 2:.3g} "
                "at these weights): the weights are kept; the data may be nearly separable or badly scaled"
            )
            return step
        check_separable(search.nonpositive[list(search.steps).index(size)], search.count, l2)
        self.parameters.write(model, self.theta + size * step.direction)
        return step


@dataclass(frozen=True)
class FinalSums:
    """One pass at the final weights, merged over ranks: the log-loss sums, theta (P,) and class counts (C,)."""

    sums: NewtonSums
    theta: np.ndarray
    class_counts: np.ndarray


def final_sums(trainer: pl.Trainer, pl_module: pl.LightningModule) -> FinalSums | None:
    """Stream the training rows once at ``pl_module``'s weights (a collective under DDP: every rank calls it).

    ``None`` for a model that is not a :class:`LogisticRegression`, data without the data contract, or a layout
    too large for a Hessian (said once).
    """
    from lr_lightning.models.logistic import LogisticRegression

    if not isinstance(pl_module, LogisticRegression) or not isinstance(trainer_datamodule(trainer), TrainingData):
        return None
    try:
        parameters = _Parameters(pl_module)
    except InputError as error:  # too many parameters for a Hessian
        rank_zero_info(f"LogLossCertificate: skipped, {error}")
        return None
    theta = parameters.read(pl_module)
    sums = NewtonSums(parameters.layout)
    counts = np.zeros(pl_module.num_classes)
    ranks = Ranks.of(trainer)
    for features, labels, weights in _training_data(pl_module).chunks("train", ranks.rank, ranks.world_size):
        w = _row_weights(pl_module, labels, weights)
        sums.add(features, labels, theta, parameters.mean, parameters.scale, weights=w)
        counts += class_counts(labels, pl_module.num_classes, w)
    merged = ranks.sum(np.concatenate([sums.to_vector(), counts]))
    size = merged.shape[0] - pl_module.num_classes
    return FinalSums(NewtonSums.from_vector(parameters.layout, merged[:size]), theta, merged[size:])


class LogLossCertificate(Callback):
    r"""At the end of ``fit``, the Newton decrement of a logistic regression's final weights: its certificate.

    One streaming pass over the training rows (each DDP rank its shard) sums the gradient and the Hessian of the
    objective at the final parameters; :math:`\lambda^2 / 2 = g^\top H^{-1} g / 2` estimates how far the
    objective (mean log-loss plus the L2 penalty) is above its minimum, to leading order near it (exact for a
    quadratic). Logged as ``log_loss_certificate`` at the last step and printed at the end of fit. Whatever the
    optimizer: a gradient fit learns how far it stopped from the optimum that Newton's method would reach.

    Attributes:
        certificate: ``(gap estimate, objective)`` at the final weights, or ``None``.

    """

    def __init__(self) -> None:
        self.certificate: tuple[float, float] | None = None
        #: The pass's merged sums at the final weights, theta (P,) and class counts (C,): the inference summary
        #: (:mod:`lr_lightning.summary`) reads them instead of streaming the rows again.
        self.final: FinalSums | None = None
        self._taken = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Forget the last fit's pass."""
        self.certificate, self.final, self._taken = None, None, False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Sum the gradient and Hessian at the final weights (a collective under DDP) and log the gap estimate."""
        self.take(trainer, pl_module)

    def take(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Take the certificate's pass once per fit (whoever asks first at the end of fit: every rank must ask)."""
        if self._taken:
            return
        self._taken = True
        self.certificate, self.final = None, final_sums(trainer, pl_module)
        if self.final is None:
            return
        from lr_lightning.models.logistic import LogisticRegression

        assert isinstance(pl_module, LogisticRegression)  # final_sums returns None for any other model
        step = newton_step(self.final.sums, self.final.theta, pl_module.l2_strength)
        self.certificate = (step.decrement / 2, step.objective)
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics({"log_loss_certificate": step.decrement / 2}, step=trainer.global_step)

    def summary_line(self) -> str | None:
        """Return the certificate of the fit: the gap estimate and the objective it is measured against."""
        if self.certificate is None:
            return None
        gap, objective = self.certificate
        return (
            f"Certificate: log-loss gap {gap:.3g} (Newton decrement λ²/2 at the final weights; objective "
            f"{objective:.10g}): how far the training objective is above its minimum, to leading order"
        )
