"""Checks of a parsed CLI config, made before anything is instantiated or written.

Each raises :class:`~lr_lightning.errors.InputError` naming the option; :func:`name_the_option` gives a
constructor's message the option's full name. The config is the jsonargparse namespace of one subcommand (``fit``,
``validate``, ``test``, ``predict``); nothing here imports Lightning's Trainer.
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from lr_lightning.errors import InputError
from lr_lightning.loggers import LIGHTNING_TENSORBOARD_PATHS
from lr_lightning.run_folders import EVALUATIONS, VERSION_PREFIX, check_writable, fit_run_folder, refuse_used_folder

__all__ = [
    "LINKED_HPARAMS",
    "MAX_SEED",
    "OWN_SECTIONS",
    "VALUE_RULES",
    "check_option_order",
    "check_run_folders",
    "check_values",
    "experiment_dir",
    "name_the_option",
    "named_class",
    "place_evaluation_run",
    "use_exclusive_tensorboard_logger",
]

#: The class path of lr_lightning's TensorBoardLogger (:mod:`lr_lightning.loggers`), the one that can place a run.
TENSORBOARD_LOGGER = "lr_lightning.loggers.TensorBoardLogger"

#: The largest seed: numpy's and Lightning's seeds are 32-bit.
MAX_SEED = 2**32 - 1

#: Hyperparameters the CLI links from the data into the model: a checkpoint's values are checked against the
#: data's instead of being parsed again (jsonargparse copies a list once per element it checks).
LINKED_HPARAMS = ("in_features", "out_features", "target_names", "feature_names", "num_classes", "class_names")

#: Checks of values the parser accepts by type but that make no sense: option name -> (test, what it must be).
#: They apply wherever the name appears in ``optimizer``, ``lr_scheduler`` or ``trainer``: the sections whose
#: classes are torch's and Lightning's. The package's own models, DataModules and callbacks check their arguments
#: in their constructors (:func:`lr_lightning.errors.require`); :func:`name_the_option` adds the section.
VALUE_RULES: dict[str, tuple[Any, str]] = {
    "lr": (lambda v: 0 < v < math.inf, "> 0 and finite"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "max_epochs": (lambda v: v >= -1, ">= -1 (-1: no limit)"),
    "max_steps": (lambda v: v >= -1, ">= -1 (-1: no limit)"),
    "check_val_every_n_epoch": (lambda v: v >= 1, ">= 1"),
    "devices": (lambda v: v >= 1 or v == -1, ">= 1 (or -1: every device)"),
    "num_nodes": (lambda v: v >= 1, ">= 1"),
    "accumulate_grad_batches": (lambda v: v >= 1, ">= 1"),
}

#: Sections of a config that hold the package's own classes, whose constructors name an option without its section.
OWN_SECTIONS = ("model.init_args", "data.init_args", "prediction_writer", "dashboard", "lr_monitor")

#: The largest float32: a larger learning rate cannot even be multiplied into float32 weights.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def named_class(class_path: str | None) -> type | None:
    """Return the class a config's ``class_path`` names (jsonargparse has resolved it), or ``None`` for none."""
    if not class_path:
        return None
    module_name, _, class_name = str(class_path).rpartition(".")
    found = getattr(importlib.import_module(module_name), class_name, None)
    return found if isinstance(found, type) else None


def _get(namespace: Any, key: str, default: Any = None) -> Any:
    return namespace.get(key, default) if hasattr(namespace, "get") else default


def check_values(config: Any) -> None:
    """Raise :class:`InputError` naming the first option that breaks :data:`VALUE_RULES` (or the seed's range)."""
    sections = {
        "optimizer.init_args": _get(_get(config, "optimizer"), "init_args"),
        "lr_scheduler.init_args": _get(_get(config, "lr_scheduler"), "init_args"),
        "trainer": _get(config, "trainer"),
    }
    for prefix, values in sections.items():
        if not values:
            continue
        for name, (is_valid, requirement) in VALUE_RULES.items():
            value = _get(values, name)
            if name == "devices" and isinstance(value, str) and value.lstrip("-").isdigit():
                value = int(value)  # the parser keeps `--trainer.devices 0` as the string "0"
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not is_valid(value):
                raise InputError(f"{prefix}.{name} must be {requirement}, got {value}")
    seed = _get(config, "seed_everything")
    if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed_everything must be in [0, {MAX_SEED}] (or true: a random seed), got {seed}")
    precision = str(_get(_get(config, "trainer"), "precision") or "32")
    learning_rate = _get(sections["optimizer.init_args"], "lr")
    if not precision.startswith("64") and isinstance(learning_rate, float) and learning_rate > FLOAT32_MAX:
        raise InputError(
            f"optimizer.init_args.lr {learning_rate} does not fit in float32 (at most {FLOAT32_MAX:.4g}); "
            "a learning rate this large can only diverge"
        )


