"""What a checkpoint says about its model besides the weights: the class, the task and the names of the columns.

Every checkpoint the package's models save holds, under :data:`RECORD_KEY` (not Lightning's ``_instantiator`` or
``_class_path``, which make Lightning import a class), a dict of plain values:

* ``model_class``: the class's name, one of :data:`lr_lightning.models.__all__` (never a path to import);
* ``task``: ``"regression"`` or ``"classification"``;
* ``feature_names``: the D feature columns the model reads, by name;
* ``target_columns``: the target columns (K names) or the label column (one name), as the training data named
  them; ``None`` when the model was trained on data that does not name them;
* ``class_names``: the C classes in label order (classification), else ``None``.
* ``encoding``: the table encoding fitted on the training rows (categorical levels, imputed values:
  :meth:`~lr_lightning.data.encoding.TableEncoding.to_record`), so that a new file is encoded exactly as training
  was; ``None`` when the features were read as numbers. The feature names are then the design columns
  (``neighbourhood=north``) and the encoding names the file columns it reads.

With it a checkpoint alone is enough to read new rows: ``lr-lightning predict --ckpt_path CKPT --data.path new.csv``
finds the features by name and, if the file has them, the actual targets (:func:`read_record`). The record loads
with ``weights_only=True`` like the rest of the checkpoint.

A checkpoint of the final weights of a fit also holds, under :data:`INFERENCE_KEY`, the inference table of the fit
(:meth:`~lr_lightning.summary_format.InferenceTable.to_record`: the results' float64 arrays as tensors, the names,
the kind, the reason of a refusal, ``cov_type`` and ``alpha`` as plain values; a valid regression table also its
OLS fit's arrays, :meth:`OLSFit.to_arrays <lr_lightning.inference.OLSFit.to_arrays>`, which ``predict``'s
``--prediction_writer.intervals`` needs). It is the table's own key, beside
the record, so the record's fields stay as they were. The model writes it only into a checkpoint of the weights
the table describes (:meth:`~lr_lightning.models.statistics.InferenceStatistics.describes`); the table is computed
after the fit's last checkpoints were saved, so :class:`~lr_lightning.summary.InferenceSummary` adds it to those
files then (:func:`add_inference`, an atomic rewrite). :func:`read_inference` reads it back, checked: a key, a type
or a shape that :meth:`~lr_lightning.summary_format.InferenceTable.to_record` does not write is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from lr_lightning.data.contract import TASKS, PredictionData
from lr_lightning.errors import InputError

if TYPE_CHECKING:
    from lr_lightning.summary_format import InferenceTable

__all__ = [
    "INFERENCE_KEY",
    "RECORD_KEY",
    "CheckpointRecord",
    "ModelRecord",
    "add_inference",
    "read_inference",
    "read_record",
]

#: The checkpoint's key for the record.
RECORD_KEY = "lr_lightning"
#: The checkpoint's key for the inference table of the weights it holds.
INFERENCE_KEY = "lr_lightning_inference"
#: How deep a stored table nests (the record's own depth is 4).
_MAX_DEPTH = 6
#: The dtypes of a stored table's tensors.
_DTYPES = (torch.float64, torch.float32, torch.bool, torch.int64)


@dataclass(frozen=True)
class ModelRecord:
    """The record of one checkpoint (see the module docstring for each field)."""

    model_class: str
    task: str
    feature_names: list[str]
    target_columns: list[str] | None
    class_names: list[str] | None
    encoding: dict[str, Any] | None = None


def _names(value: Any, key: str, path: str | os.PathLike, optional: bool = True) -> list[str] | None:
    if value is None and optional:
        return None
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(name, str) for name in value):
        raise InputError(f"{path}: {RECORD_KEY}[{key!r}] is not a list of names")
    return list(value)


def read_record(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> ModelRecord:
    """Return the record of a loaded checkpoint, checked: the class must be one of lr_lightning's models.

    Raises:
        InputError: no record (a checkpoint saved before lr_lightning wrote one, or by another program), or one
            that is not plain names of the package's classes.

    """
    from lr_lightning import models

    raw = checkpoint.get(RECORD_KEY)
    if raw is None:
        raise InputError(
            f"{path}: the checkpoint does not record its model class and columns (saved by an older lr_lightning): "
            "pass --config, or --model and --data with their options"
        )
    if not isinstance(raw, Mapping):
        raise InputError(f"{path}: {RECORD_KEY} is not a dict of plain values")
    name = raw.get("model_class")
    classes = [entry for entry in models.__all__ if entry != "LinearModelBase"]
    if name not in classes:
        raise InputError(f"{path}: {RECORD_KEY}['model_class'] is {name!r}, not one of lr_lightning's models {classes}")
    task = raw.get("task")
    if task != getattr(models, name).task:
        expected = getattr(models, name).task
        raise InputError(f"{path}: {RECORD_KEY}['task'] is {task!r}, but a {name} is a {expected} model")
    assert task in TASKS
    features = _names(raw.get("feature_names"), "feature_names", path, optional=False)
    assert features is not None
    return ModelRecord(
        model_class=name,
        task=task,
        feature_names=features,
        target_columns=_names(raw.get("target_columns"), "target_columns", path),
        class_names=_names(raw.get("class_names"), "class_names", path),
        encoding=_encoding(raw.get("encoding"), features, path),
    )


def _encoding(raw: Any, features: list[str], path: str | os.PathLike) -> dict[str, Any] | None:
    """Return a record's table encoding, checked, and naming the record's features; ``None`` when it has none."""
    from lr_lightning.data.encoding import TableEncoding

    if raw is None:
        return None
    encoding = TableEncoding.from_record(raw, f"{path}: {RECORD_KEY}['encoding']")
    if encoding.output_names != features:
        raise InputError(
            f"{path}: {RECORD_KEY}['encoding'] makes the columns {encoding.output_names}, not the model's features "
            f"{features}"
        )
    return encoding.to_record()


def _tensors(value: Any) -> Any:
    """Return a record with its NumPy arrays as (CPU) tensors, the rest as it is."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, copy=True))
    if isinstance(value, dict):
        return {key: _tensors(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tensors(item) for item in value]
    return value


def _arrays(value: Any, path: str | os.PathLike, depth: int = 0) -> Any:
    """Return a loaded record with its tensors as NumPy arrays; refuse deep nesting and non-dense tensors."""
    if depth > _MAX_DEPTH:
        raise InputError(f"{path}: {INFERENCE_KEY} nests deeper than a stored table does")
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.dtype not in _DTYPES or value.device.type == "meta":
            raise InputError(f"{path}: {INFERENCE_KEY} holds a {value.dtype} {value.layout} tensor")
        return value.detach().cpu().numpy().copy()
    if isinstance(value, dict):
        return {key: _arrays(item, path, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_arrays(item, path, depth + 1) for item in value]
    return value


def inference_of(
    checkpoint: Mapping[str, Any], path: str | os.PathLike, feature_names: list[str] | None = None
) -> InferenceTable | None:
    """Return the inference table a loaded checkpoint holds (:data:`INFERENCE_KEY`), checked; ``None`` if none.

    Args:
        checkpoint: the loaded checkpoint.
        path: its file, named in the messages.
        feature_names: the model's features: the table's terms must be they (after ``const``), when given.

    Raises:
        InputError: a stored table that :meth:`~lr_lightning.summary_format.InferenceTable.to_record` did not write,
            or one of other features.

    """
    from lr_lightning.summary_format import InferenceTable
    from lr_lightning.summary_record import RecordError

    raw = checkpoint.get(INFERENCE_KEY)
    if raw is None:
        return None
    try:
        table = InferenceTable.from_record(_arrays(raw, path))
    except RecordError as error:
        raise InputError(f"{path}: {INFERENCE_KEY}: {error}; not a table lr_lightning stored") from None
    terms = table.term_names
    if feature_names is not None and terms not in ([*feature_names], ["const", *feature_names]):
        raise InputError(
            f"{path}: {INFERENCE_KEY}: the table's terms {terms} are not the model's features {feature_names}; not a "
            "table lr_lightning stored"
        )
    return table


def read_inference(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> InferenceTable:
    """Return the inference table of a loaded checkpoint of one of the package's models (record checked first).

    Raises:
        InputError: no or a forged record (:func:`read_record`), no table (a checkpoint saved before lr_lightning
            stored it, by a fit with ``summary.enabled: false``, or not of the final weights of a fit), a forged one.

    """
    record = read_record(checkpoint, path)
    table = inference_of(checkpoint, path, record.feature_names)
    if table is None:
        raise InputError(
            f"{path}: the checkpoint holds no inference table (saved before lr_lightning stored it, by a fit with "
            "summary.enabled false, or of weights other than a fit's final ones): fit again to compute it"
        )
    return table


def add_inference(checkpoint: dict[str, Any], table: InferenceTable) -> None:
    """Store ``table`` in a checkpoint dict (as :data:`INFERENCE_KEY`: plain values and tensors)."""
    checkpoint[INFERENCE_KEY] = _tensors(table.to_record())


class CheckpointRecord:
    """Mixin of the models: write the record into every checkpoint, and keep it when a checkpoint is loaded."""

    task: ClassVar[str]
    feature_names: list[str]
    _target_columns: list[str] | None = None
    _table_encoding: dict[str, Any] | None = None

    if TYPE_CHECKING:  # the model's own, declared for the type checker only (a definition here would shadow them)

        @property
        def output_names(self) -> list[str]:  # noqa: D102
            ...

        def training_data(self) -> Any:  # noqa: D102
            ...

        _trainer: Any  # LightningModule's

        def inference_record(self, state: Any) -> dict[str, Any] | None:  # noqa: D102  (InferenceStatistics')
            ...

        def restore_inference(self, table: Any, state: Any) -> None:  # noqa: D102  (InferenceStatistics')
            ...

        def double(self) -> Any:  # noqa: D102
            ...

    def target_columns(self) -> list[str] | None:
        """Return the training data's target columns (K names, or the label column), when known."""
        data = self.training_data()
        if isinstance(data, PredictionData):
            self._target_columns = data.target_columns
        return self._target_columns

    def table_encoding(self) -> dict[str, Any] | None:
        """Return the training data's fitted table encoding (plain values), when it has one."""
        data = self.training_data()
        if isinstance(data, PredictionData):
            self._table_encoding = data.table_encoding
        return self._table_encoding

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add the record (:data:`RECORD_KEY`)."""
        record = ModelRecord(
            model_class=type(self).__name__,
            task=self.task,
            feature_names=list(self.feature_names),
            target_columns=self.target_columns(),
            class_names=list(self.output_names) if self.task == "classification" else None,
            encoding=self.table_encoding(),
        )
        checkpoint[RECORD_KEY] = asdict(record)
        checkpoint.pop(INFERENCE_KEY, None)
        stored = self.inference_record(checkpoint.get("state_dict"))
        if stored is not None:  # only when the table describes these weights
            checkpoint[INFERENCE_KEY] = _tensors(stored)

    def _match_checkpoint_precision(self, checkpoint: dict[str, Any]) -> None:
        """Under ``64-true``, become float64 before a float64 checkpoint's weights are copied in.

        Lightning restores ``--ckpt_path`` (predict, test, a resumed fit) before its precision plugin converts the
        module, so float64 weights would be copied into the float32 parameters first and rounded through float32.
        """
        trainer = self._trainer
        state = checkpoint.get("state_dict")
        weight = state.get("linear.weight") if isinstance(state, Mapping) else None
        if trainer is None or not str(trainer.precision).startswith("64") or not isinstance(weight, torch.Tensor):
            return
        if weight.dtype == torch.float64:
            self.double()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the record's target columns, so a resumed fit saves them again; restore the inference table.

        The table (checked: :func:`inference_of`; a forged one is an :class:`InputError`) is kept as the one of
        the checkpoint's weights; a checkpoint without one, or one of other feature names than the model's, leaves
        the model without one.
        """
        self._match_checkpoint_precision(checkpoint)
        raw = checkpoint.get(RECORD_KEY)
        if isinstance(raw, Mapping) and isinstance(raw.get("target_columns"), list):
            self._target_columns = [str(name) for name in raw["target_columns"]]
        if isinstance(raw, Mapping) and raw.get("encoding") is not None:
            self._table_encoding = _encoding(raw["encoding"], [str(name) for name in self.feature_names], "checkpoint")
        table = inference_of(checkpoint, "checkpoint")
        features = [str(name) for name in self.feature_names]
        if table is not None and table.term_names not in (features, ["const", *features]):
            table = None  # a table of other columns than this model's: not this model's table
        self.restore_inference(table, checkpoint.get("state_dict"))
