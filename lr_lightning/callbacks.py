"""Lightning callbacks of lr_lightning, and what they read from a model and its data.

They read the data through the data contract (:class:`~lr_lightning.data.contract.TrainingData`) and the model
through :class:`LinearModel`, which the package's models satisfy; nothing here imports :mod:`lr_lightning.models`
(the models import :class:`OptimalityGap` from here).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any, Protocol, cast, runtime_checkable

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch import Tensor

from lr_lightning.closed_form import LeastSquaresSolution, through_point
from lr_lightning.data.base import trainer_datamodule
from lr_lightning.data.contract import Task, TrainingData

__all__ = ["CSVPredictionWriter", "LinearModel", "OptimalityGap", "reachable_least_squares", "spreadsheet_safe"]


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


#: First characters that make a spreadsheet read a cell as a formula (OWASP's list for CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """Return ``value``, with a ``'`` before a text cell that a spreadsheet would run as a formula.

    ``=HYPERLINK(...)`` or ``@SUM(...)`` as a class or target name would otherwise be evaluated when
    ``predictions.csv`` is opened in a spreadsheet; the quote makes it shown as text. Numbers, and text that reads
    as a number (a class ``-1``), are left as they are.
    """
    if not isinstance(value, str) or not value.startswith(FORMULA_PREFIXES):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


class _HasPredictionColumns(Protocol):
    """The model :class:`CSVPredictionWriter` writes for: the package's models (:mod:`lr_lightning.models`)."""

    def prediction_columns(self, predictions: Tensor) -> dict[str, list[Any]]:
        """Columns of the prediction file (name -> one value per row) from ``predict_step`` outputs."""
        ...


class CSVPredictionWriter(BasePredictionWriter):
    """Write ``predict`` results to a CSV file in the run folder and print its path.

    One row per input row, in input order; the columns come from the model's ``prediction_columns`` (the target
    names for regression). Text cells and column names that a spreadsheet would run as a formula get a leading
    ``'`` (:func:`spreadsheet_safe`). The file lands in ``trainer.log_dir`` (``runs/<experiment>/version_N/``), so no
    prediction run overwrites another.

    Args:
        filename: name of the CSV file inside the run folder.

    """

    def __init__(self, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.filename = filename
        self.path: str | None = None

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        """Concatenate the batches' predictions, gather them from every process, and write them once."""
        if predictions and isinstance(predictions[0], list):  # several predict dataloaders: use the first
            predictions = predictions[0]
        outputs = torch.cat([p.detach().cpu() for p in predictions]) if predictions else torch.empty(0, 0)
        # Under DDP each rank predicted its own contiguous block of rows, in rank order; both calls below are
        # collectives, so every rank makes them.
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            blocks: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(blocks, outputs)
            outputs = torch.cat([block for block in blocks if block.numel()])
        directory = trainer.log_dir or trainer.default_root_dir
        self._write(directory, pl_module, outputs)

    @rank_zero_only
    def _write(self, directory: str, pl_module: pl.LightningModule, outputs: torch.Tensor) -> None:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, self.filename)
        columns = cast(_HasPredictionColumns, pl_module).prediction_columns(outputs)  # as the package's models do
        names = list(columns)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([spreadsheet_safe(name) for name in names])
            cells = [
                [spreadsheet_safe(value) for value in columns[name]]
                if any(isinstance(value, str) for value in columns[name])
                else columns[name]
                for name in names
            ]
            writer.writerows(zip(*cells, strict=True))
        self.path = path
        print(f"Predictions written to {path}")


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
