"""The inference table a fit stores in its checkpoints: ``lr-lightning summary --ckpt_path`` and loaded models.

The table is computed at the end of ``fit``, after the last checkpoints were saved; it is added to the checkpoints
of the final weights (plain values and tensors, ``weights_only=True``), printed again by ``lr-lightning summary``
and restored by ``load_from_checkpoint``. Missing, old, tableless and forged checkpoints are one-line errors.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lr_lightning.checkpoint import load_checkpoint
from lr_lightning.cli import cli, main
from lr_lightning.data import ArraysDataModule
from lr_lightning.errors import InputError
from lr_lightning.models import LogisticRegression, MultiOutputRegression
from lr_lightning.models.checkpoint_record import INFERENCE_KEY, _arrays, _tensors, inference_of
from lr_lightning.models.statistics import NoInferenceError
from lr_lightning.summary_format import InferenceTable
from tests.helpers import CONFIGS, REPO, fit, run_cli


@pytest.fixture(scope="module")
def exact_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Fit configs/exact.yaml in-process in a fresh folder: the run folder, what fit printed, the fitted model."""
    folder = tmp_path_factory.mktemp("exact")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr("sys.argv", ["lr-lightning"])
        with contextlib.redirect_stdout(printed):
            run = cli(["fit", "--config", str(CONFIGS / "exact.yaml")])
    log_dir = folder / run.trainer.log_dir  # relative to the folder the fit ran in
    yield {
        "folder": folder,
        "log_dir": log_dir,
        "latest": log_dir / "checkpoints" / "latest.ckpt",
        "printed": printed.getvalue(),
        "model": run.model,
    }


def _summary(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    main(["summary", *args])
    return capsys.readouterr().out


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``lr-lightning summary ARGS`` in-process; it must fail with exit 2 and one line: return it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["summary", *args])
    captured = capsys.readouterr()
    assert stop.value.code == 2 and captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("lr-lightning: error: ")
    return line


def test_summary_prints_the_table_the_fit_printed(
    exact_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = _summary(["--ckpt_path", str(exact_run["latest"])], capsys)
    assert out == (exact_run["log_dir"] / "summary.txt").read_text()
    assert out.startswith("Inference summary: OLS (nonrobust covariance)") and "P>|t|" in out
    assert out.strip() in exact_run["printed"]  # the same lines fit printed, in the same order


def test_summary_json_is_summary_json(exact_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    out = _summary(["--ckpt_path", str(exact_run["latest"]), "--json"], capsys)
    assert json.loads(out) == json.loads((exact_run["log_dir"] / "summary.json").read_text())
    assert out == (exact_run["log_dir"] / "summary.json").read_text()  # byte for byte


def test_every_checkpoint_of_the_final_weights_holds_it_as_plain_tensors(exact_run: dict[str, Any]) -> None:
    ckpts = sorted((exact_run["log_dir"] / "checkpoints").glob("*.ckpt"))
    assert len(ckpts) == 2  # best-epoch=0-step=1.ckpt (the only epoch is the best) and latest.ckpt
    for ckpt in ckpts:
        checkpoint = torch.load(ckpt, weights_only=True)
        stored = checkpoint[INFERENCE_KEY]
        assert stored["kind"] == "OLS" and stored["valid"] is True and stored["cov_type"] == "nonrobust"
        assert stored["alpha"] == 0.05 and stored["term_names"][0] == "const"
        assert isinstance(stored["ols"]["cov_params_default"], torch.Tensor)
        assert stored["ols"]["cov_params_default"].dtype == torch.float64
        assert stored["ols"]["cov_params_default"].shape == (2, 4, 4)
        record = {"model_class", "task", "feature_names", "target_columns", "class_names", "encoding"}
        assert set(checkpoint["lr_lightning"]) == record  # the record itself is unchanged


def test_load_from_checkpoint_restores_the_table(exact_run: dict[str, Any]) -> None:
    fitted = exact_run["model"]
    loaded = MultiOutputRegression.load_from_checkpoint(exact_run["latest"])
    np.testing.assert_array_equal(loaded.bse_, fitted.bse_)
    np.testing.assert_array_equal(loaded.params_, fitted.params_)
    np.testing.assert_array_equal(loaded.pvalues_, fitted.pvalues_)
    np.testing.assert_array_equal(loaded.conf_int(0.1), fitted.conf_int(0.1))
    assert loaded.summary() == fitted.summary()
    assert loaded.inference_.to_json() == fitted.inference_.to_json()


def test_the_table_goes_only_into_checkpoints_of_the_weights_it_describes(exact_run: dict[str, Any]) -> None:
    model = MultiOutputRegression.load_from_checkpoint(exact_run["latest"])
    saved: dict[str, Any] = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(saved)
    assert inference_of(saved, "saved").text() == model.summary()
    with torch.no_grad():
        model.linear.weight += 1.0
    changed: dict[str, Any] = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(changed)
    assert INFERENCE_KEY not in changed  # a table of other weights is not stored


def test_a_valid_logistic_table_survives_the_record() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3))
    scores = features @ rng.normal(size=(3, 3)) * 0.8
    probabilities = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in probabilities])
    model = LogisticRegression(in_features=3, num_classes=3, solver="newton")
    fit(model, ArraysDataModule(features, labels, task="classification"), epochs=12)
    table = model.inference_
    assert table.valid and table.kind == "MNLogit", table.reason
    stored = torch.load(_saved(_tensors(table.to_record())), weights_only=True)
    restored = InferenceTable.from_record(_arrays(stored, "stored"))
    assert restored.text() == table.text() and restored.to_json() == table.to_json()
    np.testing.assert_array_equal(restored.arrays()["bse"], table.arrays()["bse"])