def _section(config: Any, prefix: str) -> Any:
    for key in prefix.split("."):
        config = _get(config, key)
    return config


def name_the_option(message: str, config: Any) -> str:
    """Return a constructor's ``"<option> must be ..."`` message with the option's full name, if only one has it.

    ``batch_size must be >= 1, got 0`` becomes ``data.init_args.batch_size must be >= 1, got 0``: the option is
    looked up in the :data:`OWN_SECTIONS` of ``config``. Other messages, and names found in no section or in more
    than one, come back as they are.
    """
    option, must, _ = message.partition(" must be ")
    if not must or not option.isidentifier():
        return message
    owners = [prefix for prefix in OWN_SECTIONS if option in (_section(config, prefix) or {})]
    return f"{owners[0]}.{message}" if len(owners) == 1 else message


def _loggers(config: Any) -> list[Any]:
    logger = _get(_get(config, "trainer"), "logger")
    if isinstance(logger, list):
        return logger
    return [] if logger in (None, False, True) else [logger]


def use_exclusive_tensorboard_logger(config: Any) -> None:
    """Swap Lightning's TensorBoardLogger for :class:`lr_lightning.loggers.TensorBoardLogger` (same arguments)."""
    for logger in _loggers(config):
        if _get(logger, "class_path") in LIGHTNING_TENSORBOARD_PATHS:
            logger["class_path"] = TENSORBOARD_LOGGER


def _experiment_of(init_args: Any) -> Path:
    """``<save_dir>/<name>`` of a logger's arguments (Lightning's default name is ``lightning_logs``)."""
    return Path(str(_get(init_args, "save_dir"))) / str(_get(init_args, "name", "lightning_logs") or "")


def experiment_dir(config: Any) -> Path | None:
    """``<save_dir>/<name>`` of the config's first logger that has a ``save_dir``, or ``None``."""
    for logger in _loggers(config):
        init_args = _get(logger, "init_args") or {}
        if _get(init_args, "save_dir") is not None:
            return _experiment_of(init_args)
    return None


def _same_folder(first: Path, second: Path) -> bool:
    return os.path.normcase(first.absolute().resolve()) == os.path.normcase(second.absolute().resolve())


def place_evaluation_run(config: Any, subcommand: str) -> None:
    """Send a ``validate``, ``test`` or ``predict`` run from a fit's checkpoint into that fit's run folder.

    When ``ckpt_path`` (aliases resolved) is ``<save_dir>/<name>/version_N/checkpoints/<file>``, the layout the CLI
    saves a fit's checkpoints in (:func:`~lr_lightning.run_folders.fit_run_folder`), every
    :class:`lr_lightning.loggers.TensorBoardLogger` of the config without an explicit ``version`` gets
    ``fit_version: version_N`` and ``evaluation: <subcommand>``: its run folder is the next free
    ``version_N/<subcommand>_K``, claimed when the run starts. Its ``save_dir`` and ``name`` become the
    checkpoint's when they name another experiment. Any other run (a ``fit``, a checkpoint file elsewhere, an
    explicit ``version``) gets ``fit_version`` and ``evaluation`` unset: a new ``version_N`` folder, as before; a
    config saved by an evaluation run therefore never sends another run into that fit's folder.

    Nothing is created here; the values written into the config are plain strings, saved with it in
    ``config.yaml``.
    """
    ckpt_path = _get(config, "ckpt_path")
    fit_folder = fit_run_folder(ckpt_path) if subcommand in EVALUATIONS and ckpt_path else None
    for logger in _loggers(config):
        init_args = _get(logger, "init_args")
        if _get(logger, "class_path") != TENSORBOARD_LOGGER or init_args is None:
            continue
        placed = fit_folder is not None and _get(init_args, "version") is None
        init_args["fit_version"] = fit_folder.name if placed and fit_folder is not None else None
        init_args["evaluation"] = subcommand if placed else None
        if not placed or fit_folder is None or _get(init_args, "save_dir") is None:
            continue
        experiment = fit_folder.parent
        if not _same_folder(_experiment_of(init_args), experiment):
            init_args["save_dir"], init_args["name"] = str(experiment.parent), experiment.name


