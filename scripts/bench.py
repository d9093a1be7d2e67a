"""Benchmarks of lr_lightning against a plain PyTorch loop, torch's default DataLoader and scikit-learn.

Everything is measured in one run, on the same data, as medians over repeats, and reported as ratios (absolute
times on a shared machine drift; ratios measured side by side do not drift as much). Prints a table and writes it
to ``docs/benchmarks.md`` with a description of the machine.

    python scripts/bench.py            # the sizes of the issue (1,000,000 x 100; about 10 minutes on 2 cores)
    python scripts/bench.py --quick    # small sizes, to check that the script works

Sections:

1. epoch time (N x d, batch 4096): our Lightning fit vs a plain loop slicing the same tensors vs Lightning over
   torch's DataLoader on a TensorDataset (``scripts/bench_loader.py`` does the measuring);
2. time to reach within 1% of the least-squares MSE: our L-BFGS fit vs scikit-learn's LinearRegression and
   SGDRegressor;
3. logistic regression on make_classification: time to reach scikit-learn's log-loss vs scikit-learn's
   LogisticRegression (lbfgs), both unpenalized;
4. per-step overhead of a Lightning fit on the 10-row sourdough table vs the plain loop, in microseconds;
5. start-up: ``lr-lightning --help`` vs ``python -c "import lightning"``;
6. wide tables: ``lr-lightning predict`` with the checkpoint of a 10,000-feature fit (40 rows) vs the same with
   a 10-feature fit plus the time numpy takes to read the wide file: the extra features may cost their reading,
   nothing more (jsonargparse used to check 10,000 names in quadratic time);
7. GridSearchCV 20 x 5 on diabetes: ``GridSearchCV`` of ``LightningLinearRegression`` over 20 ``l2_strength``
   values, 5 folds, on scikit-learn's diabetes table (442 x 10), vs scikit-learn's ``Ridge`` (after a
   ``StandardScaler``, the same work) over the mapped grid, and one fit of each: the fixed cost of a ``fit``.

The pass solvers (``solver: exact``, ``solver: newton``) and the certificates' cost have their own script,
``scripts/bench_exact.py``, with the same conventions.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping

from lr_lightning.data import ArraysDataModule, SourdoughDataModule
from lr_lightning.models import LinearRegression, LogisticRegression

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    """One line of the results table."""

    section: str
    measure: str
    ours: float
    reference: float
    reference_name: str
    unit: str
    target: str = ""

    @property
    def ratio(self) -> float:
        """Ours divided by the reference (lower is better for times)."""
        return self.ours / self.reference


class TimeToTarget(EarlyStopping):
    """Stop the fit at the first training epoch whose mean loss is at or below ``target``.

    An EarlyStopping on ``train_loss`` with a threshold (never stopping for lack of progress). ``elapsed`` is set
    by :func:`timed_fit`: the whole ``Trainer.fit`` call, including the DataModule's setup (the scaling statistics)
    and the Trainer's own start-up, as a user waits for it.
    """

    def __init__(self, target: float) -> None:
        super().__init__(monitor="train_loss", stopping_threshold=target, patience=10**9, check_on_train_epoch_end=True)
        self.elapsed = float("nan")
        self.epochs = 0
        self.reached = float("nan")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self.epochs = trainer.current_epoch
        self.reached = float(trainer.callback_metrics["train_loss"])


def timed_fit(model: pl.LightningModule, data: pl.LightningDataModule, target: float, max_epochs: int) -> TimeToTarget:
    """Fit until the training loss reaches ``target``; the stopper's ``elapsed`` is the wall time of the fit."""
    stopper = TimeToTarget(target)
    start = time.perf_counter()
    quiet_trainer(max_epochs=max_epochs, callbacks=[stopper]).fit(model, datamodule=data)
    stopper.elapsed = time.perf_counter() - start
    return stopper


def quiet_trainer(**kwargs) -> pl.Trainer:
    """Build a Trainer without progress bar, summary, checkpoints, logger or validation."""
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
    }
    return pl.Trainer(**{**defaults, **kwargs})


def median_time(function, repeats: int) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- 1. epoch time ---------------------------------------------------------------------------------------------


