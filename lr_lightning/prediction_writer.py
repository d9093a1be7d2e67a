"""``predictions.csv``: one row per input row, the predictions beside the input's own columns and actual values.

Columns, left to right:

* the input's columns named in ``keep_columns`` (an ``id``, say), copied as the file holds them;
* the predictions: one column per target (regression), or one probability ``p_<class>`` per class and the predicted
  class under the label column's name (classification), from the model's ``prediction_columns``; with
  ``intervals`` (a level such as 0.95, regression only), after each target's prediction the confidence interval
  of the mean and the prediction interval of a new observation at that level, ``<target>_mean_ci_lower``,
  ``<target>_mean_ci_upper``, ``<target>_obs_ci_lower``, ``<target>_obs_ci_upper``: statsmodels'
  ``get_prediction(exog).summary_frame(alpha=1 - level)`` of the fit's OLS, from the rows' raw features and the
  fit the model's inference table holds (:meth:`~lr_lightning.models.statistics.InferenceStatistics.interval_fit`;
  a fit's final checkpoints store it). Refused, in one line saying why, for a classifier and for a model without
  a valid nonrobust regression table (a penalized or unconverged fit, a checkpoint stored before the fit was kept);
* when the input rows have their targets: ``<target>_actual`` and ``<target>_residual`` (actual minus predicted)
  per target, or ``<label>_actual`` and ``correct`` (``True`` when the predicted class is the actual one).

Numbers are written with the shortest text that reads back to the same value in the dtype the model predicted in
(float32, or float64 under ``precision: 64-true``): ``0.1``, not ``0.10000000149011612``. Text that a spreadsheet
would run as a formula gets a leading ``'`` (:func:`spreadsheet_safe`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from lr_lightning.data.base import trainer_datamodule
from lr_lightning.data.contract import PredictionData
from lr_lightning.errors import InputError, require
from lr_lightning.inference import OLSFit, prediction_intervals

__all__ = ["CSVPredictionWriter", "number_text", "spreadsheet_safe"]

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


def number_text(values: np.ndarray) -> list[str]:
    """Return each float as the shortest text that reads back to the same value of its dtype (float32 or 64)."""
    return values.astype(str).tolist()


class _PredictingModel(Protocol):
    """The model :class:`CSVPredictionWriter` writes for: the package's models (:mod:`lr_lightning.models`)."""

    task: str

    @property
    def output_names(self) -> list[str]:
        """K target names (regression) or C class names (classification)."""
        ...

    def prediction_columns(self, predictions: Tensor, target_columns: list[str] | None = None) -> dict[str, Any]:
        """Columns of the prediction file (name -> one value per row) from ``predict_step`` outputs."""
        ...


#: The interval columns' suffixes, after each target's prediction (statsmodels' ``summary_frame`` names).
INTERVAL_COLUMNS = ("mean_ci_lower", "mean_ci_upper", "obs_ci_lower", "obs_ci_upper")