def check_run_folders(config: Any, subcommand: str) -> None:
    """Refuse a run that would write into another run's folder, or where nothing can be written.

    * a logger's explicit ``version`` naming a folder that holds files;
    * a checkpoint callback's explicit ``dirpath`` (``best_checkpoint``, ``latest_checkpoint``, a ModelCheckpoint
      in ``trainer.callbacks``) that holds files, when fitting;
    * a ``save_dir`` that cannot be written;
    * an evaluation (:func:`place_evaluation_run`) whose fit's run folder cannot be written.
    """
    for index, logger in enumerate(_loggers(config)):
        init_args = _get(logger, "init_args") or {}
        save_dir = _get(init_args, "save_dir")
        if save_dir is None:
            continue
        check_writable(save_dir, "trainer.logger.init_args.save_dir")
        fit_version = _get(init_args, "fit_version")
        if fit_version is not None:
            _check_fit_folder_writable(_experiment_of(init_args) / str(fit_version), subcommand)
        version = _get(init_args, "version")
        if version is not None:
            folder = version if isinstance(version, str) else f"{VERSION_PREFIX}{version}"
            where = _experiment_of(init_args) / folder
            option = "trainer.logger.init_args.version" if index == 0 else f"trainer.logger[{index}].init_args.version"
            refuse_used_folder(where, option, version, "its logs")
    if subcommand != "fit":
        return
    dirpaths = [(key, _get(_get(config, key), "dirpath")) for key in ("best_checkpoint", "latest_checkpoint")]
    for index, callback in enumerate(_get(_get(config, "trainer"), "callbacks") or []):
        if str(_get(callback, "class_path", "")).endswith("ModelCheckpoint"):
            dirpaths.append((f"trainer.callbacks[{index}].init_args", _get(_get(callback, "init_args"), "dirpath")))
    for key, dirpath in dirpaths:
        if dirpath is not None:
            refuse_used_folder(dirpath, f"{key}.dirpath", dirpath, "checkpoints")


def _check_fit_folder_writable(fit_folder: Path, subcommand: str) -> None:
    try:
        check_writable(fit_folder, "--ckpt_path")
    except InputError as error:
        raise InputError(
            f"{error}; {subcommand} writes its logs into a folder of the fit's run folder {fit_folder}: pass "
            f"--trainer.logger.init_args.version NAME to write them into <save_dir>/<name>/NAME instead"
        ) from None


def _sets(config: Any, key: str) -> bool:
    """Whether the loaded YAML ``config`` sets the dotted ``key`` (``init_args`` levels may be left out of it)."""
    node = config
    for part in key.split("."):
        if isinstance(node, dict) and part not in node and isinstance(node.get("init_args"), dict):
            node = node["init_args"]
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_option_order(args: list[str]) -> None:
    """Refuse an option that a later ``--config`` file sets: jsonargparse applies them in order, the file last.

    ``lr-lightning predict --ckpt_path last --config my.yaml`` would otherwise run with the file's ``ckpt_path``
    (``null`` in a config printed by ``--print_config``), silently. An option the file does not set is kept.
    """
    import yaml

    earlier: list[str] = []
    for index, arg in enumerate(args[1:], start=1):
        option, _, inline = arg.partition("=")
        if option != "--config":
            if option.startswith("--"):
                earlier.append(option)
            continue
        path = inline or (args[index + 1] if index + 1 < len(args) else "")
        try:
            config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # the parser reports a file it cannot read
        replaced = next((option for option in earlier if _sets(config, option[2:])), None)
        if replaced is not None:
            raise InputError(
                f"{replaced} comes before --config {path}, which sets it too and would replace it; put --config first"
            )