def bench_epochs(n_rows: int, n_features: int, batch_size: int) -> list[Row]:
    """Delegate to scripts/bench_loader.py, which measures the three epoch times side by side."""
    spec = importlib.util.spec_from_file_location("bench_loader", REPO / "scripts" / "bench_loader.py")
    assert spec is not None and spec.loader is not None
    bench_loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_loader)
    times = bench_loader.measure(n_rows=n_rows, n_features=n_features, batch_size=batch_size)
    size = f"N={n_rows:,}, d={n_features}, batch {batch_size}"
    return [
        Row("epoch", f"epoch time ({size})", times["lightning"], times["plain"], "plain PyTorch loop", "s", "≤ 1.3×"),
        Row(
            "epoch",
            f"epoch time ({size})",
            times["lightning"],
            times["dataloader"],
            "Lightning + default DataLoader",
            "s",
            "≤ 1/20×",
        ),
        Row("epoch", f"epoch time ({size})", times["lightning"], times["minimal"], "minimal LightningModule", "s"),
    ]


# -- 2. time to 1% of the least-squares optimum ----------------------------------------------------------------


def bench_optimum(n_rows: int, n_features: int, repeats: int) -> list[Row]:
    """Time to a training MSE within 1% of least squares: L-BFGS full batch vs scikit-learn."""
    from sklearn.datasets import make_regression
    from sklearn.linear_model import LinearRegression as SkLinearRegression
    from sklearn.linear_model import SGDRegressor

    features, targets = make_regression(n_rows, n_features, n_informative=n_features // 2, noise=10.0, random_state=0)
    features, targets = features.astype(np.float32), targets.astype(np.float32)

    reference = SkLinearRegression()
    sklearn_time = median_time(lambda: reference.fit(features, targets), repeats)
    optimum = float(np.mean((reference.predict(features).astype(np.float64) - targets) ** 2))
    target = 1.01 * optimum

    def fit_sgd_regressor() -> SGDRegressor:
        return SGDRegressor(random_state=0, tol=1e-4).fit(features, targets)

    sgd_time = median_time(fit_sgd_regressor, 1)
    sgd_mse = float(np.mean((fit_sgd_regressor().predict(features) - targets) ** 2))

    def fit_ours() -> TimeToTarget:
        data = ArraysDataModule(features, targets, batch_size=n_rows, shuffle=False)
        # The optimality-gap diagnostic solves least squares itself (seconds at this size): off for a speed race.
        model = LinearRegression(
            in_features=n_features,
            optimality_gap=False,
            optimizer=lambda params: torch.optim.LBFGS(
                params, lr=1.0, max_iter=4, history_size=10, line_search_fn="strong_wolfe"
            ),
        )
        return timed_fit(model, data, target, max_epochs=50)

    runs = [fit_ours() for _ in range(repeats)]
    ours = statistics.median(run.elapsed for run in runs)
    size = f"N={n_rows:,}, d={n_features}"
    print(
        f"  optimum MSE {optimum:.4f}; ours reached {runs[0].reached:.4f} in {runs[0].epochs} L-BFGS steps; "
        f"SGDRegressor reached {sgd_mse:.4f} ({sgd_mse / optimum - 1:+.2%})"
    )
    return [
        Row("optimum", f"time to 1% of LS MSE ({size})", ours, sklearn_time, "sklearn LinearRegression", "s", "≤ 2×"),
        Row("optimum", f"time to 1% of LS MSE ({size})", ours, sgd_time, "sklearn SGDRegressor (default tol)", "s"),
    ]


# -- 3. logistic regression ------------------------------------------------------------------------------------


def bench_logistic(n_rows: int, n_features: int, repeats: int) -> list[Row]:
    """Time to reach scikit-learn's log-loss (both unpenalized) vs scikit-learn's lbfgs."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    features, labels = make_classification(n_rows, n_features, n_informative=n_features // 2, random_state=0)
    features = features.astype(np.float32)

    def fit_sklearn() -> SkLogisticRegression:
        scaled = StandardScaler().fit_transform(features)  # the same work our DataModule does
        return SkLogisticRegression(penalty=None, solver="lbfgs", max_iter=1000).fit(scaled, labels)

    sklearn_time = median_time(fit_sklearn, repeats)
    scaled = StandardScaler().fit_transform(features)
    sklearn_loss = float(log_loss(labels, fit_sklearn().predict_proba(scaled)))

    def fit_ours() -> TimeToTarget:
        data = ArraysDataModule(features, labels, task="classification", batch_size=n_rows)
        model = LogisticRegression(
            in_features=n_features,
            num_classes=2,
            optimizer=lambda params: torch.optim.LBFGS(
                params, lr=1.0, max_iter=5, history_size=10, line_search_fn="strong_wolfe"
            ),
        )
        return timed_fit(model, data, sklearn_loss * (1 + 1e-4), max_epochs=100)

    runs = [fit_ours() for _ in range(repeats)]
    ours = statistics.median(run.elapsed for run in runs)
    print(f"  sklearn log-loss {sklearn_loss:.6f}; ours reached {runs[0].reached:.6f} in {runs[0].epochs} steps")
    size = f"N={n_rows:,}, d={n_features}"
    return [Row("logistic", f"time to sklearn's log-loss ({size})", ours, sklearn_time, "sklearn lbfgs", "s", "≤ 2×")]


# -- 4. per-step overhead --------------------------------------------------------------------------------------


def bench_step_overhead(epochs: int) -> list[Row]:
    """Microseconds per optimizer step on the 10-row sourdough table, batch 1: Lightning vs a plain loop."""
    data = SourdoughDataModule(batch_size=1, shuffle=True)
    data.setup("fit")
    features, targets = data.split_tensors("train")
    steps = epochs * features.shape[0]

    def plain() -> None:
        model = torch.nn.Linear(3, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        mean, scale = features.mean(0), features.std(0)
        for epoch in range(epochs):
            order = torch.randperm(features.shape[0], generator=torch.Generator().manual_seed(epoch))
            for start in range(features.shape[0]):
                index = order[start : start + 1]
                loss = torch.nn.functional.mse_loss(model((features[index] - mean) / scale), targets[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    def lightning_fit(model: pl.LightningModule) -> None:
        quiet_trainer(max_epochs=epochs).fit(model, datamodule=SourdoughDataModule(batch_size=1))

    def sgd(params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=0.01)

    def ours_fit() -> None:
        lightning_fit(LinearRegression(in_features=3, out_features=2, optimizer=sgd))

    plain_time = median_time(plain, 3) / steps * 1e6
    ours = median_time(ours_fit, 3) / steps * 1e6
    minimal = median_time(lambda: lightning_fit(MinimalMultiOutput()), 3) / steps * 1e6
    measure = f"per step, sourdough batch 1 ({steps} steps)"
    return [
        Row("overhead", measure, ours, plain_time, "plain loop", "µs"),
        Row("overhead", measure, ours, minimal, "minimal LightningModule", "µs"),
    ]


class MinimalMultiOutput(pl.LightningModule):
    """The smallest LightningModule for the sourdough table (3 features, 2 targets): Lightning's per-step floor."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:  # noqa: D102
        features, targets = batch
        return torch.nn.functional.mse_loss(self.linear(features), targets)

    def configure_optimizers(self) -> torch.optim.Optimizer:  # noqa: D102
        return torch.optim.SGD(self.parameters(), lr=0.01)


# -- 5. start-up -----------------------------------------------------------------------------------------------


def bench_startup(repeats: int) -> list[Row]:
    """``lr-lightning --help`` vs ``python -c "import lightning"``, interleaved so both see the same load."""
    ours_command = [sys.executable, "-m", "lr_lightning", "--help"]
    reference_command = [sys.executable, "-c", "import lightning"]
    ours, reference = [], []
    for _ in range(repeats):
        for command, times in ((ours_command, ours), (reference_command, reference)):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=REPO)
            times.append(time.perf_counter() - start)
    return [
        Row(
            "start-up",
            "lr-lightning --help",
            statistics.median(ours),
            statistics.median(reference),
            "python -c 'import lightning'",
            "s",
            "≤ 1.15×",
        )
    ]


