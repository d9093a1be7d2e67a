"""``predict --prediction_writer.intervals LEVEL``: the mean's and a new observation's intervals, as statsmodels'.

The fit's final checkpoint stores the OLS fit with its inference table; ``predict`` from it adds, per target,
``<target>_mean_ci_lower`` .. ``<target>_obs_ci_upper`` equal to statsmodels'
``get_prediction(exog).summary_frame(alpha)``. Classifiers, refused tables, robust ones (statsmodels' would use
their covariance), checkpoints without the fit, and levels outside (0, 1) are one-line errors.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
import torch

from lr_lightning.checkpoint import load_checkpoint
from lr_lightning.cli import main
from lr_lightning.data.sourdough import SOURDOUGH_FEATURES, SOURDOUGH_TARGETS
from lr_lightning.errors import InputError
from lr_lightning.models import LogisticRegression
from lr_lightning.models.checkpoint_record import INFERENCE_KEY, _arrays, _tensors, inference_of
from lr_lightning.prediction_writer import CSVPredictionWriter
from lr_lightning.summary_format import InferenceTable
from tests.helpers import CONFIGS

EXACT = str(CONFIGS / "exact.yaml")
F64 = ["--trainer.precision", "64-true"]
SUFFIXES = ("mean_ci_lower", "mean_ci_upper", "obs_ci_lower", "obs_ci_upper")


def _fit(folder: Path, *options: str) -> Path:
    """Fit configs/exact.yaml (float64) in ``folder``; return its latest.ckpt."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr("sys.argv", ["lr-lightning"])
        main(["fit", "--config", EXACT, *F64, "--trainer.enable_progress_bar", "false", *options])
    (latest,) = folder.glob("runs/exact/version_*/checkpoints/latest.ckpt")
    return latest


