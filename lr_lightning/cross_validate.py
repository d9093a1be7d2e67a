"""``lr-lightning cv --config CONFIG --folds K [--grid KEY=VALUES ...] [fit options]``: k-fold runs, one table.

LightningCLI's subcommands are the trainer's methods and cannot loop, so :func:`lr_lightning.cli.main` dispatches
``cv`` here before LightningCLI parses. For every setting of the grid (the cartesian product of the ``--grid``
options; one setting without them) and every fold ``0 .. K-1``, this runs an ordinary ``lr-lightning fit`` with the
same config and overrides plus ``--data.init_args.num_folds K --data.init_args.fold k``: each fold is a normal run in
its own ``version_N`` folder (checkpoints, TensorBoard, ``config.yaml``). The DataModule makes the folds (seeded,
disjoint, covering the rows not held out for testing, stratified by class for classification:
:func:`lr_lightning.data.stores.memory.ordered_split`).

At the end, one table: per setting, the mean and the standard deviation (over folds, ``ddof=0`` as scikit-learn's
``cv_results_``) of each validation metric of the folds' last epochs, printed, written to
``<experiment>/cv_results.csv`` (``cv_results_1.csv``, ... if taken: nothing is overwritten) and logged to
TensorBoard's HParams tab (``<experiment>/cv_hparams/setting_J``).

``--grid`` takes a config key and a YAML list: ``--grid model.init_args.l2_strength=[0.001,0.01,0.1]``; several
``--grid`` options multiply. Errors are one line and exit 2.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import yaml

from lr_lightning.errors import InputError

__all__ = ["SUBCOMMAND", "FoldRun", "Setting", "cross_validate", "cv_main", "parse_grid"]

#: The subcommand's name on the command line.
SUBCOMMAND = "cv"

_USAGE = "usage: lr-lightning cv --config CONFIG --folds K [--grid KEY=[V1,V2,...] ...] [fit options]"


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are :class:`InputError` (one line, exit 2, as every ``lr-lightning`` error)."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{SUBCOMMAND}: {message} ({_USAGE})")


@dataclass
class FoldRun:
    """One fold's fit: its run folder and the validation metrics of its last epoch."""

    fold: int
    run_folder: str
    metrics: dict[str, float]


@dataclass
class Setting:
    """One point of the grid (``{config key: value}``; empty without a grid) and its folds' runs."""

    values: dict[str, Any]
    runs: list[FoldRun] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Mean and standard deviation over folds of each validation metric: ``val_mse_mean``, ``val_mse_std``."""
        names = sorted(set.intersection(*(set(run.metrics) for run in self.runs))) if self.runs else []
        table: dict[str, float] = {}
        for name in names:
            values = np.array([run.metrics[name] for run in self.runs])
            table[f"{name}_mean"], table[f"{name}_std"] = float(values.mean()), float(values.std())
        return table


def parse_grid(options: Sequence[str]) -> list[dict[str, Any]]:
    """Return the settings of ``--grid KEY=[V1,...]`` options: their cartesian product, in the order given.

    Raises:
        InputError: an option without ``=``, a key given twice, a value that is not a non-empty YAML list.

    """
    keys: list[str] = []
    values: list[list[Any]] = []
    for option in options:
        key, sep, text = option.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key:
            raise InputError(
                f"{SUBCOMMAND}: --grid {option!r} is not KEY=[V1,V2,...] (e.g. model.init_args.l2_strength=[0.01,0.1])"
            )
        if key in keys:
            raise InputError(f"{SUBCOMMAND}: --grid names {key!r} twice")
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            parsed = None
        if not isinstance(parsed, list) or not parsed:
            raise InputError(
                f"{SUBCOMMAND}: --grid {key}={text!r}: the values must be a non-empty list, e.g. [0.01,0.1]"
            )
        keys.append(key)
        values.append(parsed)
    return [dict(zip(keys, combination, strict=True)) for combination in itertools.product(*values)]


def _flag(key: str, value: Any) -> list[str]:
    """Return ``--key value`` as LightningCLI reads it (a value as YAML text)."""
    text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
    return [f"--{key}", text.removesuffix("\n...")]


def _last_validation_metrics(run: Any) -> dict[str, float]:
    """Return the ``val_*`` metrics the fit logged at its last validation (the trainer's ``callback_metrics``)."""
    metrics = run.trainer.callback_metrics
    return {name: float(value) for name, value in metrics.items() if name.startswith("val_")}


def cross_validate(fit_args: Sequence[str], folds: int, grid: Sequence[dict[str, Any]]) -> list[Setting]:
    """Run every fold of every setting as an ``lr-lightning fit`` in this process; return the settings' runs.

    Args:
        fit_args: the fit's options (``--config``, overrides), the same for every run.
        folds: K >= 2.
        grid: the settings (:func:`parse_grid`); ``[{}]`` for one run of the config as it is.

    """
    from lr_lightning.cli import cli

    settings = [Setting(dict(values)) for values in grid]
    probe = cli([*fit_args, "--data.init_args.num_folds", str(folds)], run=False)  # instantiated, nothing run
    if probe.trainer.world_size > 1:
        raise InputError(
            f"{SUBCOMMAND}: the folds run one after another in this process; a config of {probe.trainer.world_size} "
            "processes (DDP) is not supported: set --trainer.devices 1 (and --trainer.strategy auto)"
        )
    for setting in settings:
        overrides = [arg for key, value in setting.values.items() for arg in _flag(key, value)]
        for fold in range(folds):
            folding = ["--data.init_args.num_folds", str(folds), "--data.init_args.fold", str(fold)]
            run = cli(["fit", *fit_args, *overrides, *folding])
            log_dir = run.trainer.log_dir or ""
            setting.runs.append(FoldRun(fold, log_dir, _last_validation_metrics(run)))
    return settings


def _experiment_folder(settings: Sequence[Setting]) -> Path:
    """Return the folder of the runs' version folders (``runs/<experiment>``)."""
    return Path(settings[0].runs[0].run_folder).parent


def _claim(folder: Path, stem: str, suffix: str) -> Path:
    """Create and return a new file ``stem.suffix`` (``stem_1.suffix``, ... if taken), never one that exists."""
    for index in itertools.count():
        path = folder / f"{stem}{'' if index == 0 else f'_{index}'}{suffix}"
        try:
            with path.open("x"):
                return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def write_table(settings: Sequence[Setting]) -> Path:
    """Write the settings' means and spreads as CSV in the experiment folder; return the file."""
    path = _claim(_experiment_folder(settings), "cv_results", ".csv")
    keys = list(settings[0].values)
    metrics = list(settings[0].summary())
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*keys, *metrics, "folds", "run_folders"])
        for setting in settings:
            summary = setting.summary()
            row = [setting.values[key] for key in keys] + [summary.get(name, "") for name in metrics]
            writer.writerow([*row, len(setting.runs), " ".join(run.run_folder for run in setting.runs)])
    return path


