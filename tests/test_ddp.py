"""Lightning's DDP strategy on the CPU (2 processes, gloo) with lr_lightning's in-memory loader.

Full-batch sourdough makes the comparison exact in exact arithmetic: with 5 rows per rank, the DDP step averages
two 5-row mean gradients, which is the 10-row mean gradient of the single-process run with batch_size 10. What
remains is float32 summation order, hence the tolerance below.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from lr_lightning import MultiOutputRegression
from lr_lightning.data.sourdough import SOURDOUGH_FEATURES
from tests.helpers import CONFIGS, run_cli

CONFIG = str(CONFIGS / "sourdough.yaml")
DDP_CONFIG = str(CONFIGS / "ddp.yaml")  # the shipped DDP config: 2 CPU processes, 5 rows each
EXPERIMENT = {"single": "sourdough", "ddp": "sourdough_ddp"}
# Same updates up to float32 rounding of the all-reduce (intercepts near 70 carry float32 steps of ~4e-6).
RTOL, ATOL = 2e-6, 1e-5

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-process DDP fit (5 rows per rank) and a single-process fit (10 rows per batch) of sourdough."""
    single_dir = tmp_path_factory.mktemp("single")
    run_cli(["fit", "--config", CONFIG], cwd=single_dir)
    ddp_dir = tmp_path_factory.mktemp("ddp")
    result = run_cli(["fit", "--config", DDP_CONFIG], cwd=ddp_dir)
    return {"single": single_dir, "ddp": ddp_dir, "ddp_stdout": result.stdout}


def _final_model(workdir: Path, kind: str) -> MultiOutputRegression:
    return MultiOutputRegression.load_from_checkpoint(
        workdir / "runs" / EXPERIMENT[kind] / "version_0" / "checkpoints" / "latest.ckpt"
    )


def test_ddp_fit_matches_single_process(runs: dict[str, Path]) -> None:
    single, ddp = _final_model(runs["single"], "single"), _final_model(runs["ddp"], "ddp")
    np.testing.assert_allclose(ddp.coef_, single.coef_, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ddp.intercept_, single.intercept_, rtol=RTOL, atol=ATOL)
    # The scaling is fitted on all training rows, not on one rank's shard.
    np.testing.assert_array_equal(ddp.feature_mean.numpy(), single.feature_mean.numpy())


def test_ddp_writes_one_run(runs: dict[str, Path]) -> None:
    versions = sorted(p.name for p in (runs["ddp"] / "runs" / "sourdough_ddp").iterdir())
    assert versions == ["version_0"]
    checkpoints = sorted(
        p.name for p in (runs["ddp"] / "runs" / "sourdough_ddp" / "version_0" / "checkpoints").iterdir()
    )
    assert len(checkpoints) == 2 and "latest.ckpt" in checkpoints
    assert runs["ddp_stdout"].count("Best checkpoint") == 1


def test_ddp_predict_writes_every_row_once(runs: dict[str, Path], tmp_path: Path) -> None:
    checkpoint = runs["ddp"] / "runs" / "sourdough_ddp" / "version_0" / "checkpoints" / "latest.ckpt"
    # The predictions go into a folder of the fit's run folder (version_0/predict_0), wherever the command runs.
    result = run_cli(["predict", "--config", DDP_CONFIG, "--ckpt_path", str(checkpoint)], cwd=tmp_path)
    assert result.stdout.count("Predictions written to") == 1
    files = list(checkpoint.parent.parent.glob("predict_*/predictions.csv"))
    assert len(files) == 1
    with files[0].open() as handle:
        rows = list(csv.DictReader(handle))
    expected = _final_model(runs["ddp"], "ddp")(torch.tensor(SOURDOUGH_FEATURES, dtype=torch.float32)).detach().numpy()
    written = np.array([[float(row["flavour"]), float(row["crust"])] for row in rows])
    np.testing.assert_allclose(written, expected, rtol=1e-6)


