"""TensorBoard dashboards: figures at validation epochs, a coefficient table, hparams with the final metrics.

:class:`TensorBoardDashboard` adds, at validation epochs (see below) and once at the end of ``fit``:

* ``figures/predicted_vs_actual`` and ``figures/residuals`` (regression, validation rows);
* ``figures/fitted_line`` for a model with one input feature (the notebooks' plot);
* ``figures/decision_boundary`` for a classifier with two input features;
* ``figures/coefficients``: learned coefficients in original units next to least squares' (regression);
* ``figures/loss_curve``: the training (and validation) loss per epoch on log-log axes, with least squares'
  training MSE when the loss is in the targets' units;

a text panel ``coefficients`` with the coefficient table in original units; for a ridge path
(``l2_path``, :mod:`lr_lightning.models.ridge_selection`), at the end of ``fit`` only (the path is the same every
epoch), ``figures/ridge_path``, the cross-validation score against ``l2_strength`` with the chosen one marked, and
a text panel ``ridge_path`` with every candidate's score; and, at the end of ``fit``, the
HParams entry with the final ``val_loss`` and ``val_r2`` or ``val_acc`` (the TensorBoardLogger's placeholder
``hp_metric = -1`` is switched off in the CLI's logger defaults). It does nothing without a TensorBoardLogger,
and draws only on global rank 0 (its one collective, the data's least-squares pass after the first training
epoch, runs on every rank). It reads the data
through the data contract (:class:`~lr_lightning.data.contract.TrainingData`; figures need the validation rows in
memory) and takes least squares from the data's one solve per fit, the reference
:class:`~lr_lightning.callbacks.OptimalityGap` reads too (:func:`~lr_lightning.callbacks.reachable_least_squares`:
without an intercept for a model without a bias).

By default (``every_n_epochs=None``) a fit draws at validation epochs while drawing takes at most ``time_budget``
(8%) of its wall time so far, :data:`AUTO_DRAWINGS` times at most: a drawing (4 figures for sourdough) takes as
long as 12 to 20 of sourdough's epochs on a 2-core CPU (docs/performance.md, "Dashboard cost").
``every_n_epochs=N`` draws every N validation epochs whatever that costs; 0 only at the end.

:class:`LearningRateLogger` is Lightning's ``LearningRateMonitor`` that stays silent instead of failing when the
run has no logger.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger

from lr_lightning.callbacks import LinearModel, RidgePathModel, reachable_least_squares
from lr_lightning.closed_form import LeastSquaresSolution
from lr_lightning.data.base import InMemoryDataModule, trainer_datamodule
from lr_lightning.data.contract import TrainingData
from lr_lightning.errors import require
from lr_lightning.streaming import RidgeSelection

if TYPE_CHECKING:
    from collections.abc import Callable

    from matplotlib.figure import Figure

__all__ = ["LearningRateLogger", "TensorBoardDashboard", "coefficient_table", "ridge_path_table"]

#: Metrics put next to the hyperparameters in the HParams tab, when the run logged them.
HPARAM_METRICS = ("val_loss", "val_r2", "val_acc", "val_auroc", "train_loss", "l2_strength_chosen")

#: The default schedule: at most this many drawings during a fit (TensorBoard's image slider keeps 10 per tag),
#: and the seconds it expects one to take before it has timed one (sourdough's 4 new figures: 0.7-0.9 s on 2 cores).
AUTO_DRAWINGS, FIRST_DRAWING_S = 10, 1.0


def _tensorboard(trainer: pl.Trainer) -> TensorBoardLogger | None:
    return next((logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)), None)


def coefficient_table(model: Any, reference: LeastSquaresSolution | None = None) -> str:
    """Format ``coef_`` and ``intercept_`` in original units (and the least-squares fit's, when given) as Markdown."""
    coef, intercept = model.coef_, model.intercept_
    terms = [*model.feature_names, "intercept"]
    learned = np.hstack([coef, intercept[:, None]])
    header = "| output | term | learned |" + (" least squares |" if reference is not None else "")
    lines = [header, "|---|---|---:|" + ("---:|" if reference is not None else "")]
    exact = np.hstack([reference.coef_, reference.intercept_[:, None]]) if reference is not None else None
    output_names = model.output_names if learned.shape[0] == len(model.output_names) else ["logit"]
    for k, output in enumerate(output_names):
        for j, term in enumerate(terms):
            row = f"| {output} | {term} | {learned[k, j]:.6g} |"
            if exact is not None:
                row += f" {exact[k, j]:.6g} |"
            lines.append(row)
    return "\n".join(lines)


#: What a ridge path's scores are, by the model's ``l2_selection``.
CRITERIA = {"loo": "leave-one-out MSE", "gcv": "GCV MSE"}


def ridge_path_table(selection: RidgeSelection, output_names: list[str], criterion: str) -> str:
    """Format a ridge path's candidates as Markdown: strength, scikit-learn's alpha, the score(s), the choice.

    Args:
        selection: the path's candidates (A,), scores (A,) and per-target scores (A, K) in the targets' units.
        output_names: the K target names, for a column each when K > 1.
        criterion: what the scores are (the score column's name).

    """
    per_target = output_names if len(output_names) > 1 else []
    header = f"| index | l2_strength | alpha (N × l2_strength) | {criterion} |"
    lines = [header + "".join(f" {name} |" for name in per_target) + " chosen |"]
    lines.append("|---:|---:|---:|---:|" + "---:|" * len(per_target) + "---|")
    rows = zip(selection.l2_strengths_, selection.alphas_, selection.scores_, selection.scores_per_target_, strict=True)
    for index, (strength, alpha, score, scores) in enumerate(rows):
        row = f"| {index} | {strength:.6g} | {alpha:.6g} | {score:.6g} |"
        row += "".join(f" {value:.6g} |" for value in scores[: len(per_target)])
        lines.append(row + (" ✔ |" if index == selection.best_index_ else " |"))
    return "\n".join(lines)


class TensorBoardDashboard(Callback):
    """Figures, a coefficient table and final-metric hparams in TensorBoard (see the module docstring).

    Args:
        every_n_epochs: draw the figures every this many validation epochs (and at the end of fit); 0 draws
            them only at the end; ``None`` (the default) draws while that costs at most ``time_budget`` of the
            fit's time, and at most :data:`AUTO_DRAWINGS` times.
        max_points: at most this many validation rows in scatter plots (a seeded subsample beyond that).
        time_budget: with ``every_n_epochs=None``, the fraction of the fit's wall time so far that drawings during
            the fit may take (the drawing at the end of fit is not counted: it is made in any case).

    """

    def __init__(self, every_n_epochs: int | None = None, max_points: int = 2000, time_budget: float = 0.08) -> None:
        require(every_n_epochs is None or every_n_epochs >= 0, "every_n_epochs", ">= 0", every_n_epochs)
        require(max_points >= 1, "max_points", ">= 1", max_points)
        require(0 <= time_budget <= 1, "time_budget", "between 0 and 1", time_budget)
        self.every_n_epochs, self.max_points, self.time_budget = every_n_epochs, max_points, time_budget
        self.loss_history: list[tuple[int, float]] = []
        self.val_loss_history: list[tuple[int, float]] = []
        self._validation_epochs = 0
        self._reference: LeastSquaresSolution | None = None
        self._reference_pending = False  # a fit whose reference is not taken yet
        # the default schedule: when the fit started, seconds spent drawing, the last drawing's time and epoch
        self._fit_started, self._drawing_seconds, self._last_drawing_seconds = time.perf_counter(), 0.0, FIRST_DRAWING_S
        self._last_drawn_epoch: int | None = None
        self._figures: dict[str, Figure] = {}  # tag -> the last drawing's figure, redrawn by the next one

    # -- hooks -------------------------------------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Start every run (fit or validate) with empty loss histories and no validation epoch counted."""
        self.loss_history, self.val_loss_history = [], []
        self._validation_epochs, self._figures = 0, {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the drawing schedule; least squares comes after the first training pass (:meth:`_take_reference`)."""
        self._reference, self._reference_pending = None, True
        self._fit_started, self._drawing_seconds, self._last_drawn_epoch = time.perf_counter(), 0.0, None

    def _take_reference(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Take least squares of the training rows from the data (regression only), for the comparisons.

        Once per fit, at the first validation's or training epoch's end: after the exact solver's pass, which the
        data keeps, so the rows are not read again. Every rank runs this (the data's pass is a collective).
        """
        self._reference_pending = False
        data = trainer_datamodule(trainer)
        if _tensorboard(trainer) is None or not isinstance(data, TrainingData):
            return
        if isinstance(pl_module, LinearModel) and pl_module.task == "regression":
            data.least_squares_state(distributed=True)  # streamed at most once, every rank its shard
            if trainer.is_global_zero:
                self._reference = reachable_least_squares(data, pl_module.fit_intercept)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Take the least-squares reference if no validation has (a fit without validation rows)."""
        if self._reference_pending and trainer.state.fn == "fit":
            self._take_reference(trainer, pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Record the previous epoch's training loss (logged by the model at that epoch's end)."""
        self._record_loss(trainer)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Draw the figures at the first validation epoch and every ``every_n_epochs`` validation epochs after.

        Validation epochs are counted, not training epochs, so that ``check_val_every_n_epoch`` > 1 still draws.
        With ``every_n_epochs=None``, a fit draws when :meth:`_within_budget`; ``validate`` at its one epoch.
        """
        if trainer.sanity_checking:
            return
        if self._reference_pending and trainer.state.fn == "fit":
            self._take_reference(trainer, pl_module)
        if self.every_n_epochs == 0:
            return
        self._validation_epochs += 1
        if self.every_n_epochs is not None or trainer.state.fn != "fit":
            if (self._validation_epochs - 1) % (self.every_n_epochs or 1) == 0:
                self._draw(trainer, pl_module)
        elif self._within_budget(trainer):
            start = time.perf_counter()
            self._draw(trainer, pl_module)
            self._last_drawing_seconds = time.perf_counter() - start
            self._drawing_seconds += self._last_drawing_seconds
            self._last_drawn_epoch = trainer.current_epoch

    def _within_budget(self, trainer: pl.Trainer) -> bool:
        """Whether one more drawing, as long as the last, keeps them all within ``time_budget`` of the fit so far.

        And, given ``max_epochs``, whether ``max_epochs / AUTO_DRAWINGS`` epochs or more passed since the last one.
        """
        elapsed = time.perf_counter() - self._fit_started
        if self._drawing_seconds + self._last_drawing_seconds > self.time_budget * elapsed:
            return False
        spacing = trainer.max_epochs / AUTO_DRAWINGS if trainer.max_epochs is not None and trainer.max_epochs > 0 else 0
        return self._last_drawn_epoch is None or trainer.current_epoch - self._last_drawn_epoch >= spacing

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Record this validation's loss (logged by the model after the callbacks' epoch-end hooks ran)."""
        loss = trainer.callback_metrics.get("val_loss")
        if not trainer.sanity_checking and loss is not None:
            self.val_loss_history.append((trainer.current_epoch, float(loss)))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Draw the final figures and the coefficient table; write the hparams with the final metrics."""
        self._record_loss(trainer)
        logger = _tensorboard(trainer)
        if logger is None or not trainer.is_global_zero:
            return
        self._draw(trainer, pl_module)
        self._draw_ridge_path(trainer, pl_module, logger)
        self._figures = {}  # the last drawing: nothing to redraw
        self._log_hparams(trainer, pl_module, logger)
        logger.experiment.flush()

    # -- drawing -----------------------------------------------------------------------------------------------

    def _record_loss(self, trainer: pl.Trainer) -> None:
        # The model logs train_loss in on_train_epoch_end, after the epoch's validation (and after this
        # callback's own epoch-end hook), so an epoch's loss is read at the next epoch's start.
        loss = trainer.callback_metrics.get("train_loss")
        epoch = trainer.current_epoch - 1  # the last completed epoch, at an epoch's start and at the end of fit
        if loss is not None and (not self.loss_history or self.loss_history[-1][0] < epoch):
            self.loss_history.append((epoch, float(loss)))

    def _validation_sample(self, data: TrainingData) -> tuple[torch.Tensor, torch.Tensor] | None:
        rows = data.rows_in_memory("val")
        if rows is None:
            return None  # figures would read the whole validation split from disk into memory
        features, targets = rows
        if features.shape[0] > self.max_points:
            keep = torch.randperm(features.shape[0], generator=torch.Generator().manual_seed(0))[: self.max_points]
            features, targets = features[keep], targets[keep]
        return features, targets

    @torch.no_grad()
    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger, data = _tensorboard(trainer), trainer_datamodule(trainer)
        if logger is None or not trainer.is_global_zero:
            return
        if not isinstance(data, TrainingData) or not isinstance(pl_module, LinearModel):
            return
        sample = self._validation_sample(data)
        if sample is None:
            return
        from lr_lightning import figures

        writer, step = logger.experiment, trainer.global_step
        features, targets = sample
        dtype, device = pl_module.dtype, pl_module.device
        assert isinstance(dtype, torch.dtype)  # Lightning's type allows the str that Module.type("...") would store

        def predict(x: np.ndarray) -> np.ndarray:
            return pl_module(torch.as_tensor(x, dtype=dtype, device=device)).double().cpu().numpy()

        def show(tag: str, draw: Callable[..., Figure], *args: Any) -> None:
            """Write ``draw(*args)``, drawn into the tag's figure of the last drawing when it can (figures.py)."""
            self._figures[tag] = figure = draw(*args, into=self._figures.get(tag))
            figures.add_figure(writer, tag, figure, step)

        x, y = features.double().cpu().numpy(), targets.double().cpu().numpy()
        feature_names, names = list(pl_module.feature_names), list(pl_module.output_names)
        if pl_module.task == "regression":
            predicted = predict(x)
            show("figures/predicted_vs_actual", figures.predicted_vs_actual_figure, predicted, y, names)
            show("figures/residuals", figures.residuals_figure, predicted, y, names)
            if x.shape[1] == 1:
                show("figures/fitted_line", figures.fitted_line_figure, x[:, 0], y, predict, feature_names[0], names)
            reference = self._reference.coef_ if self._reference is not None else None
            coef = np.asarray(pl_module.coef_)
            show("figures/coefficients", figures.coefficients_figure, coef, reference, feature_names, names)
        elif x.shape[1] == 2:
            figure = figures.decision_boundary_figure(x, y.astype(np.int64), predict, feature_names, names)
            figures.add_figure(writer, "figures/decision_boundary", figure, step)
        if self.loss_history:
            optimum = self._optimum(data)
            show("figures/loss_curve", figures.loss_curve_figure, self.loss_history, self.val_loss_history, optimum)
        writer.add_text("coefficients", coefficient_table(pl_module, self._reference), step)

    @staticmethod
    def _draw_ridge_path(trainer: pl.Trainer, pl_module: pl.LightningModule, logger: TensorBoardLogger) -> None:
        """Draw the model's ridge path, if it solved one: ``figures/ridge_path`` and the ``ridge_path`` table."""
        if not isinstance(pl_module, RidgePathModel) or pl_module.ridge_selection is None:
            return
        from lr_lightning import figures

        selection = pl_module.ridge_selection
        criterion = CRITERIA.get(pl_module.l2_selection, "cross-validation MSE")
        writer, step = logger.experiment, trainer.global_step
        figure = figures.ridge_path_figure(selection.l2_strengths_, selection.scores_, selection.best_index_, criterion)
        figures.add_figure(writer, "figures/ridge_path", figure, step)
        names = list(pl_module.output_names)
        writer.add_text("ridge_path", ridge_path_table(selection, names, criterion), step)

    def _optimum(self, data: TrainingData) -> float | None:
        """Least squares' training MSE, for the loss curve (only meaningful when targets are not standardized)."""
        if self._reference is None or bool(torch.any(data.scaling_statistics().target_scale != 1)):
            return None  # no reference, or the loss is on standardized targets: a different scale
        return self._reference.mse_

    # -- hparams -----------------------------------------------------------------------------------------------

    @staticmethod
    def _log_hparams(trainer: pl.Trainer, pl_module: pl.LightningModule, logger: TensorBoardLogger) -> None:
        """Write the run's HParams session: its settings and final metrics (``hp/val_loss``, ...)."""
        params: dict[str, Any] = {}
        for key, value in dict(pl_module.hparams).items():
            if key in ("feature_names", "target_names", "class_names"):
                continue  # long lists of names, not settings to compare
            params[f"model/{key}"] = value if isinstance(value, int | float | str | bool) else str(value)
        if trainer.optimizers:
            optimizer = trainer.optimizers[0]
            params["optimizer"] = type(optimizer).__name__
            for key in ("lr", "momentum", "weight_decay"):
                if key in optimizer.defaults:
                    params[f"optimizer/{key}"] = float(optimizer.defaults[key])
        datamodule = trainer_datamodule(trainer)
        if isinstance(datamodule, InMemoryDataModule):  # the package's DataModules: their main settings
            params["data/batch_size"] = datamodule.batch_size
            params["data/standardize"] = datamodule.standardize
            params["data/seed"] = datamodule.seed
        params["data/class"] = type(datamodule).__name__ if datamodule is not None else "none"
        params["trainer/max_epochs"] = trainer.max_epochs if trainer.max_epochs is not None else -1
        metrics = {
            f"hp/{name}": float(trainer.callback_metrics[name])
            for name in HPARAM_METRICS
            if name in trainer.callback_metrics
        }
        # Not logger.log_hyperparams(params, metrics): besides the session it writes an experiment summary, and
        # TensorBoard shows the first run's summary for all runs (hparams sorted by name, five of them ticked), so
        # a sweep's learning rate hid behind data/* and model/* columns and another config's metrics were missing.
        # Sessions alone make TensorBoard build the table from all runs, the hparams that differ between them first.
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        logger.log_metrics(metrics, step=trainer.global_step)
        _, session_start, session_end = hparams_summaries(params, metrics)
        writer = logger.experiment._get_file_writer()  # as Lightning's log_hyperparams does
        writer.add_summary(session_start, trainer.global_step)
        writer.add_summary(session_end, trainer.global_step)


class LearningRateLogger(LearningRateMonitor):
    """Lightning's ``LearningRateMonitor`` (tags ``lr-SGD`` etc.), silent when the run has no logger."""

    def __init__(self, logging_interval: Literal["step", "epoch"] | None = "epoch", log_momentum: bool = False) -> None:
        super().__init__(logging_interval=logging_interval, log_momentum=log_momentum)
        self._silent = False

    def on_train_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        """Start monitoring, unless there is nothing to log to."""
        self._silent = not trainer.loggers
        if not self._silent:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        """Log per step when asked to."""
        if not self._silent:
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        """Log per epoch when asked to."""
        if not self._silent:
            super().on_train_epoch_start(trainer, *args, **kwargs)
