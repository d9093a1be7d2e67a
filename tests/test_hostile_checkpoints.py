"""Hostile and broken checkpoints: every way to load one is safe, and a bad file is a one-line InputError.

The malicious payloads would create a marker file when unpickled; the tests assert it never appears. They run
without ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` (which the suite sets), so that the package's own loader is what stands
between the file and the payload.
"""

from __future__ import annotations

import functools
import http.server
import json
import math
import os
import pathlib
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import OnExceptionCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from lr_lightning.checkpoint import AtomicCheckpointIO, load_checkpoint
from lr_lightning.checkpoint_contents import check_model_checkpoint
from lr_lightning.errors import InputError
from lr_lightning.export import export, load_exported
from lr_lightning.models import LinearModelBase, LinearRegression, LogisticRegression, MultiOutputRegression
from lr_lightning.models.base import TrainingDivergedError

MODEL_CLASSES = [LinearRegression, MultiOutputRegression, LogisticRegression]


class SystemPayload:
    """Unpickling runs ``touch MARKER`` in a shell."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return os.system, (f"touch {self.marker}",)


class TouchPayload:
    """Unpickling calls ``pathlib.Path.touch(MARKER)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


PAYLOADS = [SystemPayload, TouchPayload]


@pytest.fixture(autouse=True)
def unforced_weights_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Let torch.load honour what the caller passes, and keep any download out of the home folder."""
    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def make_model(model_class: type[LinearModelBase], in_features: int = 3) -> LinearModelBase:
    """A model with non-trivial weights and scaling, as a fit would leave it."""
    if model_class is LogisticRegression:
        model = LogisticRegression(in_features, num_classes=3, feature_names=["a", "b", "c"][:in_features])
    else:
        outputs = 2 if model_class is MultiOutputRegression else 1
        model = model_class(in_features, out_features=outputs, optimality_gap=False)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return model


def model_checkpoint(model: LinearModelBase) -> dict[str, Any]:
    """The parts of a Lightning checkpoint that loading a model reads."""
    return {
        "epoch": 0,
        "global_step": 1,
        "pytorch-lightning_version": pl.__version__,
        "state_dict": {name: tensor.clone() for name, tensor in model.state_dict().items()},
        "hparams_name": "kwargs",
        "hyper_parameters": dict(model.hparams),
    }


def save(checkpoint: dict[str, Any], path: Path) -> Path:
    torch.save(checkpoint, path)
    return path


def evil_checkpoint(tmp_path: Path, payload: type) -> tuple[Path, Path]:
    """A regression checkpoint with a payload among its entries; returns it and the marker it would create."""
    marker = tmp_path / "MARKER"
    checkpoint = model_checkpoint(make_model(MultiOutputRegression))
    path = save({**checkpoint, "extra": payload(marker)}, tmp_path / "evil.ckpt")
    return path, marker


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``tmp_path`` on 127.0.0.1 from a background thread; yield its URL and the paths requested."""
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


# -- 1. every public way to load goes through the safe loader --------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("model_class", MODEL_CLASSES)
def test_load_from_checkpoint_refuses_urls_without_downloading(
    model_class: type[LinearModelBase], payload: type, tmp_path: Path, http_server: tuple[str, list[str]]
) -> None:
    _, marker = evil_checkpoint(tmp_path, payload)
    url, requests = http_server
    with pytest.raises(InputError, match=r"evil.ckpt: checkpoints are loaded from local files only"):
        model_class.load_from_checkpoint(f"{url}/evil.ckpt")
    assert requests == [] and not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("model_class", MODEL_CLASSES)
