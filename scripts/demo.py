"""The main job, end to end: fit the sourdough model, test its best checkpoint, compare with least squares.

Run from the repository root (``make demo`` does):

    python scripts/demo.py [--config configs/sourdough.yaml]
"""

from __future__ import annotations

import argparse
import os

from lr_lightning.cli import cli
from lr_lightning.dashboard import coefficient_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/sourdough.yaml")
    options = parser.parse_args()

    fit = cli(["fit", "--config", options.config])
    best = fit.best_checkpoint_path
    print(f"\n== test from the best checkpoint: {best}")
    tested = cli(["test", "--config", options.config, "--ckpt_path", best])

    model = type(tested.model).load_from_checkpoint(best, map_location="cpu", weights_only=True)
    datamodule = tested.datamodule
    features, targets = datamodule.rows_in_memory("train")  # the sourdough table is small: always in memory
    reference = datamodule.least_squares(fit_intercept=True)  # float64, as TensorBoard's table shows it
    features_np, targets_np = features.double().numpy(), targets.double().numpy()
    # The learned model in original units, evaluated in float64 like the least-squares reference: float32
    # predictions carry rounding of about 1e-7 that can put the MSE a hair below the optimum.
    predictions = features_np @ model.coef_.T + model.intercept_  # (N, D) @ (D, K) + (K,)
    train_mse = float(((predictions - targets_np) ** 2).mean())
    optimum = reference.mse_
    print("\n== coefficients in original units")
    print(coefficient_table(model, reference))
    print(f"\ntraining MSE {train_mse:.5f}; least-squares optimum {optimum:.5f} (gap {train_mse / optimum - 1:+.3%})")
    print(f"\nOpen the run in TensorBoard:\n  tensorboard --logdir {os.path.dirname(fit.trainer.log_dir)}")


if __name__ == "__main__":
    main()
