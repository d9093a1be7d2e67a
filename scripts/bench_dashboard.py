"""What the TensorBoard dashboard's figures add to a shipped config's fit.

Times ``lr-lightning fit --config configs/X.yaml`` with the dashboard's defaults against the same fit with figures
off (``--dashboard.every_n_epochs 0``: the coefficient table and hparams are still written once at the end, and
the figures drawn once), interleaved, medians over repeats, and prints the ratio per config. The target (docs/
performance.md, "Dashboard cost"): at most 1.10x.

    python scripts/bench_dashboard.py                 # in-process fits after a warm-up (import time excluded)
    python scripts/bench_dashboard.py --fresh         # fresh `python -m lr_lightning` processes (imports included)
    python scripts/bench_dashboard.py --repeats 3 --configs sourdough
    python scripts/bench_dashboard.py --profile sourdough   # cProfile of one in-process fit with the defaults
    python scripts/bench_dashboard.py --every-n-epochs 10   # a fixed schedule: what one drawing costs

In-process (the default), each measurement is one ``lr_lightning.cli.cli([...])`` call, the whole CLI run as a
user waits for it minus the imports: argument parsing, the Trainer's start-up, the fit, the checkpoints and the
summary. A warm-up fit of each variant runs first (matplotlib's import and font cache, the first PNG encoding),
so what is timed is what the figures add to a fit, not to a process's start-up. Runs write to a temporary
directory. Wall time and CPU time (the process's, all threads; with ``--fresh`` the child's) are both reported:
on a machine shared with other jobs, the CPU time is the steadier measure of the work the figures add. To compare
two versions of the package back to back, run the script with ``PYTHONPATH`` pointing at each copy in turn.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import logging
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: name -> the fit's arguments (configs at their own max_epochs unless given; data paths made absolute).
CONFIGS: dict[str, list[str]] = {
    "sourdough": ["--config", str(REPO / "configs" / "sourdough.yaml"), "--trainer.max_epochs", "200"],
    "csv_example": [
        "--config",
        str(REPO / "configs" / "csv_example.yaml"),
        "--data.init_args.path",
        str(REPO / "data" / "houses.csv"),
    ],
    "logistic_multiclass": ["--config", str(REPO / "configs" / "logistic_multiclass.yaml")],
}

FIGURES_OFF = ["--dashboard.every_n_epochs", "0"]


def drawings(folder: str) -> int:
    """How many times the run under ``folder`` drew its figures (the loss curve's image steps)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = {path.parent for path in Path(folder).rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(run), size_guidance={"images": 0})
    accumulator.Reload()
    return len(accumulator.Images("figures/loss_curve"))


def fit_in_process(arguments: list[str]) -> tuple[float, float, int]:
    """Wall and CPU seconds of one in-process ``lr-lightning fit`` in a fresh temporary directory, its drawings."""
    from lr_lightning.cli import cli

    with tempfile.TemporaryDirectory() as scratch:
        here = os.getcwd()
        os.chdir(scratch)
        try:
            quiet = io.StringIO()  # the summary after fit
            with contextlib.redirect_stdout(quiet):
                wall, cpu = time.perf_counter(), time.process_time()
                cli(["fit", *arguments])
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            return wall, cpu, drawings(scratch)
        finally:
            os.chdir(here)


def fit_fresh(arguments: list[str]) -> tuple[float, float, int]:
    """Wall and CPU seconds of one ``python -m lr_lightning fit`` in a fresh process and folder, its drawings."""
    path = [entry for entry in (os.environ.get("PYTHONPATH"), str(REPO)) if entry]  # a PYTHONPATH given wins
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    with tempfile.TemporaryDirectory() as scratch:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        command = [sys.executable, "-m", "lr_lightning", "fit", *arguments]
        subprocess.run(command, cwd=scratch, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return wall, cpu, drawings(scratch)


def measure(name: str, repeats: int, fresh: bool, dashboard: list[str]) -> dict[str, list]:
    """Wall and CPU seconds with the defaults and with figures off, interleaved (after one warm-up each, in-process).

    Keys ``wall``/``cpu`` (defaults) and ``wall_off``/``cpu_off``, and ``drawings`` of each fit with the defaults
    (figures off draws once, at the end).
    """
    run = fit_fresh if fresh else fit_in_process
    arguments = [*CONFIGS[name], *dashboard]
    if not fresh:
        run(arguments), run([*arguments, *FIGURES_OFF])
    results: dict[str, list] = {key: [] for key in ("wall", "cpu", "drawings", "wall_off", "cpu_off")}
    for _ in range(repeats):
        for key, value in zip(("wall", "cpu", "drawings"), run(arguments), strict=True):
            results[key].append(value)
        wall, cpu, _ = run([*arguments, *FIGURES_OFF])
        results["wall_off"].append(wall)
        results["cpu_off"].append(cpu)
    return results


def profile(name: str, top: int = 25) -> None:
    """Print cProfile's top functions (cumulative time) of one in-process fit with the defaults, after a warm-up."""
    fit_in_process(CONFIGS[name])
    profiler = cProfile.Profile()
    profiler.enable()
    fit_in_process(CONFIGS[name])
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)


def main() -> None:
    """Measure the configs asked for and print a table of the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {list(CONFIGS)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed fits per variant (median)")
    parser.add_argument("--fresh", action="store_true", help="fresh processes instead of in-process fits")
    parser.add_argument("--profile", metavar="CONFIG", help="profile one in-process fit of CONFIG instead")
    parser.add_argument(
        "--every-n-epochs", type=int, help="time --dashboard.every_n_epochs N instead of the defaults (a fixed count)"
    )
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    if args.profile:
        profile(args.profile)
        return
    mode = "fresh processes" if args.fresh else "in-process, after a warm-up"
    if args.every_n_epochs is not None:
        mode += f"; --dashboard.every_n_epochs {args.every_n_epochs} against 0"
    lines = [
        f"Dashboard cost ({mode}; medians of {args.repeats})",
        "",
        "| config | wall, defaults | wall, figures off | ratio | CPU, defaults | CPU, figures off | ratio | drawings |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in args.configs.split(","):
        dashboard = [] if args.every_n_epochs is None else ["--dashboard.every_n_epochs", str(args.every_n_epochs)]
        results = measure(name, args.repeats, args.fresh, dashboard)
        wall, wall_off, cpu, cpu_off = (
            statistics.median(results[key]) for key in ("wall", "wall_off", "cpu", "cpu_off")
        )
        epochs = " (200 epochs)" if name == "sourdough" else ""
        drawn = ", ".join(map(str, results["drawings"]))
        lines.append(
            f"| {name}{epochs} | {wall:.2f} s | {wall_off:.2f} s | {wall / wall_off:.2f}× "
            f"| {cpu:.2f} s | {cpu_off:.2f} s | {cpu / cpu_off:.2f}× | {drawn} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
