"""Share a trained model without pickle: safetensors weights plus a JSON sidecar.

    python -m lr_lightning.export runs/sourdough/version_0/checkpoints/latest.ckpt exported/sourdough

writes ``exported/sourdough/model.safetensors`` (the layer and the scaling buffers) and ``model.json`` (the model
class, its hyperparameters — feature names, target or class names — and the format version). Reading them back
with :func:`load_exported` parses JSON and raw tensors only: nothing in the files can run code, and only the
models of this package can be named.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lr_lightning.checkpoint import load_checkpoint
from lr_lightning.checkpoint_contents import check_hyperparameters, check_model_checkpoint, check_state_shapes
from lr_lightning.errors import InputError
from lr_lightning.models import LinearModelBase, LinearRegression, LogisticRegression, MultiOutputRegression

__all__ = ["export", "load_exported", "main"]

#: The classes an export may name; anything else in ``model.json`` is refused.
MODEL_CLASSES: dict[str, type[LinearModelBase]] = {
    cls.__name__: cls for cls in (LinearRegression, MultiOutputRegression, LogisticRegression)
}
FORMAT_VERSION = 1
WEIGHTS_FILE, METADATA_FILE = "model.safetensors", "model.json"
#: The keys of ``model.json``, all required.
METADATA_KEYS = frozenset({"format_version", "model_class", "hyper_parameters"})


def export(checkpoint_path: str | Path, output_dir: str | Path, model_class: str | None = None) -> Path:
    """Write ``model.safetensors`` and ``model.json`` for a checkpoint.

    The checkpoint is read by :func:`~lr_lightning.checkpoint.load_checkpoint` and checked by
    :func:`~lr_lightning.checkpoint_contents.check_model_checkpoint` against the model class before anything is written.

    Args:
        checkpoint_path: a Lightning checkpoint written by ``lr-lightning fit``.
        output_dir: folder to write into (created if missing).
        model_class: the model's class name; by default inferred from the hyperparameters (``num_classes`` means
            ``LogisticRegression``, several targets ``MultiOutputRegression``, else ``LinearRegression``).

    Returns:
        The output folder.

    Raises:
        InputError: an unusable checkpoint (naming the file and the key) or an unknown model class.

    """
    from safetensors.torch import save_file

    if model_class is not None and model_class not in MODEL_CLASSES:
        raise InputError(f"unknown model class {model_class!r}; one of {sorted(MODEL_CLASSES)}")
    checkpoint = load_checkpoint(checkpoint_path)
    if model_class is None:
        hparams = check_model_checkpoint(checkpoint, checkpoint_path)
        if "num_classes" in hparams:
            model_class = "LogisticRegression"
        elif hparams.get("out_features", 1) > 1:
            model_class = "MultiOutputRegression"
        else:
            model_class = "LinearRegression"
    hparams = check_model_checkpoint(checkpoint, checkpoint_path, model_class=MODEL_CLASSES[model_class])
    state = {name: tensor.contiguous() for name, tensor in checkpoint["state_dict"].items()}
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    save_file(state, str(output / WEIGHTS_FILE))
    metadata = {"format_version": FORMAT_VERSION, "model_class": model_class, "hyper_parameters": hparams}
    (output / METADATA_FILE).write_text(json.dumps(metadata, indent=2, allow_nan=False) + "\n")
    return output


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _read_metadata(directory: Path) -> tuple[type[LinearModelBase], dict[str, Any]]:
    """Parse and check ``model.json``: its keys, format version, model class and hyperparameters."""
    path = directory / METADATA_FILE
    if not path.is_file():
        raise InputError(f"{path}: no such file (an export folder holds {METADATA_FILE} and {WEIGHTS_FILE})")
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{path}: cannot read the model description ({_first_line(error)})") from None
    if not isinstance(metadata, dict):
        raise InputError(f"{path}: the model description is a {type(metadata).__name__}, not a JSON object")
    unknown = sorted(set(metadata) - METADATA_KEYS)
    missing = sorted(METADATA_KEYS - set(metadata))
    if unknown or missing:
        what = f"unknown key {unknown[0]!r}" if unknown else f"no {missing[0]!r}"
        raise InputError(f"{path}: {what}; the keys are {sorted(METADATA_KEYS)}")
    version = metadata["format_version"]
    if type(version) is not int or version != FORMAT_VERSION:
        raise InputError(f"{path}: format_version is {version!r}; this lr_lightning reads {FORMAT_VERSION}")
    name = metadata["model_class"]
    if not isinstance(name, str) or name not in MODEL_CLASSES:
        raise InputError(f"{path}: unknown model class {name!r}; one of {sorted(MODEL_CLASSES)}")
    model_class = MODEL_CLASSES[name]
    hparams = check_hyperparameters(metadata["hyper_parameters"], path, model_class)
    return model_class, hparams


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Read the tensors' names and shapes from the safetensors header, without loading any tensor."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise InputError(f"{path}: no such file (an export folder holds {METADATA_FILE} and {WEIGHTS_FILE})")
    try:
        with safe_open(str(path), framework="pt") as weights:
            return {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable safetensors file ({_first_line(error)})") from None


def load_exported(directory: str | Path) -> LinearModelBase:
    """Rebuild a model from ``model.json`` and ``model.safetensors``: JSON and raw tensors, no unpickling.

    Everything is checked before the model is built: ``model.json``'s keys, format version, model class and
    hyperparameters (plain values of the right types), and the tensors' shapes in the safetensors header against
    ``in_features`` and the number of outputs; then the tensors, which must be finite floats.

    Returns:
        The model in eval mode; ``model(raw_features)`` predicts in raw units as the checkpoint did.

    Raises:
        InputError: a missing, unreadable or inconsistent file, named with the key or tensor at fault.

    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    model_class, hparams = _read_metadata(directory)
    weights_path = directory / WEIGHTS_FILE
    both = f"{directory / METADATA_FILE} with {WEIGHTS_FILE}"
    check_state_shapes(_tensor_shapes(weights_path), hparams, both, model_class)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{weights_path}: not a readable safetensors file ({_first_line(error)})") from None
    check_model_checkpoint({"hyper_parameters": hparams, "state_dict": state}, both, model_class=model_class)
    try:
        model = model_class(**hparams)
    except ValueError as error:
        raise InputError(
            f"{directory / METADATA_FILE}: the hyperparameters do not build a {model_class.__name__}: "
            f"{str(error).splitlines()[0]}"
        ) from None
    model.load_state_dict(state)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    """``python -m lr_lightning.export CHECKPOINT OUTPUT_DIR``."""
    parser = argparse.ArgumentParser(prog="python -m lr_lightning.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a .ckpt written by lr-lightning fit")
    parser.add_argument("output_dir", help="folder for model.safetensors and model.json")
    parser.add_argument("--model-class", choices=sorted(MODEL_CLASSES), help="default: inferred")
    args = parser.parse_args(argv)
    try:
        output = export(args.checkpoint, args.output_dir, args.model_class)
    except InputError as error:
        parser.exit(2, f"lr-lightning export: error: {error}\n")
    print(f"Exported to {output / WEIGHTS_FILE} and {output / METADATA_FILE}")


if __name__ == "__main__":
    main()
