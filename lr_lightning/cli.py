"""The ``lr-lightning`` command: LightningCLI with lr_lightning's defaults.

Run ``lr-lightning fit --config configs/sourdough.yaml``; then ``test``, ``validate`` or ``predict`` with
``--ckpt_path PATH`` in a fresh process. ``lr-lightning fit --print_config`` prints a full config to start from.
``lr-lightning summary --ckpt_path PATH [--json]`` prints the inference table a fit stored in its checkpoint
(:mod:`lr_lightning.summary_command`; not a LightningCLI subcommand: :func:`main` runs it before LightningCLI
parses). ``lr-lightning cv --config CONFIG --folds K [--grid KEY=[V1,V2]]`` runs every fold of a config (and of a
grid of its options) as ordinary fits and writes one table (:mod:`lr_lightning.cross_validate`), dispatched alike.

What this CLI adds to Lightning's:

* model and data in subclass mode: configs name ``class_path`` and ``init_args``;
* the data's shape flows into the model (``data.num_features -> model.in_features`` and so on), so no config
  repeats the data's dimensions;
* a TensorBoard logger under ``runs/<experiment>/version_N``: every fit gets a new version folder, and
  ``validate``, ``test`` and ``predict`` from a fit's checkpoint get ``version_N/<subcommand>_K`` inside it (with
  ``metrics.json`` after ``validate`` and ``test``), so TensorBoard shows which run a test belongs to;
* two checkpoints: the best epoch by ``val_loss`` (``best_checkpoint``) and the latest epoch for resuming
  (``latest_checkpoint``);
* seeded by default (``seed_everything: 0``), the resolved config saved in the run folder;
* the end of ``fit`` prints the best and last epoch, the fit's certificate (how far from its optimum it ended),
  the coefficients and the inference table (``summary:`` options ``cov_type`` and ``alpha``; also written as
  ``summary.txt`` and ``summary.json`` in the run folder);
* ``predict`` writes ``predictions.csv`` into its run folder;
* checkpoints are loaded with ``weights_only=True`` through :func:`lr_lightning.checkpoint.load_checkpoint` (no
  URLs, no pickle payloads, a missing or corrupt ``--ckpt_path`` is an error) and saved atomically;
* values the parser accepts but that make no sense (a negative learning rate, ``batch_size: 0``) are refused
  with the option's name before anything is written.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.optim import Optimizer

from lr_lightning import config_guard
from lr_lightning.callbacks import FitCertificate
from lr_lightning.checkpoint import AtomicCheckpointIO
from lr_lightning.cli_checkpoint import (
    check_features_match,
    checkpoint_defaults,
    checkpoint_hyperparameters,
    resolve_ckpt_path,
)
from lr_lightning.cli_errors import errors_in_one_line, input_error_in
from lr_lightning.cli_scope import run_scope
from lr_lightning.cli_tasks import match_data_task_to_model
from lr_lightning.config_checks import (
    LINKED_HPARAMS,
    check_option_order,
    check_run_folders,
    check_values,
    name_the_option,
    named_class,
    place_evaluation_run,
    use_exclusive_tensorboard_logger,
)
from lr_lightning.cross_validate import SUBCOMMAND as CV_SUBCOMMAND
from lr_lightning.cross_validate import cv_main
from lr_lightning.dashboard import LearningRateLogger, TensorBoardDashboard
from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.contract import TrainingData
from lr_lightning.data.file import FileDataModule
from lr_lightning.errors import InputError, one_line
from lr_lightning.fit_summary import ValidationHistory, coefficient_summary, format_fit_summary, inference_lines
from lr_lightning.models.base import LinearModelBase
from lr_lightning.prediction_writer import CSVPredictionWriter
from lr_lightning.run_metrics import RunMetrics
from lr_lightning.summary import InferenceSummary
from lr_lightning.summary_command import SUBCOMMAND, summary_main

__all__ = ["LRLightningCLI", "cli", "main"]

#: Where runs go unless a config says otherwise: runs/<experiment>/version_N.
DEFAULT_LOGGER = {
    "class_path": "lr_lightning.loggers.TensorBoardLogger",
    # default_hp_metric off: the dashboard writes the HParams entry with the real final metrics at the end of fit.
    "init_args": {"save_dir": "runs", "name": "default", "default_hp_metric": False},
}

#: The model and data when a config names none, so that ``lr-lightning fit --print_config`` prints a config that
#: runs as it is (the course's sourdough table); ``--model X --data Y --print_config`` gives one for others.
DEFAULT_MODEL = {"class_path": "lr_lightning.models.MultiOutputRegression"}
DEFAULT_DATA = {"class_path": "lr_lightning.data.SourdoughDataModule"}

#: The optimizer when a config names none; configs choose their own in ``optimizer:``.
DEFAULT_OPTIMIZER = {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}


class LRLightningCLI(LightningCLI):
    """LightningCLI with the links, callbacks and defaults of lr_lightning (see the module docstring)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the data's shape and names into the model; add the checkpoint and prediction callbacks."""
        parser.link_arguments("data.num_features", "model.init_args.in_features", apply_on="instantiate")
        parser.link_arguments("data.num_targets", "model.init_args.out_features", apply_on="instantiate")
        parser.link_arguments("data.target_names", "model.init_args.target_names", apply_on="instantiate")
        parser.link_arguments("data.feature_names", "model.init_args.feature_names", apply_on="instantiate")
        # Classification data exposes num_classes/class_names instead of num_targets/target_names; jsonargparse
        # skips a link whose source attribute the instantiated DataModule does not have.
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.init_args.class_names", apply_on="instantiate")

        parser.add_lightning_class_args(ModelCheckpoint, "best_checkpoint")
        parser.set_defaults(
            {
                "best_checkpoint.monitor": "val_loss",
                "best_checkpoint.mode": "min",
                "best_checkpoint.save_top_k": 1,
                "best_checkpoint.filename": "best-{epoch}-{step}",
            }
        )
        # Lightning's `last.ckpt` follows the best epoch when top-k is on, so it is no resume point; this
        # callback keeps exactly the latest epoch instead, overwriting `latest.ckpt`.
        parser.add_lightning_class_args(ModelCheckpoint, "latest_checkpoint")
        parser.set_defaults(
            {
                "latest_checkpoint.monitor": None,
                "latest_checkpoint.save_top_k": 1,
                "latest_checkpoint.filename": "latest",
                "latest_checkpoint.enable_version_counter": False,
            }
        )
        parser.add_lightning_class_args(CSVPredictionWriter, "prediction_writer")
        # TensorBoard: figures every N validation epochs, the coefficient table, final-metric hparams, the LR.
        parser.add_lightning_class_args(TensorBoardDashboard, "dashboard")
        parser.add_lightning_class_args(LearningRateLogger, "lr_monitor")
        parser.add_lightning_class_args(ValidationHistory, "validation_history")  # for the summary after fit
        parser.add_lightning_class_args(RunMetrics, "run_metrics")  # metrics.json after validate and test
        # The inference table at the end of fit (summary.cov_type: HC3, summary.alpha: 0.1); the models add a
        # default one when no trainer callback is there.
        parser.add_lightning_class_args(InferenceSummary, "summary")

        parser.add_optimizer_args((Optimizer,))
        parser.set_defaults(
            {
                "optimizer": DEFAULT_OPTIMIZER,
                "trainer.logger": DEFAULT_LOGGER,
                "model": DEFAULT_MODEL,
                "data": DEFAULT_DATA,
            }
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse; ``predict --ckpt_path CKPT`` without a config takes the model and data from the checkpoint first."""
        argv = sys.argv[1:] if args is None else args
        if isinstance(argv, list):
            check_option_order(argv)
        implied = checkpoint_defaults(argv) if isinstance(argv, list) else None
        if implied is not None:
            subcommand, defaults = implied
            self._subcommand_parsers[subcommand].set_defaults(defaults)
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Resolve and check ``--ckpt_path``; take the model's hyperparameters from it (see :mod:`.cli_checkpoint`)."""
        self._checkpoint_hparams: dict[str, Any] = {}
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        ckpt_path = resolve_ckpt_path(subcommand, config)
        if ckpt_path is None:
            return
        model_config = config.get("model")
        class_path = model_config.get("class_path") if model_config is not None else None
        settings = checkpoint_hyperparameters(ckpt_path, class_path, subcommand, config.get("trainer") or {})
        hparams = self._checkpoint_hparams = settings.hparams
        if class_path:
            unlinked = {key: value for key, value in hparams.items() if key not in LINKED_HPARAMS}
            overrides = {"class_path": class_path, "init_args": unlinked}
            self.config = self.parser.parse_object({subcommand: {"model": overrides}}, self.config)
        data_config = config.get("data")
        data_class = data_config.get("class_path") if data_config is not None else None
        data_type = named_class(data_class)
        if settings.encoding is not None and data_type is not None and issubclass(data_type, FileDataModule):
            # The data applies what training fitted (levels, imputed values), never fits again on these rows.
            encoding = {"class_path": data_class, "init_args": {"encoding": settings.encoding}}
            self.config = self.parser.parse_object({subcommand: {"data": encoding}}, self.config)

    def _set_seed(self) -> None:
        """Refuse senseless values (the seed's range among them) before Lightning sets the seed."""
        check_values(self.config[self.subcommand] if self.subcommand is not None else self.config)
        super()._set_seed()

    def before_instantiate_classes(self) -> None:
        """Refuse runs into another's folder, ``weights_only: false`` and non-atomic checkpoint IO."""
        config = self.config[self.subcommand] if self.subcommand is not None else self.config
        if self.subcommand is None:
            return
        if "weights_only" in config:
            if config["weights_only"] is False:
                raise InputError(
                    "--weights_only false is refused: lr_lightning loads checkpoints with weights_only=True only "
                    "(full unpickling can run code from the file)"
                )
            config["weights_only"] = True
        match_data_task_to_model(config)
        use_exclusive_tensorboard_logger(config)
        place_evaluation_run(config, self.subcommand)
        check_run_folders(config, self.subcommand)

    def instantiate_classes(self) -> None:
        """Instantiate; a constructor's :class:`InputError` gets the option's full name (``data.init_args.seed``).

        Only :class:`InputError` is the user's input; any other error of a constructor or of loading the data is a
        bug and keeps its traceback.
        """
        try:
            super().instantiate_classes()
        except ValueError as error:  # an InputError, or jsonargparse's ValueError raised from one
            cause = input_error_in(error)
            if cause is None:
                raise
            config = self.config[self.subcommand] if self.subcommand else self.config
            raise InputError(name_the_option(str(cause), config)) from None
        if isinstance(self.datamodule, TrainingData) and isinstance(self.model, LinearModelBase):
            if self.subcommand == "fit":
                self.model.check_training_data(self.datamodule)  # before the run folder exists
        if self._checkpoint_hparams and isinstance(self.datamodule, TrainingData):
            check_features_match(self._checkpoint_hparams, self.datamodule)
        writer = self._get(self.config_init, "prediction_writer")
        if self.subcommand == "predict" and isinstance(writer, CSVPredictionWriter):
            writer.prepare(self.datamodule)  # a kept column that is missing stops the run before anything is written

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Build the trainer with lr_lightning's atomic, ``weights_only=True`` CheckpointIO, whatever the config.

        ``trainer.enable_progress_bar`` left unset shows Lightning's progress bar in a terminal only, not in a log
        file or a pipe, where its redrawn lines would be noise.
        """
        if self._get(self.config_init, "trainer", default={}).get("enable_progress_bar") is None:
            kwargs.setdefault("enable_progress_bar", sys.stderr.isatty())
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:
            raise InputError(f"trainer: {one_line(error)}") from None
        checkpoint_io = trainer.strategy.checkpoint_io
        if type(checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        elif not isinstance(checkpoint_io, AtomicCheckpointIO):
            raise InputError(
                f"trainer.plugins: {type(checkpoint_io).__name__} would replace lr_lightning's checkpoint IO, which "
                "saves atomically and loads with weights_only=True only; remove it"
            )
        return trainer

    def after_fit(self) -> None:
        """Say how good the model is (best and last epoch, coefficients, inference) and where the run went."""
        log_dir = self.trainer.log_dir  # a collective under DDP: every rank must ask
        if self.trainer.global_rank != 0:
            return
        final = {name: float(value) for name, value in self.trainer.callback_metrics.items() if value.numel() == 1}
        table = coefficient_summary(self.model, self.datamodule)
        history = self._get(self.config_init, "validation_history")
        records = history.history if isinstance(history, ValidationHistory) else []
        # Lightning 2.6 sets Trainer.callbacks in _CallbackConnector.on_trainer_init and declares it nowhere.
        callbacks = self.trainer.callbacks  # type: ignore[attr-defined]
        certificates = [callback.summary_line() for callback in callbacks if isinstance(callback, FitCertificate)]
        for line in format_fit_summary(records, final, table, [line for line in certificates if line]):
            print(line)
        for line in inference_lines(callbacks):  # the statistical inference, after the metrics and certificates
            print(line)
        best = self.best_checkpoint_path
        latest = self.latest_checkpoint_path
        if best:
            print(f"Best checkpoint (by val_loss): {best}")
        if latest:
            print(f"Latest checkpoint (resume with --ckpt_path): {latest}")
        if log_dir:
            print(f"Run folder: {log_dir}")
            print(f"TensorBoard: tensorboard --logdir {os.path.dirname(log_dir)}")

    def _checkpoint_callback(self, key: str) -> ModelCheckpoint | None:
        target = self._get(self.config_init, key)
        return target if isinstance(target, ModelCheckpoint) else None

    @property
    def best_checkpoint_path(self) -> str:
        """Path of the best checkpoint written by the last ``fit`` ('' if none)."""
        callback = self._checkpoint_callback("best_checkpoint")
        return callback.best_model_path if callback is not None else ""

    @property
    def latest_checkpoint_path(self) -> str:
        """Path of the latest-epoch checkpoint written by the last ``fit`` ('' if none)."""
        callback = self._checkpoint_callback("latest_checkpoint")
        return callback.best_model_path if callback is not None else ""


def cli(args: ArgsType = None, run: bool = True, **kwargs: Any) -> LRLightningCLI:
    """Build (and by default run) the CLI; what ``lr-lightning`` does, callable from Python and tests.

    The warning filters and environment variables it sets last for the call only (:mod:`lr_lightning.cli_scope`).

    Args:
        args: command-line arguments (a list, as from the shell); ``None`` reads ``sys.argv``.
        run: run the subcommand; ``False`` only instantiates the classes.
        kwargs: further ``LightningCLI`` arguments.

    Returns:
        The CLI, whose ``trainer``, ``model`` and ``datamodule`` can be inspected after the run.

    """
    kwargs.setdefault("save_config_kwargs", {"overwrite": False})
    config_guard.install()
    if args is None or isinstance(args, list):
        config_guard.check_command_line(sys.argv[1:] if args is None else args)
    with run_scope():
        return LRLightningCLI(
            model_class=LinearModelBase,
            datamodule_class=InMemoryDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            load_from_checkpoint_support=False,
            args=args,
            run=run,
            **kwargs,
        )


def main(args: ArgsType = None) -> None:
    """Entry point of ``lr-lightning`` and ``python -m lr_lightning``; known errors end in one line (``cli_errors``).

    Args:
        args: command-line arguments; ``None`` reads ``sys.argv``.

    """
    argv = sys.argv[1:] if args is None else args
    if isinstance(argv, list | tuple) and argv and argv[0] == SUBCOMMAND:
        with errors_in_one_line():  # not Lightning's: a checkpoint's stored inference table (summary_command)
            summary_main([str(arg) for arg in argv[1:]])
        return
    if isinstance(argv, list | tuple) and argv and argv[0] == CV_SUBCOMMAND:
        with errors_in_one_line():  # k-fold runs of fit (cross_validate): LightningCLI's subcommands cannot loop
            cv_main([str(arg) for arg in argv[1:]])
        return
    with errors_in_one_line():
        cli(args)
        # Lightning leaves a DDP process group open; torch's gloo threads then abort the interpreter at exit.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
