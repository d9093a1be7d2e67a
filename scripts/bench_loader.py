"""Epoch time of our Lightning fit vs a plain PyTorch loop vs Lightning over torch's default DataLoader.

All three train the same linear regression (MSE, SGD) on the same float32 tensors, measured in one run:

* plain: a hand-written loop, one ``randperm`` per epoch, ``index_select`` per batch, standardization per batch;
* lightning: ``Trainer.fit`` with our DataModule (``InMemoryBatchLoader``) and ``LinearRegression``, logging on
  (a TensorBoardLogger in a temporary folder), no checkpointing or progress bar;
* minimal: ``Trainer.fit`` of the smallest LightningModule (an ``nn.Linear`` and ``mse_loss``, no scaling, metrics
  or checks) on the same loader and logger: Lightning's own per-step cost, the floor for any LightningModule;
* dataloader: ``Trainer.fit`` with the same model over ``DataLoader(TensorDataset(X, y), batch_size, shuffle=True)``
  (per-row ``__getitem__`` and ``default_collate``).

Steady state: each timed epoch follows a warm-up epoch; the figure is the median epoch time.

    python scripts/bench_loader.py            # N=1,000,000, d=100, batch 4096 (a few minutes on 2 cores)
    python scripts/bench_loader.py --quick    # N=100,000
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterable

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from lr_lightning.data import ArraysDataModule, ScalingStatistics
from lr_lightning.models import LinearRegression


class EpochTimer(Callback):
    """Record the wall time of every training epoch."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self.times.append(time.perf_counter() - self._start)


class DataLoaderRegression(LinearRegression):
    """Our model fed by torch's default DataLoader (the scaling is set by hand, as the DataModule would).

    The loader is set as an attribute after construction, not passed to ``__init__``: Lightning would record a
    constructor argument as a hyperparameter and write the whole dataset into the run's ``hparams.yaml``.
    """

    loader: DataLoader | None = None

    def train_dataloader(self) -> DataLoader:  # noqa: D102
        assert self.loader is not None
        return self.loader


class MinimalRegression(pl.LightningModule):
    """The least a LightningModule can do for linear regression: a layer and the MSE, on features as they come."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(in_features, 1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:  # noqa: D102
        features, targets = batch
        return torch.nn.functional.mse_loss(self.linear(features), targets)

    def configure_optimizers(self) -> torch.optim.Optimizer:  # noqa: D102
        return sgd(self.parameters())


def sgd(params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """Build the optimizer of every Lightning path: plain SGD, lr 0.01, as the plain loop."""
    return torch.optim.SGD(params, lr=0.01)


def make_data(n_rows: int, n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw standard normal features (N, D) and a noisy linear target (N, 1), float32."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(n_rows, n_features, generator=generator)
    weights = torch.randn(n_features, 1, generator=generator)
    targets = features @ weights + 0.1 * torch.randn(n_rows, 1, generator=generator)
    return features, targets


def plain_epochs(features: torch.Tensor, targets: torch.Tensor, batch_size: int, epochs: int) -> list[float]:
    """Epoch times of a plain loop slicing the tensors (the first epoch is a warm-up)."""
    model = torch.nn.Linear(features.shape[1], 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    mean, scale = features.mean(0), features.std(0)
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(features.shape[0], generator=torch.Generator().manual_seed(epoch))
        for offset in range(0, features.shape[0], batch_size):
            index = order[offset : offset + batch_size]
            x, y = features.index_select(0, index), targets.index_select(0, index)
            loss = torch.nn.functional.mse_loss(model((x - mean) / scale), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def lightning_epochs(model: pl.LightningModule, epochs: int, datamodule: pl.LightningDataModule | None) -> list[float]:
    """Epoch times of ``Trainer.fit`` with logging on (TensorBoard in a temporary folder)."""
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as logs:
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            devices=1,
            logger=TensorBoardLogger(logs),
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            callbacks=[timer],
        )
        trainer.fit(model, datamodule=datamodule)
    return timer.times


def measure(n_rows: int = 1_000_000, n_features: int = 100, batch_size: int = 4096, epochs: int = 4) -> dict:
    """Median steady-state epoch time in seconds of ``plain``, ``lightning``, ``minimal`` and ``dataloader``."""
    features, targets = make_data(n_rows, n_features)
    plain = plain_epochs(features, targets, batch_size, epochs)
    data = ArraysDataModule(features.numpy(), targets.numpy(), batch_size=batch_size)
    ours = lightning_epochs(LinearRegression(in_features=n_features, optimality_gap=False, optimizer=sgd), epochs, data)
    minimal = lightning_epochs(MinimalRegression(n_features), epochs, data)
    loader = DataLoader(TensorDataset(features, targets), batch_size=batch_size, shuffle=True)
    baseline_model = DataLoaderRegression(in_features=n_features, optimality_gap=False, optimizer=sgd)
    baseline_model.loader = loader
    baseline_model.set_scaling(ScalingStatistics(features.mean(0), features.std(0), torch.zeros(1), torch.ones(1)))
    baseline = lightning_epochs(baseline_model, 2, None)  # slow: one warm-up and one timed epoch
    return {
        "plain": statistics.median(plain[1:]),
        "lightning": statistics.median(ours[1:]),
        "minimal": statistics.median(minimal[1:]),
        "dataloader": statistics.median(baseline[1:]),
    }


def main() -> None:
    """Print the three epoch times and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=100,000 instead of 1,000,000")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the fast paths (first one is a warm-up)")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    n_rows = 100_000 if args.quick else 1_000_000
    times = measure(n_rows=n_rows, epochs=args.epochs)
    print(f"N={n_rows:,}, d=100, batch 4096, torch threads {torch.get_num_threads()}")
    print(f"{'path':<34}{'epoch (s)':>10}{'vs plain':>10}")
    for name, label in (
        ("plain", "plain PyTorch loop"),
        ("lightning", "Lightning + InMemoryBatchLoader"),
        ("minimal", "minimal LightningModule, same loader"),
        ("dataloader", "Lightning + default DataLoader"),
    ):
        print(f"{label:<34}{times[name]:>10.3f}{times[name] / times['plain']:>9.2f}x")
    print(f"default DataLoader / ours: {times['dataloader'] / times['lightning']:.1f}x")


if __name__ == "__main__":
    main()
