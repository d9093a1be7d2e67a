"""What the end of ``lr-lightning fit`` says about the model: the best and the last epoch, the gap, the coefficients.

:class:`ValidationHistory` records the epoch-level metrics of every validation (rank 0 reads them after fit);
:func:`format_fit_summary` turns them, with the coefficient table in original units, into the lines printed above
the checkpoint paths.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from lr_lightning.callbacks import reachable_least_squares
from lr_lightning.dashboard import coefficient_table
from lr_lightning.data.contract import TrainingData
from lr_lightning.models.base import LinearModelBase
from lr_lightning.summary import InferenceSummary

__all__ = ["ValidationHistory", "coefficient_summary", "format_fit_summary", "inference_lines"]

#: Metrics shown for an epoch, in this order, when the run logged them.
SHOWN = (
    "val_loss",
    "val_r2",
    "val_mse",
    "val_mae",
    "val_acc",
    "val_auroc",
    "val_f1",
    "train_loss",
    "l2_strength_chosen",
    "optimality_gap",
)


class ValidationHistory(Callback):
    """Keep the metrics each validation epoch ended with: ``history[i] = (epoch, {name: value})``."""

    def __init__(self) -> None:
        self.history: list[tuple[int, dict[str, float]]] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start each fit with an empty history."""
        self.history = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Record this validation's epoch metrics (logged by the model before this hook)."""
        if trainer.sanity_checking:
            return
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if value.numel() == 1}
        self.history.append((trainer.current_epoch, metrics))


def coefficient_summary(model: Any, data: Any) -> str | None:
    """Return a linear model's coefficient table in original units, beside the least squares it can reach."""
    if not isinstance(model, LinearModelBase):
        return None
    solution = None
    if model.task == "regression" and isinstance(data, TrainingData):
        solution = reachable_least_squares(data, model.fit_intercept)  # solved once per fit, cached by the data
    return coefficient_table(model, solution)


def _metrics_line(metrics: dict[str, float], prefix: str = "") -> str:
    return ", ".join(f"{name} {metrics[name]:.6g}" for name in SHOWN if name in metrics and name.startswith(prefix))


def format_fit_summary(
    history: list[tuple[int, dict[str, float]]],
    final: dict[str, float],
    coefficients: str | None,
    certificates: list[str] | None = None,
) -> list[str]:
    """Lines for the end of fit: the best epoch by ``val_loss``, the last epoch's, certificates, the coefficients.

    Args:
        history: :attr:`ValidationHistory.history`.
        final: the metrics the fit ended with (the trainer's ``callback_metrics``), for the gap and train_loss.
        coefficients: the coefficient table in original units (Markdown), or ``None``.
        certificates: how far the fit ended from its optimum, a line each
            (:class:`~lr_lightning.callbacks.FitCertificate`).

    """
    lines = []
    scored = [(epoch, metrics) for epoch, metrics in history if "val_loss" in metrics]
    if scored:
        best_epoch, best = min(scored, key=lambda item: item[1]["val_loss"])
        # Only the validation metrics: train_loss is logged after validation, so it would be the epoch before's.
        lines.append(f"Best epoch {best_epoch} (by val_loss): {_metrics_line(best, prefix='val_')}")
    last = {**(history[-1][1] if history else {}), **final}
    if last:
        epoch = f" {history[-1][0]}" if history else ""
        lines.append(f"Last epoch{epoch}: {_metrics_line(last)}")
    lines += certificates or []
    if coefficients:
        lines += ["Coefficients in original units:", coefficients]
    return lines


def inference_lines(callbacks: list[Any]) -> list[str]:
    """Return the inference table's lines (:class:`~lr_lightning.summary.InferenceSummary`) after a blank line."""
    for callback in callbacks:
        if isinstance(callback, InferenceSummary) and callback.table is not None:
            return ["", *callback.summary_lines()]
    return []
