"""Shared fixtures: every test that writes runs does so in its own temporary directory (helpers: helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty temporary directory (runs/ lands there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give in-process ``cli(args)`` calls a bare ``sys.argv``: LightningCLI warns when it holds pytest's options."""
    monkeypatch.setattr(sys, "argv", ["lr-lightning"])
