"""How many optimizer steps each shipped regression config needs to come within 1% and 0.1% of least squares.

For every config, fit it in-process (no logger, no checkpoints) and after each optimizer step compute the MSE of
the current model on the whole training split, in float64, next to the least-squares MSE of that split. Prints
a Markdown table (the README's "Reaching the optimum" table comes from here).

    python scripts/steps_to_optimum.py
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lr_lightning.callbacks import reachable_least_squares
from lr_lightning.cli import cli
from lr_lightning.data.contract import TrainingData

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("line", "sourdough", "data2d", "synthetic", "csv_example")


class StepMSE(Callback):
    """Record the training-split MSE after every optimizer step."""

    def __init__(self) -> None:
        self.mse: list[float] = []

    @torch.no_grad()
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:  # noqa: D102
        assert isinstance(trainer.datamodule, TrainingData)
        rows = trainer.datamodule.rows_in_memory("train")
        assert rows is not None, "the shipped configs hold their rows in memory"
        features, targets = rows
        predictions = pl_module(features.to(pl_module.dtype))
        self.mse.append(float((predictions.double() - targets.double()).square().mean()))


def first_step_within(mse: list[float], optimum: float, tolerance: float, floor: float = 0.0) -> str:
    """Return the first step (1-based) whose MSE is within ``tolerance`` (relative) of the optimum, or '>' the count.

    ``floor`` is the MSE that rounding alone leaves (float32 predictions of targets of this size): an exact fit
    such as the 4-point line has an optimum of ~1e-31, which no float32 model can be within 1% of.
    """
    for step, value in enumerate(mse, start=1):
        if value <= optimum * (1 + tolerance) + floor:
            return str(step)
    return f"> {len(mse)}"


def main() -> None:
    """Fit each config and print the table."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    rows = [
        "| config | optimizer | least-squares MSE | steps to 1% | steps to 0.1% | steps run |",
        "|---|---|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(REPO)  # configs name data files relative to the repository root
        for name in CONFIGS:
            recorder = StepMSE()
            run = cli(
                [
                    "fit",
                    "--config",
                    f"configs/{name}.yaml",
                    "--trainer.logger=false",
                    f"--trainer.default_root_dir={scratch}/{name}",
                ],
                trainer_defaults={"callbacks": [recorder]},
            )
            solution = reachable_least_squares(run.datamodule, run.model.fit_intercept)  # the fit's own solve
            assert solution is not None
            optimum = solution.mse_
            _, targets = run.datamodule.rows_in_memory("train")
            rounding = (torch.finfo(torch.float32).eps * float(targets.double().square().mean().sqrt())) ** 2
            optimizer = type(run.trainer.optimizers[0]).__name__
            within_1, within_01 = (first_step_within(recorder.mse, optimum, t, rounding) for t in (1e-2, 1e-3))
            rows.append(
                f"| `{name}.yaml` | {optimizer} | {optimum:.6g} | {within_1} | {within_01} | {len(recorder.mse)} |"
            )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
