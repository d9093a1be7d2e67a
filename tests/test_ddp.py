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
from tests.conftest import CONFIGS, run_cli

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


def test_ddp_predict_writes_every_row_once(runs: dict[str, Path]) -> None:
    checkpoint = runs["ddp"] / "runs" / "sourdough_ddp" / "version_0" / "checkpoints" / "latest.ckpt"
    result = run_cli(["predict", "--config", DDP_CONFIG, "--ckpt_path", str(checkpoint)], cwd=runs["ddp"])
    assert result.stdout.count("Predictions written to") == 1
    files = list((runs["ddp"] / "runs" / "sourdough_ddp").glob("version_*/predictions.csv"))
    assert len(files) == 1
    with files[0].open() as handle:
        rows = list(csv.DictReader(handle))
    expected = _final_model(runs["ddp"], "ddp")(torch.tensor(SOURDOUGH_FEATURES, dtype=torch.float32)).detach().numpy()
    written = np.array([[float(row["flavour"]), float(row["crust"])] for row in rows])
    np.testing.assert_allclose(written, expected, rtol=1e-6)