def log_hparams(settings: Sequence[Setting], table: Path) -> Path:
    """Log each setting with its mean metrics to TensorBoard's HParams tab; return the folder of those runs."""
    from torch.utils.tensorboard import SummaryWriter

    root = _experiment_folder(settings) / f"cv_hparams{table.stem.removeprefix('cv_results')}"
    for index, setting in enumerate(settings):
        hparams = {key.rsplit(".", 1)[-1]: _hparam(value) for key, value in setting.values.items()} or {"setting": 0}
        metrics = {f"cv/{name}": value for name, value in setting.summary().items()}
        with SummaryWriter(log_dir=str(root / f"setting_{index}")) as writer:
            writer.add_hparams(hparams, metrics, run_name=".")
    return root


def _hparam(value: Any) -> Any:
    """Return a grid value as TensorBoard's HParams plugin takes it: a number, a bool or text."""
    return value if isinstance(value, int | float | str | bool) else str(value)


def format_table(settings: Sequence[Setting]) -> str:
    """Return the table as text: one line per setting, ``mean ± std`` of each validation metric."""
    lines = []
    for setting in settings:
        summary = setting.summary()
        named = ", ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in setting.values.items()) or "config"
        means = [name.removesuffix("_mean") for name in summary if name.endswith("_mean")]
        cells = ", ".join(f"{name} {summary[name + '_mean']:.6g} ± {summary[name + '_std']:.3g}" for name in means)
        lines.append(f"{named}: {cells} ({len(setting.runs)} folds)")
    return "\n".join(lines)


def cv_main(args: Sequence[str]) -> list[Setting]:
    """Run ``lr-lightning cv``: parse, run every fold of every setting, print and write the table."""
    parser = _Parser(prog=f"lr-lightning {SUBCOMMAND}", description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--folds", type=int, required=True, help="K, the number of folds (>= 2)")
    parser.add_argument("--grid", action="append", default=[], help="KEY=[V1,V2,...]: a config key and its values")
    known, fit_args = parser.parse_known_args(list(args))
    if known.folds < 2:
        raise InputError(f"{SUBCOMMAND}: --folds must be >= 2, got {known.folds}")
    if any(
        arg.split("=", 1)[0]
        in ("--data.init_args.num_folds", "--data.init_args.fold", "--data.num_folds", "--data.fold")
        for arg in fit_args
    ):
        raise InputError(f"{SUBCOMMAND}: the folds are set by --folds; remove --data.num_folds and --data.fold")
    settings = cross_validate(fit_args, known.folds, parse_grid(known.grid) or [{}])
    table = write_table(settings)
    hparams = log_hparams(settings, table)
    print(f"Cross-validation, {known.folds} folds:")
    print(format_table(settings))
    print(f"Table: {table}")
    print(f"TensorBoard HParams: tensorboard --logdir {hparams.parent}")
    return settings