# -- 6. wide tables ----------------------------------------------------------------------------------------------

WIDE_CONFIG = """\
trainer: {max_epochs: 1, enable_progress_bar: false, enable_model_summary: false,
          logger: {class_path: lightning.pytorch.loggers.TensorBoardLogger, init_args: {save_dir: runs, name: NAME}}}
model: {class_path: lr_lightning.models.LinearRegression}
data: {class_path: lr_lightning.data.FileDataModule, init_args: {path: NAME.csv, batch_size: 40}}
dashboard: {every_n_epochs: 0}
"""


def bench_wide_predict(n_features: int, repeats: int) -> list[Row]:
    """Predict CLI runs from a 40-row fit with ``n_features`` features vs 10 features plus reading the wide file."""
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"wide": [], "narrow": []}
    for name, width in (("wide", n_features), ("narrow", 10)):
        table = rng.normal(size=(40, width + 1))
        header = ",".join([f"f{j}" for j in range(width)] + ["y"])
        np.savetxt(f"{name}.csv", table, delimiter=",", header=header, comments="")
        Path(f"{name}.yaml").write_text(WIDE_CONFIG.replace("NAME", name))
        subprocess.run(
            [sys.executable, "-m", "lr_lightning", "fit", "--config", f"{name}.yaml"], check=True, capture_output=True
        )
    predict = [sys.executable, "-m", "lr_lightning", "predict", "--ckpt_path", "last", "--config"]
    for _ in range(repeats):
        for name in times:
            start = time.perf_counter()
            subprocess.run([*predict, f"{name}.yaml"], check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    read = median_time(lambda: np.loadtxt("wide.csv", delimiter=",", skiprows=1), repeats)
    narrow = statistics.median(times["narrow"])
    return [
        Row(
            "wide",
            f"lr-lightning predict, {n_features:,} features (40 rows)",
            statistics.median(times["wide"]),
            narrow + read,
            "10 features + reading the wide file",
            "s",
            "≤ 1×",
        )
    ]


# -- 7. GridSearchCV 20 x 5 on diabetes ---------------------------------------------------------------------------


def bench_grid_search(repeats: int) -> list[Row]:
    """GridSearchCV over 20 l2_strength values x 5 folds: our estimator vs Ridge in the mapped grid; one fit of each."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lr_lightning.estimators import LightningLinearRegression
    from lr_lightning.penalties import sklearn_ridge_alpha

    features, targets = load_diabetes(return_X_y=True)
    grid = np.logspace(-4, 0, 20)
    folds = KFold(5, shuffle=True, random_state=0)
    ours = GridSearchCV(LightningLinearRegression(), {"l2_strength": grid}, cv=folds)
    alphas = [sklearn_ridge_alpha(strength, len(features) * 4 // 5) for strength in grid]  # the folds' ~354 rows
    reference = GridSearchCV(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": alphas}, cv=folds)
    ours_time = median_time(lambda: ours.fit(features, targets), repeats)
    reference_time = median_time(lambda: reference.fit(features, targets), repeats)
    print(f"  chosen: ours l2_strength index {ours.best_index_}, Ridge alpha index {reference.best_index_}")
    one_fit = median_time(lambda: LightningLinearRegression().fit(features, targets), 10 * repeats)
    one_reference = median_time(lambda: make_pipeline(StandardScaler(), Ridge()).fit(features, targets), 10 * repeats)
    return [
        Row("grid", "GridSearchCV 20 x 5 on diabetes (442 x 10)", ours_time, reference_time, "sklearn Ridge", "s"),
        Row("grid", "one fit on diabetes (442 x 10)", one_fit * 1e3, one_reference * 1e3, "sklearn Ridge", "ms"),
    ]


# -- report ----------------------------------------------------------------------------------------------------


def machine_description() -> str:
    """CPU model, core count, memory and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(next(line.split()[1] for line in handle if line.startswith("MemTotal")))
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    import lightning
    import sklearn

    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"lightning {lightning.__version__}, scikit-learn {sklearn.__version__}; "
        f"torch threads {torch.get_num_threads()}"
    )


