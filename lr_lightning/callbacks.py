"""Lightning callbacks of lr_lightning."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_only

__all__ = ["CSVPredictionWriter"]


class CSVPredictionWriter(BasePredictionWriter):
    """Write ``predict`` results to a CSV file in the run folder and print its path.

    One row per input row, in input order; the columns come from the model's ``prediction_columns`` (the target
    names for regression). The file lands in ``trainer.log_dir`` (``runs/<experiment>/version_N/``), so no
    prediction run overwrites another.

    Args:
        filename: name of the CSV file inside the run folder.

    """

    def __init__(self, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.filename = filename
        self.path: str | None = None

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        """Concatenate the batches' predictions, gather them from every process, and write them once."""
        if predictions and isinstance(predictions[0], list):  # several predict dataloaders: use the first
            predictions = predictions[0]
        outputs = torch.cat([p.detach().cpu() for p in predictions]) if predictions else torch.empty(0, 0)
        # Under DDP each rank predicted its own contiguous block of rows, in rank order; both calls below are
        # collectives, so every rank makes them.
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            blocks: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(blocks, outputs)
            outputs = torch.cat([block for block in blocks if block.numel()])
        directory = trainer.log_dir or trainer.default_root_dir
        self._write(directory, pl_module, outputs)

    @rank_zero_only
    def _write(self, directory: str, pl_module: pl.LightningModule, outputs: torch.Tensor) -> None:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, self.filename)
        columns = pl_module.prediction_columns(outputs)
        names = list(columns)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            writer.writerows(zip(*(columns[name] for name in names), strict=True))
        self.path = path
        print(f"Predictions written to {path}")