def test_load_from_checkpoint_refuses_a_local_pickle_payload(
    model_class: type[LinearModelBase], payload: type, tmp_path: Path
) -> None:
    path, marker = evil_checkpoint(tmp_path, payload)
    for weights_only in (None, True):
        with pytest.raises(InputError, match=r"evil.ckpt: refused to load: the file holds Python objects"):
            model_class.load_from_checkpoint(path, weights_only=weights_only)
    with pytest.raises(InputError, match=r"evil.ckpt: weights_only=False is refused"):
        model_class.load_from_checkpoint(path, weights_only=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "entries",
    [
        {"_instantiator": "lightning.pytorch.cli.instantiate_module"},
        {"_instantiator": "lightning.pytorch.cli.instantiate_module", "_class_path": "os.system"},
        {"_class_path": "lr_lightning.models.LinearRegression"},
    ],
)
@pytest.mark.parametrize("model_class", MODEL_CLASSES)
def test_load_from_checkpoint_refuses_instantiator_entries(
    model_class: type[LinearModelBase], entries: dict[str, str], tmp_path: Path
) -> None:
    checkpoint = model_checkpoint(make_model(model_class))
    checkpoint["hyper_parameters"].update(entries)
    path = save(checkpoint, tmp_path / "instantiator.ckpt")
    with pytest.raises(InputError, match=r"instantiator.ckpt: refused to load: .* holds '_(instantiator|class_path)'"):
        model_class.load_from_checkpoint(path)
    # Passed as an override it is refused too (Lightning would honour it).
    clean = save(model_checkpoint(make_model(model_class)), tmp_path / "clean.ckpt")
    with pytest.raises(InputError, match=r"clean.ckpt: refused to load: .* holds '_instantiator'"):
        model_class.load_from_checkpoint(clean, _instantiator="lightning.pytorch.cli.instantiate_module")


@pytest.mark.parametrize("model_class", MODEL_CLASSES)
def test_load_from_checkpoint_keeps_lightnings_signature_and_results(
    model_class: type[LinearModelBase], tmp_path: Path
) -> None:
    original = make_model(model_class)
    path = save(model_checkpoint(original), tmp_path / "model.ckpt")
    features = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    loaded = model_class.load_from_checkpoint(str(path))
    assert type(loaded) is model_class and not loaded.training  # eval mode: ready to predict
    assert loaded.device == torch.device("cpu")
    with torch.no_grad():
        torch.testing.assert_close(loaded(features), original(features), rtol=0, atol=0)
    mapped = model_class.load_from_checkpoint(path, map_location="cpu", strict=True, weights_only=True)
    assert all(torch.equal(mapped.state_dict()[k], v) for k, v in original.state_dict().items())
    override = {"l2_strength": 0.5}
    assert model_class.load_from_checkpoint(path, **override).hparams.l2_strength == 0.5
    with pytest.raises(InputError, match=r"hparams.yaml: hparams_file is not supported"):
        model_class.load_from_checkpoint(path, hparams_file=tmp_path / "hparams.yaml")
    with pytest.raises(InputError, match=r"model.ckpt: hyper_parameters\['no_such_option'\] is not an argument"):
        model_class.load_from_checkpoint(path, no_such_option=1)