@pytest.fixture(scope="module")
def latest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The latest.ckpt of an exact, unpenalized float64 fit of the sourdough rows."""
    yield _fit(tmp_path_factory.mktemp("exact"))


def _predict(checkpoint: Path, out: Path, *options: str) -> list[dict[str, str]]:
    main(
        [
            "predict",
            "--config",
            EXACT,
            *F64,
            "--ckpt_path",
            str(checkpoint),
            "--prediction_writer.path",
            str(out),
            *options,
        ]
    )
    with open(out, newline="") as handle:
        return list(csv.DictReader(handle))


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``lr-lightning ARGS`` in-process; it must fail with one line: return it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(args)
    captured = capsys.readouterr()
    assert stop.value.code != 0
    lines = [line for line in captured.err.strip().splitlines() if line.startswith("lr-lightning: error: ")]
    assert len(lines) == 1, captured.err
    return lines[0]


def test_intervals_equal_statsmodels(latest: Path, in_tmp_path: Path) -> None:
    out = in_tmp_path / "intervals.csv"
    args = ["predict", "--config", EXACT, *F64, "--ckpt_path", str(latest), "--prediction_writer.path", str(out)]
    main([*args, "--prediction_writer.intervals", "0.9"])
    with open(out, newline="") as handle:
        reader = csv.DictReader(handle)
        rows, header = list(reader), reader.fieldnames
    targets = ["flavour", "crust"]
    expected_header = [c for t in targets for c in [t, *(f"{t}_{s}" for s in SUFFIXES)]]
    expected_header += [c for t in targets for c in (f"{t}_actual", f"{t}_residual")]
    assert header == expected_header
    assert len(rows) == len(SOURDOUGH_FEATURES) == 10
    exog = sm.add_constant(SOURDOUGH_FEATURES.astype(np.float64))
    for k, target in enumerate(targets):
        frame = sm.OLS(SOURDOUGH_TARGETS[:, k], exog).fit().get_prediction(exog).summary_frame(alpha=0.1)
        for suffix in SUFFIXES:
            written = np.array([float(row[f"{target}_{suffix}"]) for row in rows])
            np.testing.assert_allclose(written, frame[suffix].to_numpy(), rtol=1e-6, err_msg=f"{target}_{suffix}")
        predicted = np.array([float(row[target]) for row in rows])
        np.testing.assert_allclose(predicted, frame["mean"].to_numpy(), rtol=1e-6)


def test_without_intervals_the_file_is_as_before(latest: Path, in_tmp_path: Path) -> None:
    rows = _predict(latest, in_tmp_path / "plain.csv")
    assert list(rows[0]) == ["flavour", "crust", "flavour_actual", "flavour_residual", "crust_actual", "crust_residual"]


def test_the_checkpoint_stores_the_fit_checked(latest: Path) -> None:
    checkpoint = load_checkpoint(latest)
    stored = checkpoint[INFERENCE_KEY]["fit"]
    assert stored["r_design"].dtype == torch.float64 and stored["r_design"].shape == (4, 4)
    table = inference_of(checkpoint, latest)
    assert table is not None and table.fit is not None
    record = table.to_record()
    again = InferenceTable.from_record(_arrays(_tensors(record), latest))
    assert again.fit is not None
    for key, value in table.fit.to_arrays().items():
        np.testing.assert_array_equal(again.fit.to_arrays()[key], value)


def _forged(latest: Path, folder: Path, change: Any) -> Path:
    checkpoint = load_checkpoint(latest)
    change(checkpoint)
    path = folder / "forged.ckpt"
    torch.save(checkpoint, path)
    return path


def _version_1(checkpoint: dict[str, Any]) -> None:
    del checkpoint[INFERENCE_KEY]["fit"]
    checkpoint[INFERENCE_KEY]["version"] = 1


def _negative_diagonal(checkpoint: dict[str, Any]) -> None:
    checkpoint[INFERENCE_KEY]["fit"]["r_design"][1, 1] = -1.0


def _robust(checkpoint: dict[str, Any]) -> None:
    checkpoint[INFERENCE_KEY]["cov_type"] = "HC3"


def _no_table(checkpoint: dict[str, Any]) -> None:
    del checkpoint[INFERENCE_KEY]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_no_table, "prediction_writer.intervals: MultiOutputRegression has no inference table"),
        (_version_1, "stored before lr_lightning kept the fit the intervals need"),
        (_negative_diagonal, "['fit']['r_design'] has a diagonal entry that is not positive"),
        (_robust, "prediction_writer.intervals: the fit's table has cov_type HC3; the intervals are nonrobust"),
    ],
    ids=["old checkpoint", "version 1 table", "forged fit", "robust table"],
)
def test_checkpoints_without_a_valid_fit_are_refused(
    latest: Path, in_tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, message: str
) -> None:
    forged = _forged(latest, in_tmp_path, change)
    out = in_tmp_path / "out.csv"
    args = ["predict", "--config", EXACT, *F64, "--ckpt_path", str(forged), "--prediction_writer.path", str(out)]
    line = _refused([*args, "--prediction_writer.intervals", "0.95"], capsys)
    assert message in line
    assert not out.exists()


def test_a_version_1_table_still_loads_without_intervals(latest: Path, in_tmp_path: Path) -> None:
    forged = _forged(latest, in_tmp_path, _version_1)
    table = inference_of(load_checkpoint(forged), forged)
    assert table is not None and table.valid and table.fit is None
    assert len(_predict(forged, in_tmp_path / "plain.csv")) == 10


def test_a_penalized_fit_is_refused(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _fit(in_tmp_path, "--model.init_args.l2_strength", "0.5")
    args = ["predict", "--config", EXACT, *F64, "--ckpt_path", str(checkpoint), "--prediction_writer.intervals", "0.9"]
    line = _refused(args, capsys)
    assert line.startswith("lr-lightning: error: prediction_writer.intervals: the fit's inference was refused: ")
    assert "the fit is penalized" in line


def test_a_classifier_is_refused() -> None:
    writer = CSVPredictionWriter(intervals=0.95)
    with pytest.raises(InputError, match=r"^prediction_writer\.intervals: LogisticRegression is a classification"):
        writer.on_predict_start(None, LogisticRegression(in_features=3))  # type: ignore[arg-type]


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1, True])
def test_levels_outside_0_1_are_refused(level: Any) -> None:
    with pytest.raises(InputError, match=r"prediction_writer\.intervals must be a level in \(0, 1\)"):
        CSVPredictionWriter(intervals=level)


def test_a_level_outside_0_1_is_one_line(latest: Path, in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["predict", "--config", EXACT, "--ckpt_path", str(latest), "--prediction_writer.intervals", "1.5"]
    line = _refused(args, capsys)
    assert "prediction_writer.intervals must be a level in (0, 1)" in line
