"""The ``lr-lightning`` command: LightningCLI with lr_lightning's defaults.

Run ``lr-lightning fit --config configs/sourdough.yaml``; then ``test``, ``validate`` or ``predict`` with
``--ckpt_path PATH`` in a fresh process. ``lr-lightning fit --print_config`` prints a full config to start from.

What this CLI adds to Lightning's:

* model and data in subclass mode: configs name ``class_path`` and ``init_args``;
* the data's shape flows into the model (``data.num_features -> model.in_features`` and so on), so no config
  repeats the data's dimensions;
* a TensorBoard logger under ``runs/<experiment>/version_N``: every run gets a new version folder;
* two checkpoints: the best epoch by ``val_loss`` (``best_checkpoint``) and the latest epoch for resuming
  (``latest_checkpoint``);
* seeded by default (``seed_everything: 0``), the resolved config saved in the run folder;
* ``predict`` writes ``predictions.csv`` into its run folder;
* checkpoints are loaded with ``weights_only=True`` through :func:`lr_lightning.checkpoint.load_checkpoint` (no
  URLs, no pickle payloads, a missing or corrupt ``--ckpt_path`` is an error) and saved atomically;
* values the parser accepts but that make no sense (a negative learning rate, ``batch_size: 0``) are refused
  with the option's name before anything is written.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.optim import Optimizer

from lr_lightning.callbacks import CSVPredictionWriter
from lr_lightning.checkpoint import AtomicCheckpointIO, load_checkpoint
from lr_lightning.dashboard import LearningRateLogger, TensorBoardDashboard
from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.errors import InputError
from lr_lightning.models.base import LinearModelBase, TrainingDivergedError

__all__ = ["LRLightningCLI", "cli", "main"]

#: Where runs go unless a config says otherwise: runs/<experiment>/version_N.
DEFAULT_LOGGER = {
    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
    # default_hp_metric off: the dashboard writes the HParams entry with the real final metrics at the end of fit.
    "init_args": {"save_dir": "runs", "name": "default", "default_hp_metric": False},
}

#: The optimizer when a config names none; configs choose their own in ``optimizer:``.
DEFAULT_OPTIMIZER = {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}

#: Checks of values the parser accepts by type but that make no sense: option name -> (test, what it must be).
#: They apply wherever the name appears in ``model``, ``data``, ``optimizer``, ``lr_scheduler`` or ``trainer``.
VALUE_RULES: dict[str, tuple[Any, str]] = {
    "lr": (lambda v: v > 0, "> 0"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "n_samples": (lambda v: v >= 1, ">= 1"),
    "n_features": (lambda v: v >= 1, ">= 1"),
    "n_targets": (lambda v: v >= 1, ">= 1"),
    "n_classes": (lambda v: v >= 2, ">= 2"),
    "val_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "test_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "noise": (lambda v: v >= 0, ">= 0"),
    "l1_strength": (lambda v: v >= 0, ">= 0"),
    "l2_strength": (lambda v: v >= 0, ">= 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "max_epochs": (lambda v: v >= -1, ">= -1 (-1: no limit)"),
    "max_steps": (lambda v: v >= -1, ">= -1 (-1: no limit)"),
}


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

        parser.add_optimizer_args((Optimizer,))
        parser.set_defaults({"optimizer": DEFAULT_OPTIMIZER, "trainer.logger": DEFAULT_LOGGER})

    def _parse_ckpt_path(self) -> None:
        """Check ``--ckpt_path`` and take the model's hyperparameters from it (loaded with ``weights_only=True``).

        A URL, a missing, truncated or corrupt file, a pickle payload or an ``_instantiator`` entry is an
        :class:`InputError` here, before anything is instantiated or written. Lightning's own version needs the
        ``_class_path`` that ``load_from_checkpoint_support`` writes into every checkpoint; ours keeps
        checkpoints free of it and uses the model class named in the config.
        """
        self._checkpoint_hparams: dict[str, Any] = {}
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if not ckpt_path:
            return
        checkpoint = load_checkpoint(ckpt_path)
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        self._checkpoint_hparams = hparams
        model_config = self.config[subcommand].get("model")
        if not hparams or model_config is None or not model_config.get("class_path"):
            return
        overrides = {"class_path": model_config["class_path"], "init_args": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": overrides}}, self.config)

    def before_instantiate_classes(self) -> None:
        """Refuse senseless values by option name; load checkpoints with ``weights_only=True`` by default."""
        config = self.config[self.subcommand] if self.subcommand is not None else self.config
        self._check_values(config)
        if self.subcommand is not None and "weights_only" in config and config["weights_only"] is None:
            config["weights_only"] = True
        if self.subcommand in ("validate", "test", "predict"):
            # These runs get a version folder of their own, so the checkpoint callbacks' saved state names another
            # folder; Lightning's warning that top-k tracking will not be restored only matters when resuming a fit.
            warnings.filterwarnings("ignore", message=r"The dirpath has changed from .* won't be reloaded")

    @staticmethod
    def _check_values(config: Any) -> None:
        """Raise :class:`InputError` naming the first option that breaks :data:`VALUE_RULES`."""
        sections = {
            "model.init_args": (config.get("model") or {}).get("init_args"),
            "data.init_args": (config.get("data") or {}).get("init_args"),
            "optimizer.init_args": (config.get("optimizer") or {}).get("init_args"),
            "lr_scheduler.init_args": (config.get("lr_scheduler") or {}).get("init_args"),
            "trainer": config.get("trainer"),
        }
        for prefix, values in sections.items():
            if not values:
                continue
            for name, (is_valid, requirement) in VALUE_RULES.items():
                value = values.get(name) if hasattr(values, "get") else None
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                if not is_valid(value):
                    raise InputError(f"{prefix}.{name} must be {requirement}, got {value}")

    def instantiate_classes(self) -> None:
        """Instantiate; a constructor's ``ValueError`` is the user's input, so it exits 2 without a traceback."""
        try:
            super().instantiate_classes()
        except InputError:
            raise
        except ValueError as error:
            raise InputError(f"invalid configuration: {error}") from None
        self._check_checkpoint_matches_data()

    def _check_checkpoint_matches_data(self) -> None:
        """Check that the data's features are the checkpoint's: same count, same names (when both have names)."""
        hparams = getattr(self, "_checkpoint_hparams", {})
        trained_count = hparams.get("in_features")
        if trained_count is None or self.datamodule is None or not hasattr(self.datamodule, "num_features"):
            return
        count, names = self.datamodule.num_features, self.datamodule.feature_names
        trained_names = hparams.get("feature_names")
        if count != trained_count:
            raise InputError(
                f"the data has {count} features {names} but the checkpoint was trained on {trained_count}"
                f"{f' {trained_names}' if trained_names else ''}"
            )
        if trained_names and list(trained_names) != list(names):
            raise InputError(f"the data's features {names} are not the checkpoint's {list(trained_names)}")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Build the trainer; unless a config chose its own CheckpointIO, save checkpoints atomically."""
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def after_fit(self) -> None:
        """Say where the run went: checkpoints and the TensorBoard command."""
        log_dir = self.trainer.log_dir  # a collective under DDP: every rank must ask
        if self.trainer.global_rank != 0:
            return
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

    Args:
        args: command-line arguments (a list, as from the shell); ``None`` reads ``sys.argv``.
        run: run the subcommand; ``False`` only instantiates the classes.
        kwargs: further ``LightningCLI`` arguments.

    Returns:
        The CLI, whose ``trainer``, ``model`` and ``datamodule`` can be inspected after the run.

    """
    # Lightning 2.6 calls jsonargparse APIs that jsonargparse 4.49+ marks deprecated; users cannot act on that.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    # The optimizer group deliberately replaces the model's fallback `configure_optimizers`.
    warnings.filterwarnings("ignore", message=r".*configure_optimizers` will be overridden.*")
    # Lightning 2.6's batch-moving code uses a torch.utils._pytree API that torch 2.13 marks deprecated; users
    # cannot act on that either, and it printed on every run.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # Lightning offers prediction writers the batch indices of DataLoaders only; CSVPredictionWriter puts rows in
    # their source order from our loaders' own row order, so it needs none.
    warnings.filterwarnings("ignore", message=r"Couldn't infer the batch indices .*`(InMemory|Disk)BatchLoader`")
    kwargs.setdefault("save_config_kwargs", {"overwrite": False})
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
    """Entry point of ``lr-lightning`` and ``python -m lr_lightning``.

    Args:
        args: command-line arguments; ``None`` reads ``sys.argv``.

    """
    try:
        cli(args)
        # Lightning leaves a DDP process group open; torch's gloo threads then abort the interpreter at exit.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    except InputError as error:
        # A mistake in the user's input, raised before any run folder or checkpoint is written: say what it is.
        print(f"lr-lightning: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except TrainingDivergedError as error:
        # The message already names the epoch, the step and the likely causes; a traceback would bury it.
        print(f"lr-lightning: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