# -- 2. NaN and infinite weights are never written and never loaded --------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_atomic_save_refuses_non_finite_weights_and_keeps_the_previous_file(value: float, tmp_path: Path) -> None:
    io, target = AtomicCheckpointIO(), tmp_path / "latest.ckpt"
    good = model_checkpoint(make_model(LinearRegression))
    io.save_checkpoint(good, target)
    before = target.read_bytes()
    bad = model_checkpoint(make_model(LinearRegression))
    bad["state_dict"]["linear.weight"][0, 1] = value
    with pytest.raises(TrainingDivergedError, match=r"latest.ckpt: no checkpoint was written: .*'linear.weight'"):
        io.save_checkpoint(bad, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.ckpt"]


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("tensor", ["linear.weight", "feature_scale"])
def test_load_checkpoint_refuses_non_finite_weights(value: float, tensor: str, tmp_path: Path) -> None:
    checkpoint = model_checkpoint(make_model(MultiOutputRegression))
    checkpoint["state_dict"][tensor].view(-1)[0] = value
    path = save(checkpoint, tmp_path / "diverged.ckpt")
    message = rf"diverged.ckpt: refused to load: state_dict tensor '{tensor}' holds NaN or infinite values"
    with pytest.raises(InputError, match=message):
        load_checkpoint(path)
    with pytest.raises(InputError, match=message):
        MultiOutputRegression.load_from_checkpoint(path)


# OnExceptionCheckpoint makes Lightning look for a checkpoint to resume from; there is none on a first fit.
@pytest.mark.filterwarnings("ignore:.*fit\\(ckpt_path=:UserWarning")
def test_a_diverged_fit_writes_no_exception_checkpoint_and_reports_the_divergence(tmp_path: Path) -> None:
    model = LinearRegression(2, optimality_gap=False, optimizer=lambda params: torch.optim.SGD(params, lr=math.inf))
    data = TensorDataset(torch.randn(8, 2), torch.randn(8, 1))
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[OnExceptionCheckpoint(tmp_path)],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=tmp_path,
    )
    with (
        pytest.warns(UserWarning, match=r"on_exception.ckpt: no checkpoint was written"),
        pytest.raises(TrainingDivergedError, match=r"^training diverged at epoch 0, step \d+: .*No checkpoint"),
    ):
        trainer.fit(model, DataLoader(data, batch_size=4))
    assert list(tmp_path.iterdir()) == []


# -- 3. tampered exports are refused before anything is built --------------------------------------------------------


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    """An export of a two-target regression."""
    path = save(model_checkpoint(make_model(MultiOutputRegression)), tmp_path / "model.ckpt")
    return export(path, tmp_path / "exported")


def _tamper(metadata: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    change(metadata)
    return metadata


TAMPERINGS = {
    "huge in_features": (
        lambda m: m["hyper_parameters"].update(in_features=10_000_000_000),
        r"model.json with model.safetensors: state_dict\['linear.weight'\] has shape \(2, 3\) but in_features="
        r"10000000000",
    ),
    "string in_features": (
        lambda m: m["hyper_parameters"].update(in_features="3"),
        r"model.json: hyper_parameters\['in_features'\] is '3', not an int >= 1",
    ),
    "bool out_features": (
        lambda m: m["hyper_parameters"].update(out_features=True),
        r"model.json: hyper_parameters\['out_features'\] is True, not an int >= 1",
    ),
    "fewer outputs": (
        lambda m: m["hyper_parameters"].update(out_features=1, target_names=None),
        r"state_dict\['linear.weight'\] has shape \(2, 3\) but in_features=3 and out_features=1 need \(1, 3\)",
    ),
    "hyper_parameters a string": (
        lambda m: m.update(hyper_parameters="in_features=3"),
        r"model.json: 'hyper_parameters' is a str, not a dict",
    ),
    "format_version 2": (lambda m: m.update(format_version=2), r"model.json: format_version is 2; this lr_lightning"),
    "format_version true": (lambda m: m.update(format_version=True), r"model.json: format_version is True"),
    "unknown top-level key": (lambda m: m.update(extra=1), r"model.json: unknown key 'extra'"),
    "model_class a list": (lambda m: m.update(model_class=["x"]), r"model.json: unknown model class \['x'\]"),
    "unknown hyperparameter": (
        lambda m: m["hyper_parameters"].update(activation="relu"),
        r"model.json: hyper_parameters\['activation'\] is not an argument of MultiOutputRegression",
    ),
    "object hyperparameter": (
        lambda m: m["hyper_parameters"].update(l2_strength={"value": [1, {"deeper": None}]}),
        r"model.json: hyper_parameters\['l2_strength'\] is \{.*\}, not a int or float",
    ),
    "names of another length": (
        lambda m: m["hyper_parameters"].update(feature_names=["a", "b"]),
        r"model.json: hyper_parameters\['feature_names'\] holds 2 names but in_features is 3",
    ),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_load_exported_checks_the_json_against_the_tensors_before_building(
    name: str, exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    change, message = TAMPERINGS[name]
    metadata = json.loads((exported / "model.json").read_text())
    (exported / "model.json").write_text(json.dumps(_tamper(metadata, change)))
    build = LinearModelBase.__init__

    @functools.wraps(build)  # the checks read the constructor's signature
    def guarded(self: LinearModelBase, in_features: Any, *args: Any, **kwargs: Any) -> None:
        assert not (isinstance(in_features, int) and in_features > 1000), "model built before the checks"
        build(self, in_features, *args, **kwargs)

    monkeypatch.setattr(LinearModelBase, "__init__", guarded)
    with pytest.raises(InputError, match=message) as error:
        load_exported(exported)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "model.json").unlink(), r"exported/model.json: no such file"),
        (lambda d: (d / "model.safetensors").unlink(), r"exported/model.safetensors: no such file"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x08"), r"model.safetensors: not a readable safetensors"),
        (lambda d: (d / "model.json").write_text('{"format_version": NaN}'), r"model.json: cannot read the model"),
        (lambda d: (d / "model.json").write_text("[1, 2]"), r"model.json: the model description is a list"),
    ],
)
def test_load_exported_refuses_missing_and_unreadable_files(
    damage: Callable[[Path], Any], message: str, exported: Path
) -> None:
    damage(exported)
    with pytest.raises(InputError, match=message):
        load_exported(exported)


