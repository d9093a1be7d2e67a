"""Checkpoints written before the data layer's redesign (commit 63830fe) still load, test and predict.

The fixtures in tests/data/checkpoints/ were written by ``lr-lightning fit`` at that commit (sourdough.yaml, 30
epochs; logistic_synthetic.yaml, 5 epochs), with the coefficients and predictions that commit computed from them.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.helpers import CONFIGS, REPO, run_cli

FIXTURES = REPO / "tests" / "data" / "checkpoints"
SOURDOUGH = FIXTURES / "sourdough_63830fe.ckpt"
LOGISTIC = FIXTURES / "logistic_synthetic_63830fe.ckpt"
EXPECTED = FIXTURES / "predictions_63830fe.npz"

LOAD_BOTH = """
import json, sys
import torch
from lr_lightning.data import SourdoughDataModule
from lr_lightning.models import LinearRegression, LogisticRegression
linear = LinearRegression.load_from_checkpoint(sys.argv[1])
logistic = LogisticRegression.load_from_checkpoint(sys.argv[2])
features = torch.from_numpy(SourdoughDataModule().data.features).float()
print(json.dumps({
    "predictions": linear(features).detach().double().tolist(),
    "coef": linear.coef_.tolist(), "intercept": linear.intercept_.tolist(),
    "logistic_coef": logistic.coef_.tolist(), "logistic_intercept": logistic.intercept_.tolist(),
}))
"""


def test_old_checkpoints_load_in_a_fresh_process_with_the_same_weights() -> None:
    env = {"PYTHONPATH": str(REPO), "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_BOTH, str(SOURDOUGH), str(LOGISTIC)],
        capture_output=True, text=True, env=env, check=True, timeout=300,
    )  # fmt: skip
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    expected = np.load(EXPECTED)
    np.testing.assert_allclose(loaded["predictions"], expected["sourdough"], rtol=1e-6)
    for key in ("coef", "intercept", "logistic_coef", "logistic_intercept"):
        np.testing.assert_allclose(loaded[key], expected[key], rtol=1e-6)


def test_old_checkpoint_tests_and_predicts_from_the_cli(tmp_path: Path) -> None:
    checkpoint = tmp_path / "old.ckpt"
    shutil.copyfile(SOURDOUGH, checkpoint)
    config = ["--config", str(CONFIGS / "sourdough.yaml"), "--ckpt_path", str(checkpoint)]
    tested = run_cli(["test", *config], cwd=tmp_path)
    assert "test_r2" in tested.stdout
    run_cli(["predict", *config], cwd=tmp_path)
    [written] = tmp_path.glob("runs/**/predictions.csv")
    with written.open() as handle:
        rows = list(csv.DictReader(handle))
    predicted = np.array([[float(row["flavour"]), float(row["crust"])] for row in rows])
    np.testing.assert_allclose(predicted, np.load(EXPECTED)["sourdough"], rtol=1e-5)
