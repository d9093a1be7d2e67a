r"""Metrics whose rows may carry weights: MSE, MAE and R² per output, and accuracy; torchmetrics, no Lightning.

Each is a torchmetrics :class:`~torchmetrics.Metric` whose ``update(preds, target, weights=None)`` adds weighted
sums to its states; with ``weights=None`` every row weighs 1 and the values are torchmetrics' own
(``MeanSquaredError``, ``MeanAbsoluteError``, ``R2Score(multioutput="raw_values")``, ``Accuracy``) to float
rounding. With row weights :math:`w_i \ge 0` they are scikit-learn's with ``sample_weight=w``:

.. math::

    \mathrm{MSE}_k = \frac{\sum_i w_i (y_{ik} - \hat y_{ik})^2}{\sum_i w_i}, \qquad
    \mathrm{MAE}_k = \frac{\sum_i w_i \lvert y_{ik} - \hat y_{ik} \rvert}{\sum_i w_i}, \qquad
    R^2_k = 1 - \frac{\sum_i w_i (y_{ik} - \hat y_{ik})^2}{\sum_i w_i (y_{ik} - \bar y_k)^2},
    \quad \bar y_k = \frac{\sum_i w_i y_{ik}}{\sum_i w_i},

and accuracy :math:`\sum_i w_i [\hat c_i = c_i] / \sum_i w_i`. Every state is a sum with ``dist_reduce_fx="sum"``, so
DDP merges them exactly; they take the dtype the model gives them (float64 under ``64-true``: ``set_dtype``).

AUROC and F1 take no weights: the models keep torchmetrics' unweighted ones, and a
:class:`~torchmetrics.MetricCollection` passes ``weights=`` only to the metrics whose ``update`` names it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["WeightedAccuracy", "WeightedMeanAbsoluteError", "WeightedMeanSquaredError", "WeightedR2Score"]


def _columns(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Predictions and targets as (B, K) columns of one shape (targets (B,) with K = 1 included)."""
    preds = preds.reshape(preds.shape[0], -1)
    return preds, target.reshape(preds.shape)


def _weighted_column_sums(values: Tensor, weights: Tensor | None) -> Tensor:
    """Sum (B, K) values over rows, each row times its weight (B,) when given: (K,)."""
    if weights is None:
        return values.sum(dim=0)
    return weights.to(values.dtype) @ values  # (B,) @ (B, K) -> (K,)


def _weight_sum(weights: Tensor | None, rows: int, like: Tensor) -> Tensor:
    """Σ w_i, or the number of rows when unweighted, in ``like``'s dtype and device (a scalar)."""
    return like.new_tensor(rows) if weights is None else weights.sum().to(like.dtype)


class _RowWeightedMetric(Metric):
    """Shared settings: sums only (so no full-state update) and per-output values."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, num_outputs: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_outputs, int) or num_outputs < 1:
            raise ValueError(f"Expected num_outputs to be a positive integer, got {num_outputs!r}")
        self.num_outputs = num_outputs
        self.add_state("weight", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def _per_output(self, value: Tensor) -> Tensor:
        """(K,) values; a scalar when there is one output, as torchmetrics' MSE and MAE report it."""
        return value.squeeze(0) if self.num_outputs == 1 else value


class WeightedMeanSquaredError(_RowWeightedMetric):
    """Mean squared error per output (K,) (a scalar for K = 1), rows weighted by ``weights`` (B,) if given."""

    higher_is_better = False
    sum_squared_error: Tensor
    weight: Tensor

    def __init__(self, num_outputs: int = 1, **kwargs: Any) -> None:
        super().__init__(num_outputs, **kwargs)
        self.add_state("sum_squared_error", default=torch.zeros(num_outputs), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, weights: Tensor | None = None) -> None:
        """Add predictions (B, K) against targets (B, K), rows weighted by ``weights`` (B,)."""
        preds, target = _columns(preds, target)
        squared_error = (preds - target).square()  # (B, K)
        self.sum_squared_error += _weighted_column_sums(squared_error, weights).to(self.sum_squared_error.dtype)
        self.weight += _weight_sum(weights, preds.shape[0], self.weight)

    def compute(self) -> Tensor:
        """Σ w (y - ŷ)² / Σ w per output."""
        return self._per_output(self.sum_squared_error / self.weight)


class WeightedMeanAbsoluteError(_RowWeightedMetric):
    """Mean absolute error per output (K,) (a scalar for K = 1), rows weighted by ``weights`` (B,) if given."""

    higher_is_better = False
    sum_abs_error: Tensor
    weight: Tensor

    def __init__(self, num_outputs: int = 1, **kwargs: Any) -> None:
        super().__init__(num_outputs, **kwargs)
        self.add_state("sum_abs_error", default=torch.zeros(num_outputs), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, weights: Tensor | None = None) -> None:
        """Add predictions (B, K) against targets (B, K), rows weighted by ``weights`` (B,)."""
        preds, target = _columns(preds, target)
        abs_error = (preds - target).abs()  # (B, K)
        self.sum_abs_error += _weighted_column_sums(abs_error, weights).to(self.sum_abs_error.dtype)
        self.weight += _weight_sum(weights, preds.shape[0], self.weight)

    def compute(self) -> Tensor:
        """Σ w |y - ŷ| / Σ w per output."""
        return self._per_output(self.sum_abs_error / self.weight)


