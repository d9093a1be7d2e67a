"""Benchmarks of the pass solvers: the exact least-squares fit, Newton's logistic fit and the optimality gap's pass.

Side by side in one run, medians over repeats (interleaved, so a shared machine's load falls on both sides), as
ratios ours / reference with the seconds behind them:

1. ``solver="exact"`` on N x 100 float32 in memory (the whole ``Trainer.fit`` call) vs scikit-learn's
   LinearRegression and vs the floor, one bare torch float64 pass accumulating [X, y]^T [X, y] in chunks; the
   same fit with ``optimality_gap=True`` (the default, one more QR pass); coefficients checked against sklearn
   and against a float64 solution of the floor's normal equations;
2. the same fit on the memmapped file of ``scripts/bench_memmap.py`` (3.2 GB) in a child process: peak RSS
   (``/usr/bin/time -v``) and time vs one warm read of the file;
3. ``solver="newton"`` (precision 32: the sums are float64 whatever the precision) on make_classification:
   time to sklearn's best training log-loss (within 1e-8 relative) vs the faster of sklearn lbfgs and
   newton-cholesky, all unpenalized; the log-loss of both is computed here, in float64, from their weights;
4. the diagnostic's share: a 3-epoch SGD fit (batch 4096) with ``optimality_gap=True`` vs the same without,
   and the reference pass (``lr_lightning.data.reference.training_state``) timed alone.

    python scripts/bench_exact.py            # the sizes above (about 15 minutes on 2 busy cores)
    python scripts/bench_exact.py --quick    # small sizes, checks the script in under a minute
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """Import ``scripts/<name>.py`` (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench, bench_memmap = load_script("bench"), load_script("bench_memmap")
ROWS: list[tuple[str, str, float, float, str, float]] = []  # section, measure, ours, reference, name, goal ratio


class Phases(bench.pl.Callback):
    """Wall-clock marks inside a fit: fit start (after setup), train epochs, validation epochs, fit end."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {"train": 0.0, "val": 0.0}

    def on_fit_start(self, trainer, pl_module) -> None:  # noqa: D102
        self.marks["fit_start"] = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: D102
        self._train = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: D102
        self.marks["train"] += time.perf_counter() - self._train - self._epoch_val

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: D102
        self._epoch_val = 0.0 if batch_idx == 0 else self._epoch_val

    def on_validation_epoch_start(self, trainer, pl_module) -> None:  # noqa: D102
        self._val = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:  # noqa: D102
        self._epoch_val = time.perf_counter() - self._val  # inside the train epoch: Lightning validates there
        self.marks["val"] += self._epoch_val


def fit(model, data, **trainer_options) -> dict[str, float]:
    """Time the whole ``Trainer.fit`` call; return the seconds of it and of its phases.

    The end-of-fit inference table is off (``InferenceSummary(enabled=False)``): it is measured neither as the
    solver's cost nor as the diagnostic's.
    """
    from lr_lightning.summary import InferenceSummary

    phases = Phases()
    start = time.perf_counter()
    callbacks = [phases, InferenceSummary(enabled=False)]
    bench.quiet_trainer(callbacks=callbacks, limit_val_batches=None, **trainer_options).fit(model, datamodule=data)
    end = time.perf_counter()
    return {"fit": end - start, "setup": phases.marks["fit_start"] - start, **phases.marks}


def add(section: str, measure: str, ours: float, reference: float, name: str, goal: float = float("nan")) -> None:
    """Record a table row and print it."""
    ROWS.append((section, measure, ours, reference, name, goal))
    print(f"  {measure}: ours {ours:.3f} s, {name} {reference:.3f} s, ratio {ours / reference:.3f}", flush=True)


def regression_data(n_rows: int, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((n_rows, n_features), dtype=np.float32) * rng.uniform(0.5, 5, n_features)
    targets = features @ rng.standard_normal(n_features) + 2.0 + 0.1 * rng.standard_normal(n_rows)
    return features.astype(np.float32), targets.astype(np.float32)


def exact_fit(features: np.ndarray, targets: np.ndarray, gap: bool, batch_size: int):
    """Run the exact fit of section 1 (and of the memmap child); return the model and the seconds of its phases."""
    from lr_lightning.data import ArraysDataModule
    from lr_lightning.models import LinearRegression

    data = ArraysDataModule(features, targets, batch_size=batch_size, standardize=True)
    model = LinearRegression(in_features=features.shape[1], solver="exact", optimality_gap=gap)
    return model, fit(model, data, max_epochs=1)


# -- 1. exact least squares in memory --------------------------------------------------------------------------------


def bench_exact(n_rows: int, repeats: int, batch_size: int) -> None:
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    features, targets = regression_data(n_rows, 100)
    x, y = torch.from_numpy(features), torch.from_numpy(targets)

    def floor() -> torch.Tensor:
        gram = torch.zeros(101, 101, dtype=torch.float64)
        for start in range(0, n_rows, 65536):
            block = torch.cat([x[start : start + 65536], y[start : start + 65536, None]], dim=1).double()
            gram += block.T @ block
        return gram

    times: dict[str, list[float]] = {"ours": [], "gap": [], "sklearn": [], "floor": []}
    phases = []
    for _ in range(repeats):
        model, seconds = exact_fit(features, targets, False, batch_size)
        times["ours"].append(seconds["fit"])
        phases.append(seconds)
        times["gap"].append(exact_fit(features, targets, True, batch_size)[1]["fit"])
        start = time.perf_counter()
        reference = SkLinearRegression().fit(features, targets)
        times["sklearn"].append(time.perf_counter() - start)
        times["floor"].append(bench.median_time(floor, 1))
    # Float64 reference: the floor's normal equations with an intercept (well conditioned: random columns).
    gram = floor().numpy() / n_rows
    mean = np.concatenate([features.mean(0, dtype=np.float64), [targets.mean(dtype=np.float64)]])
    covariance = gram - np.outer(mean, mean)
    exact = np.linalg.solve(covariance[:100, :100], covariance[:100, 100])
    ours_coef, sk_coef = model.coef_[0].astype(np.float64), reference.coef_.astype(np.float64)

    def error(coef: np.ndarray) -> float:
        return float(np.linalg.norm(coef - exact) / np.linalg.norm(exact))

    print(f"  |coef - float64 normal equations| / |.|: ours {error(ours_coef):.1e}, sklearn {error(sk_coef):.1e}")
    agreement = float(np.linalg.norm(ours_coef - sk_coef) / np.linalg.norm(sk_coef))
    print(f"  |ours - sklearn| / |sklearn| = {agreement:.1e} ({'agree' if agreement < 1e-4 else 'DISAGREE'})")
    middle = phases[len(phases) // 2]
    rest = middle["fit"] - middle["setup"] - middle["train"] - middle["val"]  # teardown, hooks
    print(
        f"  inside one exact fit of {middle['fit']:.2f} s: setup (split, scaling pass) {middle['setup']:.2f} s, "
        f"QR epoch {middle['train']:.2f} s, validation (on all rows) {middle['val']:.2f} s, rest {rest:.2f} s"
    )
    size = f"{n_rows:,} x 100"
    ours = statistics.median(times["ours"])
    add("exact", f"exact fit, {size}", ours, statistics.median(times["sklearn"]), "sklearn LinearRegression", 0.25)
    add("exact", f"exact fit, {size}", ours, statistics.median(times["floor"]), "torch float64 X^T X pass", 2.0)
    add("exact", f"exact fit + optimality_gap, {size}", statistics.median(times["gap"]), ours, "same without gap")


# -- 2. exact least squares on the memmapped file --------------------------------------------------------------------


def memmap_child(folder: Path, batch_size: int) -> None:
    """In the child: the exact fit on the memmapped features; print its seconds and RSS as JSON."""
    import resource

    features = np.load(folder / "features.npy", mmap_mode="r")
    model, seconds = exact_fit(features, np.load(folder / "targets.npy"), False, batch_size)
    weights = np.load(folder / "weights.npy")
    seconds["coef_error"] = float(np.abs(model.coef_[0] - weights).max())
    seconds["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(seconds))


def warm_read(path: Path) -> float:
    """Read the file through the page cache in 64 MB pieces and sum them as float32 (float64 accumulator)."""
    buffer = bytearray(2**26)
    total = 0.0
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            total += float(np.frombuffer(buffer, dtype=np.float32, count=count // 4).sum(dtype=np.float64))
    return total


def bench_memmap_fit(n_rows: int, repeats: int, batch_size: int, directory: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_exact_", dir=directory) as name:
        folder = Path(name)
        np.save(folder / "weights.npy", bench_memmap.write_data(folder, n_rows, 100))
        path = folder / "features.npy"
        size_gb = path.stat().st_size / 1e9
        warm_read(path)  # the first read puts the file in the page cache
        reads, fits, peaks = [], [], []
        command = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
        command += [sys.executable, __file__, "--memmap-child", name, "--threads", str(torch.get_num_threads())]
        for _ in range(repeats):
            reads.append(bench.median_time(lambda: warm_read(path), 1))
            child = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            if child.returncode != 0:
                sys.exit(f"memmap child failed:\n{child.stderr[-3000:]}")
            result = json.loads(next(line for line in child.stdout.splitlines() if line.startswith("RESULT "))[7:])
            peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", child.stderr)
            peaks.append(int(peak.group(1)) / 1024 if peak else result["ru_maxrss_mb"])
            fits.append(result)
    middle = sorted(fits, key=lambda r: r["fit"])[len(fits) // 2]
    print(
        f"  {size_gb:.2f} GB file; fit {middle['fit']:.1f} s = setup (finite check, split, scaling pass) "
        f"{middle['setup']:.1f} s + QR epoch {middle['train']:.1f} s + validation (all rows) {middle['val']:.1f} s + "
        f"rest; max |coef - true| {middle['coef_error']:.1e}; peak RSS {max(peaks):,.0f} MB"
    )
    size = f"memmap {n_rows:,} x 100 ({size_gb:.1f} GB)"
    add("memmap", f"exact fit, {size}", middle["fit"], statistics.median(reads), "one warm read of the file", 1.5)
    ROWS.append(("memmap", f"peak RSS of the fit (MB), {size}", max(peaks), 1024.0, "1 GB", 1.0))


# -- 3. Newton logistic ----------------------------------------------------------------------------------------------


def log_loss(features: np.ndarray, labels: np.ndarray, coef: np.ndarray, intercept: float) -> float:
    """Mean log-loss in float64 of a two-class linear model in raw units."""
    z = features.astype(np.float64) @ np.asarray(coef, dtype=np.float64).ravel() + float(intercept)
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def bench_newton(n_rows: int, n_features: int, repeats: int) -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression
    from sklearn.preprocessing import StandardScaler

    from lr_lightning.data import ArraysDataModule
    from lr_lightning.models import LogisticRegression

    features, labels = make_classification(
        n_rows, n_features, n_informative=n_features // 2, n_redundant=0, random_state=0
    )
    features = features.astype(np.float32)
    sklearn_times: dict[str, list[float]] = {"lbfgs": [], "newton-cholesky": []}
    sklearn_loss = {}
    for _ in range(repeats):
        for solver, times in sklearn_times.items():
            start = time.perf_counter()
            scaler = StandardScaler().fit(features)  # the same work our DataModule does
            fitted = SkLogisticRegression(penalty=None, solver=solver, max_iter=1000).fit(
                scaler.transform(features), labels
            )
            times.append(time.perf_counter() - start)
            coef = fitted.coef_[0] / scaler.scale_
            sklearn_loss[solver] = log_loss(features, labels, coef, fitted.intercept_[0] - coef @ scaler.mean_)
    best = min(sklearn_loss.values())
    target = best * (1 + 1e-8)

    def ours(epochs: int) -> tuple[float, float]:
        data = ArraysDataModule(features, labels, task="classification", batch_size=n_rows)
        model = LogisticRegression(in_features=n_features, solver="newton", certificate=False)
        seconds = fit(model, data, max_epochs=epochs)["fit"]
        return seconds, log_loss(features, labels, model.coef_, model.intercept_[0])

    epochs = next((k for k in range(1, 31) if ours(k)[1] <= target), 30)  # untimed probe, one fit per count
    runs = [ours(epochs) for _ in range(repeats)]
    losses = ", ".join(f"{name} {loss:.12f}" for name, loss in sklearn_loss.items())
    print(f"  log-loss: {losses}; ours {runs[0][1]:.12f} after {epochs} Newton epochs (target {target:.12f})")
    faster = min(sklearn_times, key=lambda name: statistics.median(sklearn_times[name]))
    ours_s = statistics.median(run[0] for run in runs)
    size = f"{n_rows:,} x {n_features}"
    add("newton", f"time to sklearn's log-loss, {size}", ours_s, statistics.median(sklearn_times[faster]), faster, 0.5)
    other = "lbfgs" if faster != "lbfgs" else "newton-cholesky"
    add("newton", f"time to sklearn's log-loss, {size}", ours_s, statistics.median(sklearn_times[other]), other)


# -- 4. the optimality gap's share of an SGD fit ---------------------------------------------------------------------


def bench_diagnostic(n_rows: int, repeats: int) -> None:
    from lr_lightning.data import ArraysDataModule
    from lr_lightning.data.reference import training_state
    from lr_lightning.models import LinearRegression

    features, targets = regression_data(n_rows, 100)
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    passes = []
    for _ in range(repeats):
        for gap in (True, False):
            data = ArraysDataModule(features, targets, batch_size=4096)
            runs[gap].append(fit(LinearRegression(in_features=100, optimality_gap=gap), data, max_epochs=3))
        data.setup("fit")
        start = time.perf_counter()
        training_state(data.store)
        passes.append(time.perf_counter() - start)
    with_gap = statistics.median(run["fit"] for run in runs[True])
    without = statistics.median(run["fit"] for run in runs[False])
    epochs = statistics.median(run["train"] for run in runs[True])
    validation = statistics.median(run["val"] for run in runs[True])
    print(f"  fit with gap {with_gap:.2f} s: train epochs {epochs:.2f} s, validation epochs {validation:.2f} s")
    size = f"3 SGD epochs, {n_rows:,} x 100, batch 4096"
    add("diagnostic", f"reference pass alone / fit with gap, {size}", statistics.median(passes), with_gap, "fit", 0.2)
    add("diagnostic", f"fit with gap - fit without / fit with gap, {size}", with_gap - without, with_gap, "fit", 0.2)


# -- the table -------------------------------------------------------------------------------------------------------


def format_table() -> str:
    lines = ["| section | measure | ours | reference | ratio | goal | met? |", "|---|---|---:|---|---:|---:|---|"]
    for section, measure, ours, reference, name, goal in ROWS:
        unit = "MB" if "RSS" in measure else "s"
        ratio = ours / reference
        met = "" if goal != goal else ("yes" if ratio <= goal else f"**no** (by {ratio / goal:.2f}×)")
        goal_text = "" if goal != goal else f"≤ {goal:g}×"
        lines.append(
            f"| {section} | {measure} | {ours:.3g} {unit} | {name}: {reference:.3g} {unit} | {ratio:.3f}× "
            f"| {goal_text} | {met} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check the script, not the machine")
    parser.add_argument("--sections", default="exact,memmap,newton,diagnostic")
    parser.add_argument("--memmap-rows", type=int, default=8_000_000, help="rows of the memmapped file (x 100)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the memmapped file goes")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--batch-size", type=int, default=65536, help="batch of the exact fits' validation")
    parser.add_argument("--output", default=str(REPO / "docs" / "performance.md"), help="appended to (full runs)")
    parser.add_argument("--memmap-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    if args.memmap_child:
        memmap_child(Path(args.memmap_child), args.batch_size)
        return
    big, repeats = (50_000, 1) if args.quick else (1_000_000, 3)
    memmap_rows = 100_000 if args.quick else args.memmap_rows
    newton_sizes = ((10_000, 20), (big, 100)) if args.quick else ((100_000, 20), (1_000_000, 100))
    runners = {
        "exact": lambda: bench_exact(big, repeats, args.batch_size),
        "memmap": lambda: bench_memmap_fit(memmap_rows, 1 if args.quick else 2, args.batch_size, args.dir),
        "newton": lambda: [bench_newton(n, d, repeats) for n, d in newton_sizes],
        "diagnostic": lambda: bench_diagnostic(big, repeats),
    }
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)  # anything a Trainer writes by accident lands here
        exact_fit(*regression_data(2000, 100), True, 512)  # warm-up: first-call costs fall on no measure
        for name in args.sections.split(","):
            print(f"[{name}]", flush=True)
            runners[name]()
    machine = bench.machine_description()
    print(f"\n{machine}\n\n{format_table()}")
    if not args.quick:
        with open(args.output, "a") as handle:
            handle.write(
                f"\n## Exact solvers (scripts/bench_exact.py)\n\n`python scripts/bench_exact.py` on "
                f"{time.strftime('%Y-%m-%d')}. Machine: {machine}.\n\n{format_table()}\n"
            )
        print(f"\nappended to {args.output}")


if __name__ == "__main__":
    main()