class CSVPredictionWriter(BasePredictionWriter):
    """Write ``predict`` results to a CSV file in the run folder (or at ``path``) and print where.

    One row per input row, in input order (the columns: see :mod:`lr_lightning.prediction_writer`). The file lands
    in ``trainer.log_dir``, so no prediction run overwrites another.

    Args:
        filename: name of the CSV file inside the run folder.
        keep_columns: columns of the input rows to copy in front of the predictions (the data must be read from a
            file: :class:`~lr_lightning.data.FileDataModule`).
        path: write here instead of the run folder; a file that exists is refused, never overwritten.
        intervals: a level in (0, 1) (0.95: 95%): add, per target, the mean's confidence interval and a new
            observation's prediction interval (regression with a valid inference table only; the module docstring).

    """

    def __init__(
        self,
        filename: str = "predictions.csv",
        keep_columns: list[str] | None = None,
        path: str | None = None,
        intervals: float | None = None,
    ) -> None:
        super().__init__(write_interval="epoch")
        if intervals is not None:
            level = intervals
            valid = isinstance(level, int | float) and not isinstance(level, bool) and 0.0 < level < 1.0
            require(valid, "prediction_writer.intervals", "a level in (0, 1) such as 0.95, or null", intervals)
        self.intervals = None if intervals is None else float(intervals)
        self._fit: OLSFit | None = None
        self.filename = filename
        self.keep_columns = [str(name) for name in keep_columns or []]
        self.output = path
        self.path: str | None = None  # where the last run wrote
        self._kept: dict[str, list[str]] = {}
        self._prepared = False

    def prepare(self, data: Any) -> None:
        """Refuse an existing ``path`` and read the kept columns of ``data`` (naming a missing one).

        The CLI calls this before the run starts, so a mistake leaves nothing behind; ``setup`` calls it when no one
        has (a Trainer built in Python).
        """
        if self.output is not None and Path(self.output).exists():
            raise InputError(f"prediction_writer.path {self.output}: the file exists; choose a new file")
        if self.keep_columns and not isinstance(data, PredictionData):
            raise InputError(f"prediction_writer.keep_columns: {type(data).__name__} has no columns to copy")
        self._kept = data.predict_columns(self.keep_columns) if self.keep_columns else {}
        self._prepared = True

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Prepare for ``predict`` if the CLI has not (:meth:`prepare`)."""
        if stage == "predict" and not self._prepared:
            self.prepare(trainer_datamodule(trainer))

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """With ``intervals``, take the model's OLS fit (the checkpoint is loaded now) or refuse, before predicting."""
        self._fit = None
        if self.intervals is None:
            return
        from lr_lightning.models.statistics import InferenceStatistics, NoInferenceError  # here: models import us

        option = "prediction_writer.intervals"
        task = getattr(pl_module, "task", None)
        if task != "regression":
            raise InputError(
                f"{option}: {type(pl_module).__name__} is a {task or 'non-regression'} model; the mean's and new "
                "observations' intervals are for linear regression"
            )
        if not isinstance(pl_module, InferenceStatistics):
            raise InputError(f"{option}: {type(pl_module).__name__} keeps no inference table")
        try:
            self._fit = pl_module.interval_fit()
        except NoInferenceError as error:
            raise InputError(f"{option}: {error}") from None
        data = trainer_datamodule(trainer)
        if not callable(getattr(data, "predict_features", None)):
            raise InputError(f"{option}: {type(data).__name__} does not give the raw features of the rows predicted")

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Forget the kept columns and the fit: the next run prepares again."""
        self._kept, self._prepared, self._fit = {}, False, None

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
        self._write(directory, trainer, cast(_PredictingModel, pl_module), outputs)

    @rank_zero_only
    def _write(self, directory: str, trainer: pl.Trainer, model: _PredictingModel, outputs: torch.Tensor) -> None:
        source = trainer_datamodule(trainer)
        data = source if isinstance(source, PredictionData) else None
        target_columns = data.target_columns if data is not None else None
        predicted = model.prediction_columns(outputs, target_columns)
        actual = data.predict_targets() if data is not None else None
        columns = {**self._kept}
        for name, values in predicted.items():
            if name in columns:
                raise InputError(
                    f"prediction_writer.keep_columns: {name!r} is also a column of the predictions; keep another"
                )
            columns[name] = values
        if self._fit is not None and self.intervals is not None:
            columns = self._with_intervals(columns, source, model, outputs)
        if actual is not None and target_columns is not None:
            columns.update(_comparison(model, predicted, actual, target_columns, outputs.dtype))
        path = self.output or os.path.join(directory, self.filename)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        names = list(columns)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([spreadsheet_safe(name) for name in names])
            cells = [_cells(columns[name]) for name in names]
            writer.writerows(zip(*cells, strict=True))
        self.path = path
        print(f"Predictions written to {path}")

    def _with_intervals(
        self, columns: dict[str, Any], data: Any, model: _PredictingModel, outputs: Tensor
    ) -> dict[str, Any]:
        """Return ``columns`` with each target's four interval columns after its prediction."""
        assert self._fit is not None and self.intervals is not None
        features = _raw_features(data)
        if features.shape[0] != outputs.shape[0]:
            raise InputError(
                f"prediction_writer.intervals: the data gives {features.shape[0]} rows of features for "
                f"{outputs.shape[0]} predictions"
            )
        bounds = prediction_intervals(self._fit, features, alpha=1.0 - self.intervals)
        numpy_dtype = np.float64 if outputs.dtype == torch.float64 else np.float32
        targets = {name: k for k, name in enumerate(model.output_names)}
        added: dict[str, Any] = {}
        for name, values in columns.items():
            added[name] = values
            if name not in targets:
                continue
            for suffix in INTERVAL_COLUMNS:
                column = f"{name}_{suffix}"
                if column in columns:
                    raise InputError(
                        f"prediction_writer.keep_columns: {column!r} is also a column of the intervals; keep another"
                    )
                added[column] = getattr(bounds, suffix)[:, targets[name]].astype(numpy_dtype)
        return added


def _raw_features(data: Any) -> np.ndarray:
    """Return the raw features (M, D) of the rows predicted on, float64, in row order (``predict_features``)."""
    features = data.predict_features() if data is not None else None
    if not isinstance(features, Tensor):
        raise InputError(f"prediction_writer.intervals: {type(data).__name__} gives no raw features to predict on")
    return np.asarray(features.detach().cpu().double().numpy()).reshape(features.shape[0], -1)


def _cells(values: Any) -> list[Any]:
    """One column's cells as text: floats in their shortest form, text made spreadsheet-safe."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return number_text(values)
    return [spreadsheet_safe(value) if isinstance(value, str) else value for value in values]


def _comparison(
    model: _PredictingModel, predicted: dict[str, Any], actual: Tensor, target_columns: list[str], dtype: torch.dtype
) -> dict[str, Any]:
    """Return the actual values beside the predictions: ``<target>_actual`` and ``_residual``, or ``correct``."""
    if model.task == "classification":
        label, classes = target_columns[0], model.output_names
        truth = [classes[index] for index in actual.tolist()]
        return {f"{label}_actual": truth, "correct": [t == p for t, p in zip(truth, predicted[label], strict=True)]}
    numpy_dtype = np.float64 if dtype == torch.float64 else np.float32
    values = actual.numpy().astype(numpy_dtype, copy=False).reshape(len(actual), -1)
    columns: dict[str, Any] = {}
    for k, name in enumerate(target_columns):
        columns[f"{name}_actual"] = values[:, k]
        columns[f"{name}_residual"] = (values[:, k].astype(np.float64) - predicted[name]).astype(numpy_dtype)
    return columns
