"""What a checkpoint says about its model besides the weights: the class, the task and the names of the columns.

Every checkpoint the package's models save holds, under :data:`RECORD_KEY` (not Lightning's ``_instantiator`` or
``_class_path``, which make Lightning import a class), a dict of plain values:

* ``model_class``: the class's name, one of :data:`lr_lightning.models.__all__` (never a path to import);
* ``task``: ``"regression"`` or ``"classification"``;
* ``feature_names``: the D feature columns the model reads, by name;
* ``target_columns``: the target columns (K names) or the label column (one name), as the training data named
  them; ``None`` when the model was trained on data that does not name them;
* ``class_names``: the C classes in label order (classification), else ``None``.

With it a checkpoint alone is enough to read new rows: ``lr-lightning predict --ckpt_path CKPT --data.path new.csv``
finds the features by name and, if the file has them, the actual targets (:func:`read_record`). The record loads
with ``weights_only=True`` like the rest of the checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from lr_lightning.data.contract import TASKS, PredictionData
from lr_lightning.errors import InputError

__all__ = ["RECORD_KEY", "CheckpointRecord", "ModelRecord", "read_record"]

#: The checkpoint's key for the record.
RECORD_KEY = "lr_lightning"


@dataclass(frozen=True)
class ModelRecord:
    """The record of one checkpoint (see the module docstring for each field)."""

    model_class: str
    task: str
    feature_names: list[str]
    target_columns: list[str] | None
    class_names: list[str] | None


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
    )


class CheckpointRecord:
    """Mixin of the models: write the record into every checkpoint, and keep it when a checkpoint is loaded."""

    task: ClassVar[str]
    feature_names: list[str]
    _target_columns: list[str] | None = None

    if TYPE_CHECKING:  # the model's own, declared for the type checker only (a definition here would shadow them)

        @property
        def output_names(self) -> list[str]:  # noqa: D102
            ...

        def training_data(self) -> Any:  # noqa: D102
            ...

    def target_columns(self) -> list[str] | None:
        """Return the training data's target columns (K names, or the label column), when known."""
        data = self.training_data()
        if isinstance(data, PredictionData):
            self._target_columns = data.target_columns
        return self._target_columns

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add the record (:data:`RECORD_KEY`)."""
        record = ModelRecord(
            model_class=type(self).__name__,
            task=self.task,
            feature_names=list(self.feature_names),
            target_columns=self.target_columns(),
            class_names=list(self.output_names) if self.task == "classification" else None,
        )
        checkpoint[RECORD_KEY] = asdict(record)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the record's target columns, so a resumed fit saves them again."""
        raw = checkpoint.get(RECORD_KEY)
        if isinstance(raw, Mapping) and isinstance(raw.get("target_columns"), list):
            self._target_columns = [str(name) for name in raw["target_columns"]]
