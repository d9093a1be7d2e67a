"""``--ckpt_path`` of the ``lr-lightning`` command: resolved, required where a run needs one, checked before use.

* ``best`` and ``last`` name the best and the latest checkpoint of the newest fit of the config's experiment
  (:func:`resolve_ckpt_path`);
* ``validate``, ``test`` and ``predict`` need a checkpoint: without one they would run an untrained model;
* with no ``--config``, ``--model`` or ``--data``, the checkpoint names the model and how to read new rows
  (:func:`checkpoint_defaults`): ``predict --ckpt_path CKPT --data.path new.csv`` is enough;
* the file is loaded with ``weights_only=True`` and its hyperparameters are checked against the model class the
  config names (:func:`checkpoint_hyperparameters`), and its features against the data's
  (:func:`check_features_match`).

A URL, a missing, truncated or corrupt file, a pickle payload or an ``_instantiator`` entry is an
:class:`~lr_lightning.errors.InputError`, raised before anything is instantiated or written.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lr_lightning.checkpoint import load_checkpoint
from lr_lightning.checkpoint_contents import check_model_checkpoint
from lr_lightning.config_checks import experiment_dir, named_class
from lr_lightning.data.contract import TrainingData
from lr_lightning.errors import InputError
from lr_lightning.models.checkpoint_record import RECORD_KEY, read_record
from lr_lightning.run_folders import CHECKPOINT_ALIASES, newest_fit_checkpoint

__all__ = [
    "CheckpointSettings",
    "check_features_match",
    "checkpoint_defaults",
    "checkpoint_hyperparameters",
    "resolve_ckpt_path",
]

#: Subcommands that run a trained model, so they need ``--ckpt_path``.
NEEDS_CHECKPOINT = ("validate", "test", "predict")


def _missing_checkpoint_message(subcommand: str, config: Any) -> str:
    message = f"{subcommand} needs --ckpt_path (a checkpoint file, or best / last): without one it would run an "
    message += "untrained model"
    experiment = experiment_dir(config)
    if experiment is not None:
        try:
            message += f"; the newest fit of this experiment saved {newest_fit_checkpoint(experiment, 'last')}"
        except InputError:
            message += f"; no fit has saved a checkpoint in {experiment} yet"
    return message


def resolve_ckpt_path(subcommand: str, config: Any) -> str | None:
    """Return the subcommand's ``--ckpt_path`` with ``best`` / ``last`` resolved (and written back into ``config``).

    Raises:
        InputError: an alias with no logger to find the fit in, or no checkpoint of that fit; no ``--ckpt_path``
            for a subcommand in :data:`NEEDS_CHECKPOINT`.

    """
    ckpt_path = config.get("ckpt_path")
    if ckpt_path in CHECKPOINT_ALIASES:
        experiment = experiment_dir(config)
        if experiment is None:
            raise InputError(f"--ckpt_path {ckpt_path} needs a logger with a save_dir to find the newest fit in")
        resolved = str(newest_fit_checkpoint(experiment, ckpt_path))
        print(f"--ckpt_path {ckpt_path}: {resolved}", file=sys.stderr)
        config["ckpt_path"] = ckpt_path = resolved
    if not ckpt_path and subcommand in NEEDS_CHECKPOINT:
        raise InputError(_missing_checkpoint_message(subcommand, config))
    return ckpt_path or None


@dataclass(frozen=True)
class CheckpointSettings:
    """What a run takes from its ``--ckpt_path``: the model's hyperparameters and the data's fitted encoding.

    Attributes:
        hparams: the checked hyperparameters.
        encoding: the table encoding fitted on the training rows (the record's, plain values), or ``None``.

    """

    hparams: dict[str, Any]
    encoding: dict[str, Any] | None


def checkpoint_hyperparameters(
    ckpt_path: str, class_path: str | None, subcommand: str, trainer_config: Mapping[str, Any]
) -> CheckpointSettings:
    """Load ``ckpt_path`` (``weights_only=True``) and return its hyperparameters, checked against ``class_path``.

    For ``fit``, a checkpoint that already reached ``trainer.max_epochs`` (or ``max_steps``) is refused: resuming
    it would train nothing and leave an empty run folder.

    Lightning's own ``--ckpt_path`` handling needs the ``_class_path`` that ``load_from_checkpoint_support`` writes
    into every checkpoint; this keeps checkpoints free of it and uses the model class named in the config, after
    checking that the checkpoint was saved by that class. A checkpoint of data read through a table encoding also
    gives that encoding, which the data must apply as it is (never fitted again on other rows).
    """
    model_class = named_class(class_path)
    checkpoint = load_checkpoint(ckpt_path)
    hparams = check_model_checkpoint(checkpoint, ckpt_path, model_class=model_class)
    if subcommand == "fit":
        _refuse_finished_fit(checkpoint, ckpt_path, trainer_config)
    record = read_record(checkpoint, ckpt_path) if RECORD_KEY in checkpoint else None
    return CheckpointSettings(hparams, record.encoding if record is not None else None)


#: Lightning's ``max_epochs`` when neither it nor ``max_steps`` is set.
LIGHTNING_DEFAULT_MAX_EPOCHS = 1000


def _refuse_finished_fit(checkpoint: Mapping[str, Any], ckpt_path: str, trainer: Mapping[str, Any]) -> None:
    """Raise :class:`InputError` when the checkpoint has done every epoch (or step) the trainer would run."""
    try:
        epochs_done = int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        epochs_done = int(checkpoint.get("epoch", -1)) + 1  # a checkpoint without loop state
    steps_done = int(checkpoint.get("global_step", 0))
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    max_steps = -1 if max_steps is None else max_steps
    if max_epochs is None:
        max_epochs = -1 if max_steps != -1 else LIGHTNING_DEFAULT_MAX_EPOCHS
    if max_steps != -1 and steps_done >= max_steps:
        raise InputError(
            f"{ckpt_path}: this checkpoint already reached trainer.max_steps={max_steps} (step {steps_done}): "
            f"nothing is left to train; raise --trainer.max_steps to go on, or test or predict with it"
        )
    if max_epochs != -1 and epochs_done >= max_epochs:
        raise InputError(
            f"{ckpt_path}: this checkpoint already reached trainer.max_epochs={max_epochs} (it finished epoch "
            f"{epochs_done}): nothing is left to train; raise --trainer.max_epochs (e.g. to {epochs_done + max_epochs})"
            " to go on, or test or predict with it"
        )


def check_features_match(hparams: Mapping[str, Any], data: TrainingData) -> None:
    """Check that the data's features are the checkpoint's: same count, same names (when both have names)."""
    trained_count = hparams.get("in_features")
    if trained_count is None:
        return
    names = data.feature_names
    trained_names = hparams.get("feature_names")
    if len(names) != trained_count:
        raise InputError(
            f"the data has {len(names)} features {names} but the checkpoint was trained on {trained_count}"
            f"{f' {trained_names}' if trained_names else ''}"
        )
    if trained_names and list(trained_names) != list(names):
        raise InputError(f"the data's features {names} are not the checkpoint's {list(trained_names)}")


def _option_value(args: list[str], option: str) -> str | None:
    """Return the value of ``--option VALUE`` or ``--option=VALUE`` in ``args`` (the last one given), else ``None``."""
    value = None
    for index, arg in enumerate(args):
        if arg == option and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(option + "="):
            value = arg[len(option) + 1 :]
    return value


def checkpoint_defaults(args: list[str]) -> tuple[str, dict[str, Any]] | None:
    """Return the model and data a checkpoint implies, for ``validate|test|predict`` given only ``--ckpt_path``.

    Applies when the command line names a checkpoint file and neither ``--config`` nor ``--model`` nor ``--data``
    (options such as ``--data.path`` may follow): the model is the class the checkpoint recorded
    (:func:`~lr_lightning.models.checkpoint_record.read_record`), the data a
    :class:`~lr_lightning.data.FileDataModule` that reads the recorded feature and target columns by name, with
    the recorded classes, every row of the file in each stage (no split).

    Returns:
        The subcommand and its defaults (``model`` and ``data``), or ``None`` when this does not apply.

    """
    if not args or args[0] not in NEEDS_CHECKPOINT:
        return None
    named = ("--config", "--model", "--data")
    if any(arg in named or arg.split("=", 1)[0] in named for arg in args[1:]):
        return None
    ckpt_path = _option_value(args, "--ckpt_path")
    if not ckpt_path or ckpt_path in CHECKPOINT_ALIASES:
        return None
    record = read_record(load_checkpoint(ckpt_path), ckpt_path)
    data_options: dict[str, Any] = {
        "features": record.feature_names,
        "targets": record.target_columns,
        "task": record.task,
        "class_names": record.class_names,
        "val_fraction": 0.0,
        "test_fraction": 0.0,
    }
    if record.encoding is not None:  # read the file's own columns, encoded as in training
        data_options["features"] = [column["name"] for column in record.encoding["columns"]]
        data_options["encoding"] = record.encoding
    return args[0], {
        "model": {"class_path": f"lr_lightning.models.{record.model_class}"},
        "data": {"class_path": "lr_lightning.data.FileDataModule", "init_args": data_options},
    }
