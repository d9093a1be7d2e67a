"""Train on a memory-mapped ``.npy`` several times larger than a memory budget; report peak RSS and epoch times.

The script writes a features file (float32, N x D) and a targets file (N x 1) into a temporary folder, drops the
features from the kernel's page cache, then trains ``LinearRegression`` for a few epochs with the Lightning
``Trainer`` in a *child process* run under ``/usr/bin/time -v`` (when present), through a DataModule whose
``load_arrays`` returns ``np.load(path, mmap_mode="r")`` — the base keeps it on disk (out-of-core mode). The child
reports its peak resident set size (``ru_maxrss``, which ``time -v`` prints too) and its final RSS split into
anonymous memory (the process's own) and file pages (of the memmap, unmapped after each batch). The folder is
deleted at the end.

    python scripts/bench_memmap.py                       # 8,000,000 x 100 float32 = 3.2 GB, budget 1 GB, 2 epochs
    python scripts/bench_memmap.py --rows 1000000        # 0.4 GB, quicker
    python scripts/bench_memmap.py --dir /mnt/scratch    # where the file goes (needs the file size free)

The first epoch reads the file from disk (it is dropped from the page cache before the epoch starts); the second
finds it in the page cache if the machine has room for it, as a second epoch normally would. Page-cache pages are
the kernel's, not the process's: they are not counted in the process's RSS once unmapped.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHUNK_ROWS = 262_144
BIAS, NOISE = 2.0, 0.1


def write_data(folder: Path, n_rows: int, n_features: int) -> np.ndarray:
    """Write ``features.npy`` (N, D) float32 and ``targets.npy`` (N, 1) chunk by chunk; return the true weights."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal(n_features).astype(np.float32)  # (D,)
    features = np.lib.format.open_memmap(
        folder / "features.npy", mode="w+", dtype=np.float32, shape=(n_rows, n_features)
    )
    targets = np.empty((n_rows, 1), dtype=np.float32)
    for start in range(0, n_rows, CHUNK_ROWS):
        chunk = rng.standard_normal((min(CHUNK_ROWS, n_rows - start), n_features), dtype=np.float32)
        features[start : start + len(chunk)] = chunk
        noise = NOISE * rng.standard_normal(len(chunk), dtype=np.float32)
        targets[start : start + len(chunk), 0] = chunk @ weights + BIAS + noise  # (n, D) @ (D,) -> (n,)
        features._mmap.madvise(mmap.MADV_DONTNEED)  # keep the writer's RSS small too
    features.flush()
    del features
    np.save(folder / "targets.npy", targets)
    return weights


