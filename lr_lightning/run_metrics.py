"""``metrics.json`` in the run folder of a ``validate`` or ``test`` run: its final metrics, in a file.

The file holds what Lightning printed at the end of the run, and where it came from::

    {
      "subcommand": "test",
      "ckpt_path": "runs/sourdough/version_0/checkpoints/best-epoch=59-step=60.ckpt",
      "epoch": 59,
      "global_step": 60,
      "metrics": {"test_loss": 6.06, "test_r2": 0.93, ...}
    }

``metrics`` is ``trainer.callback_metrics`` at the end of the run, each scalar as a float (``null`` for NaN and
infinities, which JSON cannot hold); ``ckpt_path`` the checkpoint as the run loaded it (``best`` and ``last``
resolved), ``epoch`` and ``global_step`` the values saved in it (``null`` without a checkpoint). The file is
written once, atomically (a temporary file in the same folder, then :func:`os.replace`), by process 0, with the
permissions of the umask like any file the run writes; it never replaces a file of that name. ``fit`` and
``predict`` write none.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lr_lightning.errors import require
from lr_lightning.loggers import is_plain_name

__all__ = ["RunMetrics", "final_metrics", "write_json_atomically"]


def final_metrics(trainer: pl.Trainer) -> dict[str, float | None]:
    """``trainer.callback_metrics``, each scalar as a float (``None`` when not finite); other tensors left out."""
    metrics: dict[str, float | None] = {}
    for name, value in sorted(trainer.callback_metrics.items()):
        if isinstance(value, Tensor) and value.numel() != 1:
            continue
        number = float(value)
        metrics[name] = number if math.isfinite(number) else None
    return metrics


def write_json_atomically(path: str | os.PathLike, content: Any) -> bool:
    """Write ``content`` as JSON to ``path`` unless a file is there; return whether it was written.

    The JSON goes to a temporary file of the same folder first, created by ``open`` (so with the umask's
    permissions, ``0644`` under ``022``), then takes the final name with :func:`os.replace`: a reader sees no file
    or the whole file.
    """
    path = os.fspath(path)
    if os.path.lexists(path):
        return False
    temporary = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    return True


class RunMetrics(Callback):
    """Write ``metrics.json`` into the run folder (``trainer.log_dir``) at the end of ``validate`` and ``test``.

    See the module docstring for the contents. A run without a logger has no run folder and writes nothing.

    Args:
        filename: the file's name in the run folder.

    """

    def __init__(self, filename: str = "metrics.json") -> None:
        require(is_plain_name(filename), "filename", "a file name, without a folder", filename)
        self.filename = filename
        self.path: str | None = None
        self._checkpoint_state: dict[str, int | None] = {"epoch": None, "global_step": None}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Forget what a previous run of this callback saw."""
        self.path = None
        self._checkpoint_state = {"epoch": None, "global_step": None}

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Keep the epoch and global step the checkpoint holds (Lightning restores neither outside ``fit``)."""
        for key in ("epoch", "global_step"):
            value = checkpoint.get(key)
            self._checkpoint_state[key] = int(value) if isinstance(value, int) else None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At the end of ``validate`` (not of the validation epochs of a fit), write the file."""
        if trainer.state.fn == TrainerFn.VALIDATING and not trainer.sanity_checking:
            self._write(trainer, "validate")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At the end of ``test``, write the file."""
        if trainer.state.fn == TrainerFn.TESTING:
            self._write(trainer, "test")

    def _write(self, trainer: pl.Trainer, subcommand: str) -> None:
        if not trainer.loggers:
            return
        log_dir = trainer.log_dir  # a collective under DDP: every process asks
        if not trainer.is_global_zero or not log_dir:
            return
        content = {
            "subcommand": subcommand,
            "ckpt_path": None if trainer.ckpt_path is None else os.fspath(trainer.ckpt_path),
            **self._checkpoint_state,
            "metrics": final_metrics(trainer),
        }
        os.makedirs(log_dir, exist_ok=True)
        path = os.path.join(log_dir, self.filename)
        if not write_json_atomically(path, content):
            rank_zero_warn(f"RunMetrics: {path} already exists; it is left as it is")
            return
        self.path = path