class WeightedR2Score(_RowWeightedMetric):
    r"""Coefficient of determination per output, shape (K,) (``multioutput="raw_values"``), rows weighted.

    The weighted total sum of squares comes from the sums :math:`\sum w y^2 - (\sum w y)^2 / \sum w`, as
    torchmetrics computes the unweighted one. An output whose targets do not vary over the rows of positive
    weight (told exactly by their smallest and largest value, which rounding in those sums cannot tell) scores 1
    when it is predicted exactly and 0 otherwise, as scikit-learn's ``r2_score``; torchmetrics instead treats
    sums below 1e-4 as zero, which misreads targets on a small scale.
    """

    higher_is_better = True
    sum_squared_error: Tensor
    sum_target: Tensor
    sum_squared_target: Tensor
    target_min: Tensor
    target_max: Tensor
    weight: Tensor

    def __init__(self, num_outputs: int = 1, **kwargs: Any) -> None:
        super().__init__(num_outputs, **kwargs)
        for name in ("sum_squared_error", "sum_target", "sum_squared_target"):
            self.add_state(name, default=torch.zeros(num_outputs), dist_reduce_fx="sum")
        self.add_state("target_min", default=torch.full((num_outputs,), torch.inf), dist_reduce_fx="min")
        self.add_state("target_max", default=torch.full((num_outputs,), -torch.inf), dist_reduce_fx="max")

    def update(self, preds: Tensor, target: Tensor, weights: Tensor | None = None) -> None:
        """Add predictions (B, K) against targets (B, K), rows weighted by ``weights`` (B,)."""
        preds, target = _columns(preds, target)
        if preds.shape[1] != self.num_outputs:
            raise ValueError(f"Expected {self.num_outputs} outputs, got predictions of shape {tuple(preds.shape)}")
        dtype = self.sum_target.dtype
        self.sum_squared_error += _weighted_column_sums((target - preds).square(), weights).to(dtype)
        self.sum_target += _weighted_column_sums(target, weights).to(dtype)
        self.sum_squared_target += _weighted_column_sums(target.square(), weights).to(dtype)
        self.weight += _weight_sum(weights, preds.shape[0], self.weight)
        if target.shape[0]:
            lowest, highest = target, target  # (B, K); rows of weight 0 left out below
            if weights is not None:
                positive = (weights > 0)[:, None]  # (B, 1)
                lowest, highest = target.where(positive, torch.inf), target.where(positive, -torch.inf)
            self.target_min = torch.minimum(self.target_min, lowest.amin(dim=0).to(dtype))
            self.target_max = torch.maximum(self.target_max, highest.amax(dim=0).to(dtype))

    def compute(self) -> Tensor:
        """1 - RSS / TSS per output (K,), both weighted."""
        total = self.sum_squared_target - self.sum_target * (self.sum_target / self.weight)  # (K,)
        constant = self.target_min >= self.target_max  # (K,): one value, or no row
        residual = self.sum_squared_error
        scores = 1 - residual / total.where(~constant, torch.ones_like(total))
        exact = (residual == 0).to(scores.dtype)  # a constant target: 1 if predicted exactly, else 0
        return torch.where(constant, exact, scores)


class WeightedAccuracy(Metric):
    """Accuracy, the weighted share of rows whose predicted class is their label (micro over rows).

    Args:
        task: ``"binary"``: predictions are the positive class's probabilities (B,), a row is predicted positive
            when its probability is above ``threshold``; ``"multiclass"``: predictions are class scores (B, C) and
            the predicted class is their argmax.
        threshold: the binary decision threshold (torchmetrics' default, 0.5).

    No row weight (``weight`` 0) gives 0, as torchmetrics' ``Accuracy``.

    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True
    correct: Tensor
    weight: Tensor

    def __init__(self, task: str = "binary", threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if task not in ("binary", "multiclass"):
            raise ValueError(f"Expected task to be 'binary' or 'multiclass', got {task!r}")
        self.task = task
        self.threshold = threshold
        self.add_state("correct", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, weights: Tensor | None = None) -> None:
        """Add predictions, (B,) probabilities or (B, C) scores, against labels (B,), rows weighted by ``weights``."""
        predicted = (preds > self.threshold).long() if self.task == "binary" else preds.argmax(dim=-1)  # (B,)
        hits = (predicted == target.reshape(predicted.shape).long()).to(self.correct.dtype)  # (B,)
        if weights is None:
            self.correct += hits.sum()
            self.weight += hits.numel()
        else:
            self.correct += weights.to(self.correct.dtype) @ hits
            self.weight += weights.sum().to(self.weight.dtype)

    def compute(self) -> Tensor:
        """Σ w [correct] / Σ w (0 without weight)."""
        has_weight = self.weight > 0
        return torch.where(has_weight, self.correct / self.weight.where(has_weight, torch.ones_like(self.weight)), 0.0)
