"""Every shipped config fits, tests and predicts without a warning a user cannot act on, and shows its losses.

Each config runs ``fit`` (two epochs, small data), then ``test`` and ``predict`` with ``--ckpt_path last``, in this
process with every Python warning recorded (``lr-lightning`` processes with ``PYTHONWARNINGS=default`` for DDP,
which starts its processes from the command line). Any line of the output that is a warning, or an
advertisement, fails the test unless it is on :data:`ALLOWED`, each entry with the reason a user is shown it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from lr_lightning.cli import main
from tests.helpers import CONFIGS, REPO

#: Warnings that tell the user something true about their run, which they can act on.
ALLOWED = [
    # data2d.yaml fits a plane through points on a line on purpose (the course's singular-system lesson):
    # the warning names the rank and says the minimum-norm solution is reported.
    re.compile(r"the design matrix is rank deficient"),
]

#: What marks a line as a warning or an advertisement.
WARNING_LINE = re.compile(r"warn|💡|Tip:", re.IGNORECASE)

#: Smaller runs of the configs whose data is large; every config runs.
SHRINK = {
    "synthetic.yaml": ["--data.init_args.n_samples", "2000"],
    "logistic_synthetic.yaml": ["--data.init_args.n_samples", "2000"],
    "logistic_multiclass.yaml": ["--data.init_args.n_samples", "2000"],
}

#: Each config's runs: a short fit, then test and predict from its latest checkpoint.
STAGES = {"fit": ["--trainer.max_epochs", "2"], "test": ["--ckpt_path", "last"], "predict": ["--ckpt_path", "last"]}


def _output_of_ddp_runs(tmp_path: Path, extra: list[str]) -> list[str]:
    """Run the three stages as ``lr-lightning`` processes (DDP starts its processes again from the command line)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1", "PYTHONWARNINGS": "default"}
    lines = []
    for subcommand, options in STAGES.items():
        command = [sys.executable, "-m", "lr_lightning", subcommand, "--config", *extra, *options]
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        lines += (result.stdout + result.stderr).splitlines()
    return lines


def _output_of_runs(extra: list[str], capfd: pytest.CaptureFixture[str]) -> list[str]:
    """Run the three stages in this process, every warning recorded (``always``) and the output captured."""
    lines = []
    for subcommand, options in STAGES.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            main([subcommand, "--config", *extra, *options])
        out, err = capfd.readouterr()
        lines += [f"{type(w.message).__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught]
        lines += (out + err).splitlines()
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(path.name for path in CONFIGS.glob("*.yaml")))
def test_a_shipped_config_runs_without_warnings_a_user_cannot_act_on(
    tmp_path: Path, config: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").symlink_to(REPO / "data")  # configs name data/… relative to the repository
    monkeypatch.chdir(tmp_path)
    extra = [str(CONFIGS / config), *SHRINK.get(config, [])]
    lines = _output_of_ddp_runs(tmp_path, extra) if config == "ddp.yaml" else _output_of_runs(extra, capfd)
    unexpected = [
        line for line in lines if WARNING_LINE.search(line) and not any(allowed.search(line) for allowed in ALLOWED)
    ]
    assert unexpected == []
    assert any(line.startswith("Predictions written to ") for line in lines)


def test_the_progress_bar_shows_train_and_val_loss_and_is_on_only_in_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lr_lightning.cli import cli

    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(CONFIGS / "sourdough.yaml"), "--trainer.max_epochs", "2"]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    run = cli(args)
    assert run.trainer.progress_bar_callback is not None
    assert {"train_loss", "val_loss"} <= set(run.trainer.progress_bar_metrics)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert cli(args[1:], run=False).trainer.progress_bar_callback is None
    forced = cli([*args[1:], "--trainer.enable_progress_bar", "true"], run=False)
    assert forced.trainer.progress_bar_callback is not None
