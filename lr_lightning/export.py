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
from lr_lightning.errors import InputError
from lr_lightning.models import LinearModelBase, LinearRegression, LogisticRegression, MultiOutputRegression

__all__ = ["export", "load_exported", "main"]

#: The classes an export may name; anything else in ``model.json`` is refused.
MODEL_CLASSES: dict[str, type[LinearModelBase]] = {
    cls.__name__: cls for cls in (LinearRegression, MultiOutputRegression, LogisticRegression)
}
FORMAT_VERSION = 1
WEIGHTS_FILE, METADATA_FILE = "model.safetensors", "model.json"


def export(checkpoint_path: str | Path, output_dir: str | Path, model_class: str | None = None) -> Path:
    """Write ``model.safetensors`` and ``model.json`` for a checkpoint.

    Args:
        checkpoint_path: a Lightning checkpoint written by ``lr-lightning fit``.
        output_dir: folder to write into (created if missing).
        model_class: the model's class name; by default inferred from the hyperparameters (``num_classes`` means
            ``LogisticRegression``, several targets ``MultiOutputRegression``, else ``LinearRegression``).

    Returns:
        The output folder.

    """
    from safetensors.torch import save_file

    checkpoint = load_checkpoint(checkpoint_path)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if "in_features" not in hparams:
        raise InputError(f"{checkpoint_path}: no lr_lightning hyperparameters (in_features) in this checkpoint")
    if model_class is None:
        if "num_classes" in hparams:
            model_class = "LogisticRegression"
        elif hparams.get("out_features", 1) > 1:
            model_class = "MultiOutputRegression"
        else:
            model_class = "LinearRegression"
    if model_class not in MODEL_CLASSES:
        raise InputError(f"unknown model class {model_class!r}; one of {sorted(MODEL_CLASSES)}")
    state = {name: tensor.contiguous() for name, tensor in checkpoint["state_dict"].items()}
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    save_file(state, str(output / WEIGHTS_FILE))
    metadata = {"format_version": FORMAT_VERSION, "model_class": model_class, "hyper_parameters": hparams}
    (output / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return output


def load_exported(directory: str | Path) -> LinearModelBase:
    """Rebuild a model from ``model.json`` and ``model.safetensors``: JSON and raw tensors, no unpickling.

    Returns:
        The model in eval mode; ``model(raw_features)`` predicts in raw units as the checkpoint did.

    """
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        metadata: dict[str, Any] = json.loads((directory / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{directory / METADATA_FILE}: cannot read the model description ({error})") from None
    name = metadata.get("model_class")
    if name not in MODEL_CLASSES:
        raise InputError(f"{directory / METADATA_FILE}: unknown model class {name!r}; one of {sorted(MODEL_CLASSES)}")
    model = MODEL_CLASSES[name](**metadata["hyper_parameters"])
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
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
