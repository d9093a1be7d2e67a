"""Shared fixtures: every test that writes runs does so in its own temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


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


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty temporary directory (runs/ lands there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give in-process ``cli(args)`` calls a bare ``sys.argv``: LightningCLI warns when it holds pytest's options."""
    monkeypatch.setattr(sys, "argv", ["lr-lightning"])