def format_table(rows: list[Row]) -> str:
    """Format the rows as a Markdown table."""
    lines = [
        "| measure | ours | reference | reference time | ratio | target |",
        "|---|---:|---|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.measure} | {row.ours:.4g} {row.unit} | {row.reference_name} | {row.reference:.4g} {row.unit} "
            f"| {row.ratio:.2f}× | {row.target} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the sections, print the table and write docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check the script, not the machine")
    parser.add_argument("--output", default=str(REPO / "docs" / "benchmarks.md"), help="Markdown file to write")
    parser.add_argument(
        "--sections",
        default="epoch,optimum,logistic,overhead,startup,wide,grid",
        help="comma-separated subset of: epoch, optimum, logistic, overhead, startup, wide, grid",
    )
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    sections = set(args.sections.split(","))
    big = 50_000 if args.quick else 1_000_000
    repeats = 1 if args.quick else 3

    rows: list[Row] = []
    runners = {
        "epoch": lambda: bench_epochs(big, 100, 4096),
        "optimum": lambda: bench_optimum(big, 100, repeats),
        "logistic": lambda: bench_logistic(10_000 if args.quick else 100_000, 20, repeats),
        "overhead": lambda: bench_step_overhead(20 if args.quick else 200),
        "startup": lambda: bench_startup(2 if args.quick else 7),
        "wide": lambda: bench_wide_predict(1_000 if args.quick else 10_000, 1 if args.quick else 3),
        "grid": lambda: bench_grid_search(repeats),
    }
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)  # anything a Trainer writes by accident lands here
        for name, runner in runners.items():
            if name in sections:
                print(f"[{name}]", flush=True)
                section_rows = runner()
                rows += section_rows
                print(format_table(section_rows), flush=True)
    table = format_table(rows)
    machine = machine_description()
    print(f"\n{machine}\n\n{table}")
    if not args.quick:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(
            "# Benchmarks\n\n"
            f"Written by `python scripts/bench.py` on {time.strftime('%Y-%m-%d')}.\n\n"
            f"Machine: {machine}.\n\n"
            "Ratios are ours / reference, measured side by side in one run (medians over repeats); for times,\n"
            "lower is better.\n\n"
            f"{table}\n"
        )
        print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
