r"""Logistic regression: binary (one logit) and multi-class (softmax), trained on the log-loss."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any, ClassVar

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import AUROC, F1Score, MetricCollection

from lr_lightning.data.contract import Task, TrainingData
from lr_lightning.errors import InputError, require
from lr_lightning.inference.logistic import class_counts
from lr_lightning.models.base import LinearModelBase
from lr_lightning.models.newton_fit import LogLossCertificate, NewtonEpoch
from lr_lightning.models.solvers import check_solver
from lr_lightning.models.weighted_metrics import WeightedAccuracy
from lr_lightning.models.weighting import weighted_mean
from lr_lightning.streaming.newton_logistic import Layout
from lr_lightning.summary import inference_summary

__all__ = ["LOSSES", "LogisticRegression"]

LOSSES = ("cross_entropy", "mse")

#: ``class_weight``'s named choice: scikit-learn's "balanced".
BALANCED = "balanced"


class LogisticRegression(LinearModelBase):
    r"""Linear classifier :math:`p(y \mid x) = \sigma(W x + b)` (binary) or :math:`\mathrm{softmax}(W x + b)`.

    With two classes the layer has one logit :math:`z` and the loss is the binary log-loss in its stable form
    (``BCEWithLogitsLoss``; never a sigmoid followed by a log),

    .. math::

        L = -\frac{1}{B} \sum_{i=1}^{B} \big[ y_i \log \sigma(z_i) + (1 - y_i) \log (1 - \sigma(z_i)) \big];

    with :math:`C \ge 3` classes the layer has C logits and the loss is the softmax cross-entropy
    :math:`L = -\frac{1}{B} \sum_i \log \mathrm{softmax}(z_i)_{y_i}`. ``loss="mse"`` instead trains on
    :math:`\frac{1}{B} \sum_i (\sigma(z_i) - y_i)^2` (one-hot targets for C >= 3): flat where the sigmoid
    saturates, so it learns slower — the course notebook's lesson, kept for teaching; cross-entropy is the
    default.

    **Weights.** Each row's loss :math:`\ell_i` weighs :math:`v_i = c_{y_i} w_i`, its class's weight
    (``class_weight``) times its sample weight (the data's ``weights``), and the loss is the weighted mean
    :math:`\sum_i v_i \ell_i / \sum_i v_i` (:meth:`row_weights`): the minimizer of scikit-learn's
    ``LogisticRegression(class_weight=...).fit(X, y, sample_weight=w)``, with the penalties' mapping of ``C``
    where N reads :math:`\sum_i v_i`. ``val_loss`` and ``test_loss`` weigh rows the same way (class weights
    included: they are the objective on other rows). Accuracy weighs rows by their sample weights only, as
    scikit-learn's ``accuracy_score(sample_weight=w)``; AUROC and F1 weigh no rows (torchmetrics' take no weights).

    Args:
        in_features: D, the number of features (linked from ``data.num_features``).
        num_classes: C >= 2 (linked from ``data.num_classes``).
        loss: ``"cross_entropy"`` (the log-loss) or ``"mse"`` on the probabilities.
        class_names: names of the C classes (linked from the data); string labels come back as strings.
        solver: ``"gradient"`` (the default): train with the optimizer on batches; ``"newton"``: one Newton step
            with a line search per epoch, from float64 sums of the log-loss's gradient and Hessian over one
            streaming pass of the training rows (merged across DDP ranks, out of core too), no optimizer: a few
            epochs reach the optimum to machine precision. Cross-entropy only, ``l1_strength`` 0, at most 4096
            parameters K (D + 1). See :mod:`lr_lightning.models.newton_fit`.
        certificate: at the end of ``fit``, one more streaming pass gives the Newton decrement at the final weights,
            an estimate of how far the objective is above its minimum (``log_loss_certificate``), whatever the solver
            (:class:`~lr_lightning.models.newton_fit.LogLossCertificate`). Cross-entropy only.
        class_weight: the weight of each class's rows in the loss, scikit-learn's option: ``None`` (every class
            weighs 1); ``"balanced"``, :math:`c_k = n / (C\, n_k)` from the number :math:`n_k` of training rows
            of class k (with sample weights, their sum, as scikit-learn), resolved when ``fit`` starts; or a
            weight per class name (``{setosa: 2.0}``; names are compared as text, so YAML's ``{0: 2.0}`` names
            class ``"0"``), each > 0 and finite, the classes it leaves out weighing 1. The resolved (C,) weights
            are the buffer ``class_weights``, saved in checkpoints.
        kwargs: the options every model shares, ``bias``, ``feature_names``, ``l1_strength``, ``l2_strength``,
            ``init``, ``init_std`` and ``optimizer``: see :class:`~lr_lightning.models.base.LinearModelBase`
            (``optimizer`` builds the optimizer from the parameters; the CLI's ``optimizer:`` group replaces it).
            ``l2_strength`` is not divided by the number of logits (the log-loss sums over them);
            :mod:`lr_lightning.penalties` gives scikit-learn's ``LogisticRegression(C)`` with the same minimizer.

    Attributes:
        coef_: weights in original feature units, shape (1, D) for binary, (C, D) otherwise, as scikit-learn.
        intercept_: shape (1,) or (C,).

    """

    task: ClassVar[Task] = "classification"

    loss_averages_outputs = False  # the log-loss of a row sums over its classes

    # The (C,) class weights, registered in __init__.
    class_weights: Tensor

    def __init__(
        self,
        in_features: int,
        num_classes: int = 2,
        loss: str = "cross_entropy",
        class_names: list[str] | None = None,
        solver: str = "gradient",
        certificate: bool = True,
        class_weight: str | dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        require(num_classes >= 2, "num_classes", ">= 2", num_classes)
        require(loss in LOSSES, "loss", f"one of {LOSSES}", loss)
        if class_names is not None and len(class_names) != num_classes:
            raise InputError(f"class_names has {len(class_names)} names but num_classes={num_classes}")
        self.num_classes = num_classes
        self.class_names = [str(c) for c in class_names] if class_names else [str(c) for c in range(num_classes)]
        num_outputs = 1 if num_classes == 2 else num_classes
        super().__init__(in_features, num_outputs, **kwargs)
        self.solver = check_solver(solver, "newton", self.l1_strength, "the L2-penalized log-loss by Newton's method")
        if self.solver == "newton":
            require(loss == "cross_entropy", "loss", "'cross_entropy' with solver 'newton'", loss)
            Layout.for_classes(num_classes, in_features, self.fit_intercept)  # refuses a Hessian too large
        # The Newton solver steps no optimizer: Lightning's manual optimization, whose steps it never takes.
        self.automatic_optimization = not self.streams_training_rows
        weights_by_name = _check_class_weight(class_weight, self.class_names)
        if weights_by_name is not None:
            self.hparams["class_weight"] = weights_by_name  # str keys (YAML may give ints), so checkpoints load
        # Persistent only when set: checkpoints of models without class weights (older ones too) have no such tensor.
        self.register_buffer("class_weights", torch.ones(num_classes), persistent=class_weight is not None)
        if weights_by_name is not None:
            self.class_weights.copy_(torch.tensor([weights_by_name.get(name, 1.0) for name in self.class_names]))

    def configure_callbacks(self) -> list[Callback]:
        """Return the log-loss certificate (a Newton decrement at the end of fit), unless off or not a log-loss."""
        certificate = self.hparams["certificate"] and self.hparams["loss"] == "cross_entropy"
        return ([LogLossCertificate()] if certificate else []) + inference_summary(self)

    def start_pass(self) -> NewtonEpoch:
        """Return the Newton solver's epoch: gradient and Hessian sums over the training rows, then one step."""
        return NewtonEpoch(self)

    @property
    def is_binary(self) -> bool:
        """Two classes, one logit."""
        return self.num_classes == 2

    def configure_metrics(self) -> MetricCollection:
        """Accuracy, AUROC and F1: binary, or over C classes (accuracy over rows, AUROC and F1 macro-averaged).

        Accuracy weighs rows by their sample weights; AUROC and F1 do not (see the class docstring).
        """
        if self.is_binary:
            return MetricCollection(
                {"acc": WeightedAccuracy(task="binary"), "auroc": AUROC(task="binary"), "f1": F1Score(task="binary")}
            )
        classes: dict[str, Any] = {"task": "multiclass", "num_classes": self.num_classes}
        return MetricCollection(
            {
                "acc": WeightedAccuracy(task="multiclass"),
                "auroc": AUROC(**classes, average="macro"),
                "f1": F1Score(**classes, average="macro"),
            }
        )

    @property
    def output_names(self) -> list[str]:
        """The class names."""
        return self.class_names

    def compute_loss(self, outputs: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        """Log-loss (or MSE on probabilities) of logits (B, 1 or C) against labels (B,), rows weighted by (B,).

        ``weights`` are the rows' weights in the loss, :meth:`row_weights` (class weights included).
        """
        if self.hparams["loss"] == "mse":
            probabilities = self.probabilities(outputs)  # (B, C)
            one_hot = F.one_hot(targets.long(), self.num_classes).to(probabilities.dtype)
            if weights is None:
                if self.is_binary:
                    return F.mse_loss(probabilities[:, 1], one_hot[:, 1])
                return F.mse_loss(probabilities, one_hot)
            squared_errors = (probabilities - one_hot).square()  # (B, C)
            row_losses = squared_errors[:, 1] if self.is_binary else squared_errors.mean(dim=-1)  # (B,)
            return weighted_mean(row_losses, weights)
        if self.is_binary:
            logits, labels = outputs.squeeze(-1), targets.to(outputs.dtype)  # (B,), (B,)
            if weights is None:
                return F.binary_cross_entropy_with_logits(logits, labels)
            return weighted_mean(F.binary_cross_entropy_with_logits(logits, labels, reduction="none"), weights)
        if weights is None:
            return F.cross_entropy(outputs, targets.long())
        return weighted_mean(F.cross_entropy(outputs, targets.long(), reduction="none"), weights)

    def row_weights(self, labels: Tensor, weights: Tensor | None) -> Tensor | None:
        """Each row's weight in the loss (n,): its class's weight times its sample weight (``weights``, (n,)).

        ``None`` when every row weighs 1 (no ``class_weight`` and no sample weights). On the labels' device.
        """
        if not self.has_class_weights:
            return weights
        per_row = self.class_weights.to(labels.device)[labels.long()]  # (C,) -> (n,)
        return per_row if weights is None else per_row * weights

    @property
    def has_class_weights(self) -> bool:
        """Whether ``class_weight`` is set: :meth:`row_weights` then multiplies in each row's class weight."""
        return self.hparams.get("class_weight") is not None

    def _resolve_class_weights(self, data: TrainingData | None) -> None:
        """Set the buffer ``class_weights`` (C,) for a fit on ``data``, in float64 when the trainer runs in float64.

        ``setup`` runs before the precision plugin converts the module (``.double()`` under ``64-true``), so the
        weights are set here in the dtype they will train in, not rounded through float32 first.
        """
        class_weight = self.hparams["class_weight"]
        if class_weight == BALANCED:
            if data is None:
                raise InputError(
                    "class_weight 'balanced' needs the training rows' class counts: fit with one of lr_lightning's "
                    "DataModules, or give a weight per class name"
                )
            values = _balanced_weights(_class_totals(data, self.num_classes), self.class_names)
        else:
            values = np.array([class_weight.get(name, 1.0) for name in self.class_names])
        double = self._trainer is not None and str(self.trainer.precision).startswith("64")
        dtype = torch.float64 if double else self.class_weights.dtype
        self.register_buffer("class_weights", torch.as_tensor(values, dtype=dtype, device=self.class_weights.device))

    def probabilities(self, outputs: Tensor) -> Tensor:
        """Class probabilities (B, C) from logits (B, 1) or (B, C)."""
        if self.is_binary:
            positive = torch.sigmoid(outputs)  # (B, 1)
            return torch.cat([1.0 - positive, positive], dim=-1)  # (B, 2)
        return torch.softmax(outputs, dim=-1)

    def decode(self, outputs: Tensor) -> Tensor:
        """Map logits to class probabilities (B, C)."""
        return self.probabilities(outputs)

    def update_metrics(self, stage: str, outputs: Tensor, targets: Tensor, weights: Tensor | None = None) -> None:
        """Binary metrics take the positive class's probability (B,); multi-class ones all C columns.

        ``weights`` (B,), the sample weights, go to accuracy only.
        """
        probabilities = self.probabilities(outputs)
        predictions = probabilities[:, 1] if self.is_binary else probabilities
        self.stage_metrics(stage).update(predictions, targets.long(), weights=weights)

    def setup(self, stage: str) -> None:
        """Besides the scaling, check the data's classes (the data checked its labels); resolve "balanced" weights."""
        super().setup(stage)
        data = self.training_data()
        if stage == "fit" and data is not None and len(data.output_names) != self.num_classes:
            raise InputError(
                f"the data holds {len(data.output_names)} classes ({', '.join(data.output_names)}) but the model "
                f"has num_classes={self.num_classes}; set model.init_args.num_classes to {len(data.output_names)}"
            )
        if stage == "fit" and self.has_class_weights:
            self._resolve_class_weights(data)

    def predict_proba(self, features: Any) -> np.ndarray:
        """Class probabilities (N, C) for features (N, D) of any numeric array type, columns in ``class_names``."""
        return self._outputs(features)

    def predict(self, features: Any) -> np.ndarray:
        """Return the most probable class name of each row, shape (N,)."""
        return np.asarray(self.class_names, dtype=object)[self._outputs(features).argmax(axis=1)]

    def score(self, features: Any, targets: Any) -> float:
        """Accuracy of :meth:`predict` against class labels (names, or labels that print as the names)."""
        from sklearn.metrics import accuracy_score

        labels = np.asarray([str(label) for label in np.asarray(targets).reshape(-1)], dtype=object)
        return float(accuracy_score(labels, self.predict(features)))

    def prediction_columns(self, predictions: Tensor, target_columns: list[str] | None = None) -> dict[str, Any]:
        """One probability array (N,) per class (``p_<class>``), and the predicted class names.

        The predicted class goes under the label column's name (``target_columns``), ``label`` when unknown.
        """
        probabilities = predictions.numpy()
        columns: dict[str, Any] = {f"p_{name}": probabilities[:, j] for j, name in enumerate(self.class_names)}
        label = target_columns[0] if target_columns else "label"
        columns[label] = [self.class_names[j] for j in probabilities.argmax(axis=-1).tolist()]
        return columns


def _check_class_weight(class_weight: Any, class_names: list[str]) -> dict[str, float] | None:
    """Return a ``class_weight`` dict with text keys and float values, ``None`` otherwise; refuse a bad value."""
    if class_weight is None or class_weight == BALANCED:
        return None
    if not isinstance(class_weight, Mapping):
        raise InputError(f"class_weight must be 'balanced', a weight per class name or null, got {class_weight!r}")
    weights: dict[str, float] = {}
    for name, weight in class_weight.items():
        if str(name) not in class_names:
            raise InputError(
                f"class_weight names class {str(name)!r}, which is not one of the classes ({', '.join(class_names)})"
            )
        value = float(weight) if isinstance(weight, Real) and not isinstance(weight, bool) else math.nan
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"class_weight[{str(name)!r}] must be a finite number > 0, got {weight!r}")
        weights[str(name)] = value
    return weights


def _class_totals(data: TrainingData, num_classes: int) -> np.ndarray:
    """Return the training rows' weight per class (C,) float64: their sample weights' sums, or counts if unweighted."""
    if not data.weighted:
        return np.asarray(data.class_counts(), dtype=np.float64)
    totals = np.zeros(num_classes)
    for _, labels, weights in data.chunks("train"):
        totals += class_counts(labels, num_classes, weights)
    return totals


def _balanced_weights(totals: np.ndarray, class_names: list[str]) -> np.ndarray:
    """scikit-learn's "balanced" class weights n / (C n_k) from the training rows' weight per class n_k (C,)."""
    for name, total in zip(class_names, totals.tolist(), strict=True):
        if total <= 0:
            raise InputError(f"class_weight 'balanced': class {name!r} has no training rows (of positive weight)")
    return totals.sum() / (len(totals) * totals)