# -- 4. one check that a checkpoint holds a usable model -------------------------------------------------------------


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(checkpoint: dict[str, Any]) -> None:
        checkpoint["hyper_parameters"][key] = value

    return change


def _tensor(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"][name] = value

    return change


BROKEN = {
    "hyper_parameters a string": (
        lambda c: c.update(hyper_parameters="in_features: 3"),
        r"'hyper_parameters' is a str, not a dict",
    ),
    "no hyper_parameters": (lambda c: c.pop("hyper_parameters"), r"'hyper_parameters' is missing, not a dict"),
    "string in_features": (_set("in_features", "3"), r"hyper_parameters\['in_features'\] is '3', not an int >= 1"),
    "bool in_features": (_set("in_features", True), r"hyper_parameters\['in_features'\] is True, not an int >= 1"),
    "zero out_features": (_set("out_features", 0), r"hyper_parameters\['out_features'\] is 0, not an int >= 1"),
    "tensor hyperparameter": (
        _set("l2_strength", torch.tensor(0.1)),
        r"hyper_parameters\['l2_strength'\] is a Tensor, not a plain value",
    ),
    "state_dict a list": (lambda c: c.update(state_dict=[]), r"'state_dict' is a list, not a dict of tensors"),
    "weight of another shape": (
        _tensor("linear.weight", torch.zeros(2, 4)),
        r"state_dict\['linear.weight'\] has shape \(2, 4\) but in_features=3 and out_features=2 need \(2, 3\)",
    ),
    "bias of another shape": (
        _tensor("linear.bias", torch.zeros(3)),
        r"state_dict\['linear.bias'\] has shape \(3,\) but .* need \(2,\)",
    ),
    "scaling of another shape": (
        _tensor("feature_scale", torch.ones(2)),
        r"state_dict\['feature_scale'\] has shape \(2,\) but in_features=3 .* need \(3,\)",
    ),
    "integer weights": (
        _tensor("linear.weight", torch.zeros(2, 3, dtype=torch.long)),
        r"state_dict\['linear.weight'\] is a torch.int64 torch.strided tensor, not dense floats",
    ),
    "non-tensor entry": (_tensor("feature_mean", [0.0, 0.0, 0.0]), r"state_dict\['feature_mean'\] is a list"),
    "no weight": (lambda c: c["state_dict"].pop("linear.weight"), r"state_dict has no 'linear.weight'"),
    "unexpected tensor": (_tensor("extra", torch.zeros(1)), r"state_dict holds 'extra', which the model does not"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_model_checkpoints_are_one_line_input_errors(name: str, tmp_path: Path) -> None:
    change, message = BROKEN[name]
    checkpoint = model_checkpoint(make_model(MultiOutputRegression))
    change(checkpoint)
    path = save(checkpoint, tmp_path / "broken.ckpt")
    with pytest.raises(InputError, match=rf"broken.ckpt: {message}") as checked:
        check_model_checkpoint(load_checkpoint(path), path)
    with pytest.raises(InputError, match=rf"broken.ckpt: {message}") as loaded:
        MultiOutputRegression.load_from_checkpoint(path)
    with pytest.raises(InputError, match=rf"broken.ckpt: {message}"):
        export(path, tmp_path / "exported")
    assert "\n" not in str(checked.value) and "\n" not in str(loaded.value)
    assert not (tmp_path / "exported").exists()


@pytest.mark.parametrize(("num_classes", "outputs"), [(2, 1), (3, 3), (5, 5)])
def test_check_model_checkpoint_counts_a_classifiers_outputs(num_classes: int, outputs: int, tmp_path: Path) -> None:
    model = LogisticRegression(4, num_classes=num_classes)
    checkpoint = model_checkpoint(model)
    assert model.linear.weight.shape == (outputs, 4)
    hparams = check_model_checkpoint(checkpoint, tmp_path / "c.ckpt")
    assert hparams == dict(model.hparams) and hparams is not checkpoint["hyper_parameters"]
    assert check_model_checkpoint(checkpoint, tmp_path / "c.ckpt", model_class=LogisticRegression) == hparams
    checkpoint["hyper_parameters"]["num_classes"] = 2 if num_classes > 2 else 3
    with pytest.raises(InputError, match=r"c.ckpt: state_dict\['linear.weight'\] has shape .* num_classes="):
        check_model_checkpoint(checkpoint, tmp_path / "c.ckpt")
    with pytest.raises(InputError, match=r"c.ckpt: hyper_parameters\['num_classes'\] is not an argument of Linear"):
        check_model_checkpoint(model_checkpoint(model), tmp_path / "c.ckpt", model_class=LinearRegression)


# -- 5. permissions, stale temporaries, the folder's fsync -----------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_checkpoints_get_the_permissions_of_a_new_file(umask: int, mode: int, tmp_path: Path) -> None:
    previous = os.umask(umask)
    try:
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "latest.ckpt")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "latest.ckpt").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == mode


def test_stale_temporaries_are_removed_on_the_next_save_and_never_named(tmp_path: Path) -> None:
    whole = save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, tmp_path / "epoch-3.ckpt")
    os.utime(whole, (1_000_000, 1_000_000))
    stale = [tmp_path / ".latest.ckpt.k2j4h6a_.tmp", tmp_path / ".latest.ckpt.0123456789abcdef.tmp"]
    kept = [tmp_path / ".latest.ckpt.bak.a1b2c3d4.tmp", tmp_path / ".other.ckpt.a1b2c3d4.tmp", tmp_path / "notes.tmp"]
    for path in [*stale, *kept]:
        torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 9}, path)  # whole, newest: still not a checkpoint
    save({"state_dict": {"w": torch.full((2,), math.nan)}, "epoch": 5}, tmp_path / "diverged.ckpt")
    (tmp_path / "latest.ckpt").write_bytes(b"truncated")
    with pytest.raises(InputError, match=r"latest.ckpt: the checkpoint is truncated or corrupt") as error:
        load_checkpoint(tmp_path / "latest.ckpt")
    assert str(error.value).endswith(f"; the previous checkpoint {whole} is whole")
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 4}, tmp_path / "latest.ckpt")
    assert load_checkpoint(tmp_path / "latest.ckpt")["epoch"] == 4
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)


def test_the_folder_is_fsynced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "fsync file")
        real_fsync(descriptor)

    def replace(source: Any, destination: Any) -> None:
        events.append("replace")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "latest.ckpt")
    assert events == ["fsync file", "replace", "fsync folder"]
