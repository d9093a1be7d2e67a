"""``--ckpt_path`` of the ``lr-lightning`` command: resolved, required where a run needs one, checked before use.

* ``best`` and ``last`` name the best and the latest checkpoint of the newest fit of the config's experiment
  (:func:`resolve_ckpt_path`);
* ``validate``, ``test`` and ``predict`` need a checkpoint: without one they would run an untrained model;
* the file is loaded with ``weights_only=True`` and its hyperparameters are checked against the model class the
  config names (:func:`checkpoint_hyperparameters`), and its features against the data's
  (:func:`check_features_match`).

A URL, a missing, truncated or corrupt file, a pickle payload or an ``_instantiator`` entry is an
:class:`~lr_lightning.errors.InputError`, raised before anything is instantiated or written.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

from lr_lightning.checkpoint import load_checkpoint
from lr_lightning.checkpoint_contents import check_model_checkpoint
from lr_lightning.config_checks import experiment_dir
from lr_lightning.data.contract import TrainingData
from lr_lightning.errors import InputError
from lr_lightning.run_folders import CHECKPOINT_ALIASES, newest_fit_checkpoint

__all__ = ["check_features_match", "checkpoint_hyperparameters", "resolve_ckpt_path"]

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


def checkpoint_hyperparameters(ckpt_path: str, class_path: str | None) -> dict[str, Any]:
    """Load ``ckpt_path`` (``weights_only=True``) and return its hyperparameters, checked against ``class_path``.

    Lightning's own ``--ckpt_path`` handling needs the ``_class_path`` that ``load_from_checkpoint_support`` writes
    into every checkpoint; this keeps checkpoints free of it and uses the model class named in the config, after
    checking that the checkpoint was saved by that class.
    """
    model_class = None
    if class_path:
        module_name, _, class_name = class_path.rpartition(".")
        model_class = getattr(importlib.import_module(module_name), class_name)
    return check_model_checkpoint(load_checkpoint(ckpt_path), ckpt_path, model_class=model_class)


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