DDP_ON_DISK_SCRIPT = '''
"""Fit LinearRegression on a memmapped .npy with DDP (argv: folder, devices); what each rank read goes to JSON."""
import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from lr_lightning.data import ArraysDataModule
from lr_lightning.models import LinearRegression

folder, devices = Path(sys.argv[1]), int(sys.argv[2])


class RowsRead(pl.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        rows = trainer.train_dataloader.epoch_blocks().indices().tolist()
        path = folder / f"rows_{devices}_{trainer.global_rank}_{trainer.current_epoch}.json"
        path.write_text(json.dumps(rows))


n_train = 450  # val_fraction 0.1 of 500 rows; full batch: every step sees all training rows
features = np.load(folder / "features.npy", mmap_mode="r")  # a memmap: the rows stay on disk
data = ArraysDataModule(
    features, np.load(folder / "targets.npy"), feature_names=["a", "b", "c"], target_names=["y"],
    batch_size=n_train // devices, val_fraction=0.1, block_rows=16, seed=3,
)
model = LinearRegression(in_features=3, optimizer=lambda params: torch.optim.SGD(params, lr=0.3))
trainer = pl.Trainer(
    strategy="ddp" if devices > 1 else "auto", accelerator="cpu", devices=devices, precision="64-true",
    max_epochs=25, logger=False, enable_checkpointing=False, enable_progress_bar=False, callbacks=[RowsRead()],
)
trainer.fit(model, datamodule=data)
assert data.rows_in_memory("train") is None  # the store read the memmap block by block
if trainer.is_global_zero:
    scaling = data.scaling_statistics()
    result = {"coef": model.coef_.tolist(), "intercept": model.intercept_.tolist(),
              "mean": scaling.feature_mean.tolist(), "scale": scaling.feature_scale.tolist()}
    (folder / f"result_{devices}.json").write_text(json.dumps(result))
'''


def test_ddp_on_memmapped_data_matches_single_process(tmp_path: Path) -> None:
    """Out of core under DDP: each rank reads its own rows, statistics merged across ranks, same fit as 1 process.

    Full batch (225 rows per rank, 450 in one process) in float64: the all-reduced gradient is the full-batch
    gradient, so the runs agree to rounding; the statistics are each rank's moments merged (Chan) in rank order.
    """
    import json
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 3)) * [1.0, 3.0, 0.5] + [10.0, -5.0, 0.0]
    np.save(tmp_path / "features.npy", features)
    np.save(tmp_path / "targets.npy", features @ [[1.0], [-2.0], [0.5]] + 4.0 + 0.1 * rng.normal(size=(500, 1)))
    script = tmp_path / "fit_on_disk.py"
    script.write_text(DDP_ON_DISK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for devices in (1, 2):
        subprocess.run(
            [sys.executable, str(script), str(tmp_path), str(devices)], cwd=tmp_path, env=env, check=True, timeout=300
        )
    single, ddp = (json.loads((tmp_path / f"result_{d}.json").read_text()) for d in (1, 2))
    np.testing.assert_allclose(ddp["mean"], single["mean"], rtol=1e-12)
    np.testing.assert_allclose(ddp["scale"], single["scale"], rtol=1e-12)
    np.testing.assert_allclose(ddp["coef"], single["coef"], rtol=1e-9)
    np.testing.assert_allclose(ddp["intercept"], single["intercept"], rtol=1e-9)
    for epoch in (0, 1):
        everything = json.loads((tmp_path / f"rows_1_0_{epoch}.json").read_text())
        shards = [json.loads((tmp_path / f"rows_2_{rank}_{epoch}.json").read_text()) for rank in (0, 1)]
        assert len(shards[0]) == len(shards[1]) == 225 and not set(shards[0]) & set(shards[1])
        assert shards[0] + shards[1] == everything  # the single process's epoch order, cut in two