def _saved(value: Any) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return buffer


def test_a_penalized_logistic_fit_stores_its_refusal(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    iris = REPO / "data" / "iris.csv"
    run = cli(["fit", "--config", str(CONFIGS / "logistic_newton.yaml"), "--data.init_args.path", str(iris)])
    log_dir = Path(run.trainer.log_dir)
    latest = log_dir / "checkpoints" / "latest.ckpt"
    out = _summary(["--ckpt_path", str(latest)], capsys)
    assert out == (log_dir / "summary.txt").read_text()
    assert out.startswith("Inference summary: MNLogit (Fisher information)\nNo inference: the fit is penalized")
    table = json.loads(_summary(["--ckpt_path", str(latest), "--json"], capsys))
    assert table == json.loads((log_dir / "summary.json").read_text())
    assert table["valid"] is False and "l2_strength=0.001" in table["reason"] and table["model"] == "MNLogit"
    loaded = LogisticRegression.load_from_checkpoint(latest)
    assert loaded.summary() == run.model.summary()
    with pytest.raises(NoInferenceError, match="penalized"):
        _ = loaded.bse_


def test_missing_old_and_tableless_checkpoints_are_one_line_errors(
    exact_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "no such checkpoint file" in _refused(["--ckpt_path", str(tmp_path / "missing.ckpt")], capsys)
    old = REPO / "tests" / "data" / "checkpoints" / "sourdough_63830fe.ckpt"
    assert "does not record its model class" in _refused(["--ckpt_path", str(old)], capsys)
    checkpoint = load_checkpoint(exact_run["latest"])
    del checkpoint[INFERENCE_KEY]  # as a fit with summary.enabled false, or before the table was stored, saves it
    tableless = tmp_path / "tableless.ckpt"
    torch.save(checkpoint, tableless)
    assert "holds no inference table" in _refused(["--ckpt_path", str(tableless)], capsys)
    with pytest.raises(NoInferenceError):
        _ = MultiOutputRegression.load_from_checkpoint(tableless).bse_
    assert "--ckpt_path" in _refused([], capsys)
    assert "unrecognized arguments: --bogus" in _refused(["--ckpt_path", str(tableless), "--bogus"], capsys)


def test_summary_enabled_false_stores_no_table(in_tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(["fit", "--config", str(CONFIGS / "exact.yaml"), "--summary.enabled", "false"])
    latest = Path(run.trainer.log_dir) / "checkpoints" / "latest.ckpt"
    assert INFERENCE_KEY not in load_checkpoint(latest)
    assert "holds no inference table" in _refused(["--ckpt_path", str(latest)], capsys)


def _set(keys: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(checkpoint: dict[str, Any]) -> None:
        target = checkpoint
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set(("lr_lightning", "model_class"), "os.system"), "not one of lr_lightning's models"),
        (_set((INFERENCE_KEY, "kind"), "GLM"), "['kind'] is 'GLM'"),
        (_set((INFERENCE_KEY, "evil"), 1), "holds 'evil', which a stored table does not have"),
        (_set((INFERENCE_KEY, "ols", "bse"), torch.zeros(3)), "['ols.bse'] has shape (3,), not (2, 4)"),
        (_set((INFERENCE_KEY, "ols", "bse"), [[0.0] * 4] * 2), "['ols.bse'] is a list, not an array"),
        (_set((INFERENCE_KEY, "ols", "cov_type"), torch.tensor(99)), "not a covariance type"),
        (_set((INFERENCE_KEY, "valid"), "yes"), "['valid'] is not a bool"),
        (_set((INFERENCE_KEY, "term_names"), ["const", "a", "b", "c"]), "are not the model's features"),
        (_set((INFERENCE_KEY, "coefficients"), torch.zeros(2, 4)), "a valid table holds ['coefficients']"),
        (_set((INFERENCE_KEY, "certificate"), {"line": [1]}), "['certificate'] holds 'line'"),
        (_set((INFERENCE_KEY, "ols", "bse"), torch.zeros(2, 4, dtype=torch.complex64)), "complex64"),
        (_set((INFERENCE_KEY,), ["not", "a", "dict"]), "not a dict"),
    ],
)
def test_a_forged_table_or_record_is_refused(
    exact_run: dict[str, Any],
    tmp_path: Path,
    change: Callable[[dict[str, Any]], None],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = load_checkpoint(exact_run["latest"])
    change(checkpoint)
    forged = tmp_path / "forged.ckpt"
    torch.save(checkpoint, forged)
    line = _refused(["--ckpt_path", str(forged)], capsys)
    assert message in line and str(forged) in line
    if not message.startswith(("not one of", "are not the model's")):
        with pytest.raises(InputError, match=r"not a table lr_lightning stored|holds a"):
            MultiOutputRegression.load_from_checkpoint(forged)


def test_a_pickle_payload_in_the_table_is_refused_unrun(
    exact_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = load_checkpoint(exact_run["latest"])
    checkpoint[INFERENCE_KEY]["notes"] = [np.float64(1.0)]  # a NumPy object: full unpickling only
    forged = tmp_path / "pickled.ckpt"
    torch.save(checkpoint, forged)
    assert "refused to load: the file holds Python objects" in _refused(["--ckpt_path", str(forged)], capsys)


def test_summary_in_a_fresh_process_as_a_user_runs_it(exact_run: dict[str, Any]) -> None:
    result = run_cli(["summary", "--ckpt_path", str(exact_run["latest"])], cwd=exact_run["folder"])
    assert result.stdout == (exact_run["log_dir"] / "summary.txt").read_text()