def drop_from_page_cache(path: Path) -> None:
    """Ask the kernel to forget the file's cached pages (clean pages only: written back first)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def memory_status() -> dict[str, float]:
    """Return current and peak RSS of this process and its anonymous / file parts, in MB (/proc/self/status)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def train(folder: Path, epochs: int, batch_size: int, keep_pages: bool) -> dict:
    """In the child: fit through the memmap DataModule and return the figures."""
    import lightning.pytorch as pl
    import torch

    from lr_lightning.data import ArraysDataModule
    from lr_lightning.data.rows import PageReleaser
    from lr_lightning.models import LinearRegression

    if keep_pages:  # the control: pages read stay mapped, as with a plain np.memmap loop
        PageReleaser.__call__ = lambda self: None  # type: ignore[method-assign]

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    after_imports = memory_status()

    class EpochTimer(pl.Callback):
        """Wall time of each training epoch (validation excluded); the first epoch starts with a cold cache."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if trainer.current_epoch == 0:
                drop_from_page_cache(folder / "features.npy")
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.times.append(time.perf_counter() - self.start)

    # features.npy memory-mapped (it stays on disk), targets.npy in memory (N x 1 float32).
    features = np.load(folder / "features.npy", mmap_mode="r")
    data = ArraysDataModule(features, np.load(folder / "targets.npy"), batch_size=batch_size, val_fraction=0.01)
    start = time.perf_counter()
    n_features = data.num_features  # loads the header and checks every value is finite (one pass)
    check_s = time.perf_counter() - start
    start = time.perf_counter()
    data.setup("fit")  # block split and the streaming statistics pass over the training rows
    statistics_s = time.perf_counter() - start
    model = LinearRegression(in_features=n_features, optimizer=lambda params: torch.optim.SGD(params, lr=0.01))
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=data)
    weights = np.load(folder / "weights.npy")
    return {
        "check_s": check_s,
        "statistics_s": statistics_s,
        "epoch_s": timer.times,
        "steps": trainer.global_step,
        "coef_error": float(np.abs(model.coef_[0] - weights).max()),
        "intercept_error": float(abs(model.intercept_[0] - BIAS)),
        "val_mse": float(trainer.callback_metrics["val_mse"]),
        "rss_after_imports_mb": after_imports["VmRSS"],
        "end": memory_status(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "features_held_as": type(data.store.features).__name__,
    }


def main() -> None:
    """Write the data, train in a child process, print the figures, delete the data."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8_000_000, help="N (default 8,000,000: 3.2 GB at d=100)")
    parser.add_argument("--features", type=int, default=100, help="D")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--budget-mb", type=float, default=1024, help="the memory budget the run must stay under")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the temporary folder goes")
    parser.add_argument("--keep-pages", action="store_true", help="control run: never unmap the pages read")
    parser.add_argument("--train", help=argparse.SUPPRESS)  # internal: the child's data folder
    args = parser.parse_args()
    if args.train:
        import logging
        import warnings

        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore")
        print("RESULT " + json.dumps(train(Path(args.train), args.epochs, args.batch_size, args.keep_pages)))
        return

    folder = Path(tempfile.mkdtemp(prefix="bench_memmap_", dir=args.dir))
    try:
        start = time.perf_counter()
        np.save(folder / "weights.npy", write_data(folder, args.rows, args.features))
        write_s = time.perf_counter() - start
        file_mb = (folder / "features.npy").stat().st_size / 1e6
        drop_from_page_cache(folder / "features.npy")
        command = [sys.executable, __file__, "--train", str(folder), "--epochs", str(args.epochs)]
        command += ["--batch-size", str(args.batch_size)] + (["--keep-pages"] if args.keep_pages else [])
        timed = Path("/usr/bin/time").exists()
        if timed:
            command = ["/usr/bin/time", "-v", *command]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if child.returncode != 0:
            sys.exit(f"training failed ({child.returncode}):\n{child.stderr[-4000:]}")
        result = json.loads(next(line for line in child.stdout.splitlines() if line.startswith("RESULT "))[7:])
        time_v = re.search(r"Maximum resident set size \(kbytes\): (\d+)", child.stderr)
        peak_mb = int(time_v.group(1)) / 1024 if time_v else result["ru_maxrss_mb"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    gb_per_s = [file_mb / 1e3 / t for t in result["epoch_s"]]
    end = result["end"]
    print(
        f"features file      {args.rows:,} x {args.features} float32 = {file_mb:,.0f} MB (written in {write_s:.1f} s)"
    )
    print(f"memory budget      {args.budget_mb:,.0f} MB (file / budget = {file_mb / args.budget_mb:.1f}x)")
    source = "/usr/bin/time -v" if time_v else "ru_maxrss"
    print(f"peak RSS           {peak_mb:,.0f} MB ({source}); {peak_mb / file_mb:.1%} of the file")
    print(f"  after imports    {result['rss_after_imports_mb']:,.0f} MB (python, torch, lightning)")
    parts = f"{end['RssAnon']:,.0f} anonymous + {end['RssFile']:,.0f} file pages (libraries and the memmap)"
    print(f"  at the end       {end['VmRSS']:,.0f} MB = {parts}")
    print(f"finite check       {result['check_s']:.1f} s (one pass at load)")
    print(f"statistics pass    {result['statistics_s']:.1f} s (one streaming pass over the training rows)")
    for epoch, (seconds, speed) in enumerate(zip(result["epoch_s"], gb_per_s, strict=True)):
        cache = "cold page cache (from disk)" if epoch == 0 else "page cache as the kernel left it"
        print(f"epoch {epoch}            {seconds:.1f} s ({speed:.2f} GB/s, {cache})")
    noise = f"the noise variance is {NOISE**2:.4f}"
    print(
        f"steps              {result['steps']:,} of batch {args.batch_size}; val_mse {result['val_mse']:.4f} ({noise})"
    )
    print(f"|coef - true|      {result['coef_error']:.2e} max; |intercept - true| {result['intercept_error']:.2e}")
    print(f"features held as   {result['features_held_as']}")
    print(f"pages read         {'kept mapped (control run)' if args.keep_pages else 'unmapped after each batch'}")
    print(f"within budget      {'yes' if peak_mb < args.budget_mb else 'NO'}")


if __name__ == "__main__":
    main()
