"""Helpers shared by the test modules: paths, a CLI run in a fresh process, an in-process fit.

Test modules import from here, never from one another; fixtures live in conftest.py.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

#: NIST StRD "Norris" (public domain, 36 rows): x, y; certified b0 (intercept), b1 and residual sum of squares.
NORRIS_CSV = REPO / "tests" / "data" / "nist_norris.csv"
NORRIS_B0, NORRIS_B1, NORRIS_RSS = -0.262323073774029, 1.00211681802045, 26.6173985294224

#: NIST StRD "Longley" (public domain, 16 rows): totemp, then GNPDEFL, GNP, UNEMP, ARMED, POP, YEAR.
LONGLEY_CSV = REPO / "tests" / "data" / "nist_longley.csv"
#: NIST's certified values for Longley: b0 (intercept), b1..b6 of the six features, the residual standard deviation.
LONGLEY_INTERCEPT = -3482258.63459582
LONGLEY_COEF = np.array(
    [
        15.0618722713733,
        -0.358191792925910e-01,
        -2.02022980381683,
        -1.03322686717359,
        -0.511041056535807e-01,
        1829.15146461355,
    ]
)
LONGLEY_RESIDUAL_SD = 304.854073561965


def longley() -> tuple[np.ndarray, np.ndarray]:
    """Longley's features (16, 6) and target totemp (16,), float64 as NIST publishes them."""
    table = np.loadtxt(LONGLEY_CSV, delimiter=",", skiprows=1)
    return table[:, 1:], table[:, 0]


def run_cli(args: list[str], cwd: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m lr_lightning ARGS`` in a fresh process, as a user would run ``lr-lightning``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "lr_lightning", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"lr-lightning {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def lbfgs(params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """L-BFGS tuned for float64 problems that must be solved to ~1e-10 (a model's ``optimizer`` argument)."""
    return torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=200,
        history_size=20,
        tolerance_grad=1e-14,
        tolerance_change=1e-16,
        line_search_fn="strong_wolfe",
    )


def fit(model: pl.LightningModule, data: pl.LightningDataModule, epochs: int, precision: str = "64-true") -> pl.Trainer:
    """Fit in-process without logger, checkpoints or validation (the model brings its optimizer)."""
    trainer = pl.Trainer(
        max_epochs=epochs,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=data)
    return trainer


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """Write ``rows`` under ``header`` as a CSV file; return its path."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


#: The numeric feature columns of data/rentals.csv (its categorical one is ``neighbourhood``).
RENTALS_NUMERIC = ["area_m2", "rooms", "year_built"]


def rentals_term(name: str) -> str:
    """Name a column of scikit-learn's rentals encoding (``get_feature_names_out``) as the package names it."""
    if name.startswith("cat__neighbourhood_"):
        level = name.removeprefix("cat__neighbourhood_")
        return f"neighbourhood={'(missing)' if level == 'nan' else level}"
    if name.startswith("num__missingindicator_"):
        return name.removeprefix("num__missingindicator_") + "_missing"
    return name.removeprefix("num__")


#: The per-equation statistics statsmodels' OLS/WLS results and the package's OLSResults both have, by name.
REGRESSION_STATISTICS = (
    "rsquared",
    "rsquared_adj",
    "fvalue",
    "f_pvalue",
    "scale",
    "ssr",
    "ess",
    "centered_tss",
    "uncentered_tss",
    "mse_model",
    "mse_resid",
    "llf",
    "aic",
    "bic",
)
