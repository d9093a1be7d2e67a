"""A test-only callback that kills its own process with SIGKILL, to test resuming (imported by CLI subprocesses)."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class KillAtEpoch(Callback):
    """SIGKILL the process at the start of training epoch ``epoch`` (after the previous epoch's checkpoints)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Die like a killed job: no exception, no cleanup, no final checkpoint."""
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)
