"""``load_from_checkpoint`` of the package's models: Lightning's behaviour, through the safe loader only.

Lightning's own version downloads URLs and unpickles them with ``weights_only=False`` and builds the class an
``_instantiator`` entry names; this one reads local files with :func:`lr_lightning.checkpoint.load_checkpoint` and
checks them with :func:`lr_lightning.checkpoint_contents.check_model_checkpoint` before building the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar

from lightning.pytorch.core.saving import _default_map_location
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.model_helpers import is_overridden

from lr_lightning.checkpoint import load_checkpoint
from lr_lightning.checkpoint_contents import check_model_checkpoint
from lr_lightning.errors import InputError

if TYPE_CHECKING:
    from lr_lightning.models.base import LinearModelBase

__all__ = ["LoadOptions", "load_model"]

_Model = TypeVar("_Model", bound="LinearModelBase")


@dataclass(frozen=True)
class LoadOptions:
    """Lightning's options of ``load_from_checkpoint``, besides the path and the hyperparameter overrides.

    Attributes:
        map_location: as for :func:`torch.load`; default: where the tensors were saved, or the CPU when that
            device is absent (as Lightning).
        hparams_file: not supported (the checkpoint holds the hyperparameters; pass overrides as keywords).
        strict: refuse missing and unexpected tensors; default the model's ``strict_loading`` (True).
        weights_only: ``None`` or ``True``; ``False`` is refused.

    """

    map_location: Any = None
    hparams_file: str | os.PathLike | None = None
    strict: bool | None = None
    weights_only: bool | None = None


def load_model(
    cls: type[_Model], checkpoint_path: str | os.PathLike | IO, options: LoadOptions, overrides: dict[str, Any]
) -> _Model:
    """Build a ``cls`` from a checkpoint, read by :func:`lr_lightning.checkpoint.load_checkpoint` only.

    The body of the models' ``load_from_checkpoint``: Lightning's signature and results (the model on the device
    of the loaded weights, but in eval mode, ready to predict; ``overrides`` replace the stored
    hyperparameters; ``strict`` as for ``load_state_dict``), but the file is read with ``weights_only=True``, from
    a local path only, and checked by :func:`lr_lightning.checkpoint_contents.check_model_checkpoint` before the
    model is built: no URL download, no ``_instantiator``/``_class_path``, no tensor of the wrong shape or NaN
    weights.

    Args:
        cls: the model class.
        checkpoint_path: a local checkpoint file (a URL or a file object is refused).
        options: Lightning's other options (see :class:`LoadOptions`).
        overrides: hyperparameters that replace the stored ones.

    Raises:
        InputError: the path, the file or its contents are unusable (the message names the file and the key),
            ``hparams_file`` or ``weights_only=False`` was given.

    """
    hparams_file, weights_only, strict = options.hparams_file, options.weights_only, options.strict
    if not isinstance(checkpoint_path, str | os.PathLike):
        raise TypeError(
            f"{cls.__name__}.load_from_checkpoint takes a local file path, not a {type(checkpoint_path).__name__}"
        )
    if hparams_file is not None:
        raise InputError(
            f"{hparams_file}: hparams_file is not supported: the checkpoint holds the hyperparameters; pass "
            f"overrides as keyword arguments to {cls.__name__}.load_from_checkpoint"
        )
    if weights_only is False:
        raise InputError(
            f"{os.fspath(checkpoint_path)}: weights_only=False is refused: lr_lightning loads checkpoints with "
            "weights_only=True only (full unpickling can run code from the file)"
        )
    checkpoint = load_checkpoint(checkpoint_path, map_location=options.map_location or _default_map_location)
    stored = checkpoint.get(cls.CHECKPOINT_HYPER_PARAMS_KEY)
    if isinstance(stored, dict) or (stored is None and overrides):
        checkpoint = {**checkpoint, cls.CHECKPOINT_HYPER_PARAMS_KEY: {**(stored or {}), **overrides}}
    # Not strict yet: the model decides its strictness (strict_loading); the keys are compared with it below.
    hparams = check_model_checkpoint(checkpoint, checkpoint_path, model_class=cls, strict=False)
    try:
        model = cls(**hparams)
    except ValueError as error:
        raise InputError(
            f"{os.fspath(checkpoint_path)}: the hyperparameters do not build a {cls.__name__}: "
            f"{str(error).splitlines()[0]}"
        ) from None
    if model._strict_loading is not None and strict is not None and strict != model.strict_loading:
        raise ValueError(
            f"You set `.load_from_checkpoint(..., strict={strict!r})` which is in conflict with "
            f"`{cls.__name__}.strict_loading={model.strict_loading!r}. Please set the same value for both of them."
        )
    strict = model.strict_loading if strict is None else strict
    state = checkpoint["state_dict"]
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if strict and (missing or unexpected):
        what = f"has no {missing[0]!r}" if missing else f"holds {unexpected[0]!r}, which"
        raise InputError(
            f"{os.fspath(checkpoint_path)}: state_dict {what}{' the model does not have' if not missing else ''}"
            f" (a {cls.__name__} checkpoint?)"
        )
    for name, tensor in state.items():
        if name in expected and tensor.shape != expected[name].shape:
            raise InputError(
                f"{os.fspath(checkpoint_path)}: state_dict[{name!r}] has shape {tuple(tensor.shape)} but the "
                f"{cls.__name__} built from its hyperparameters needs {tuple(expected[name].shape)}"
            )
    if is_overridden("configure_model", model):
        model.configure_model()
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(state, strict=strict)
    if not strict and missing:
        rank_zero_warn(f"Found keys that are in the model state dict but not in the checkpoint: {missing}")
    if not strict and unexpected:
        rank_zero_warn(f"Found keys that are not in the model state dict but in the checkpoint: {unexpected}")
    model.eval()  # ready to predict; a Trainer puts it back in training mode for fit
    return model.to(state["linear.weight"].device)
