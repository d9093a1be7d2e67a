"""What a loaded checkpoint must hold to be a usable lr_lightning model, checked before any model is built.

:func:`check_model_checkpoint` checks plain hyperparameters, positive integer sizes, weights and scaling buffers
of the shapes those sizes give, and, given a model class, that the checkpoint was saved by that class (a
mismatch names the class that saved it). The models' ``load_from_checkpoint``, :mod:`lr_lightning.export` and the
CLI's ``--ckpt_path`` go through it. Reading the file safely is :mod:`lr_lightning.checkpoint`'s job.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from lr_lightning.errors import InputError
from lr_lightning.models.affine import NOT_HYPERPARAMETERS

__all__ = [
    "FORBIDDEN_KEYS",
    "check_hyperparameters",
    "check_model_checkpoint",
    "check_state_shapes",
    "non_finite_tensor",
]

#: Hyperparameter keys a checkpoint may not hold: Lightning builds the class named there when loading.
FORBIDDEN_KEYS = ("_instantiator", "_class_path")

#: Sizes: the smallest value each may take.
SIZE_KEYS = {"in_features": 1, "out_features": 1, "num_classes": 2}
#: Name lists and the size that gives their length.
NAME_KEYS = {"feature_names": "in_features", "target_names": "out_features", "class_names": "num_classes"}
#: The other hyperparameters of the package's models and the types they must have.
TYPED_KEYS: dict[str, tuple[type, ...]] = {
    "bias": (bool,),
    "optimality_gap": (bool,),
    "l1_strength": (int, float),
    "l2_strength": (int, float),
    "init_std": (int, float),
    "init": (str,),
    "loss": (str,),
}
#: How deep lists and dicts may nest inside the hyperparameters.
MAX_NESTING = 8


def non_finite_tensor(state: Mapping[Any, Any]) -> Any:
    """Return the name of the first floating (or complex) tensor in ``state`` with a NaN or inf, or None."""
    for name, value in state.items():
        if (
            isinstance(value, torch.Tensor)
            and value.layout == torch.strided
            and (value.is_floating_point() or value.is_complex())
            and not bool(torch.isfinite(value).all())
        ):
            return name
    return None


# -- what a model checkpoint must hold ---------------------------------------------------------------------------


def check_model_checkpoint(
    checkpoint: Mapping[str, Any],
    path: str | os.PathLike,
    model_class: type | None = None,
    *,
    strict: bool = True,
) -> dict[str, Any]:
    """Check that a loaded checkpoint holds a usable lr_lightning model, before any model is built from it.

    ``hyper_parameters`` must be a dict of plain values (None, bool, int, finite float, str, and lists, tuples
    and str-keyed dicts of them) without ``_instantiator``/``_class_path``; ``in_features`` (required),
    ``out_features`` and ``num_classes`` positive ints (not bool or str; ``num_classes >= 2``); the name lists as
    long as their sizes; ``state_dict`` a dict of dense floating tensors, all finite, with ``linear.weight`` of
    shape (K, D), ``linear.bias`` (K,) (when ``bias``), ``feature_mean``/``feature_scale`` (D,), and for
    regression ``target_mean``/``target_scale`` (K,). D is ``in_features``; K, the number of outputs, is
    ``out_features`` (default 1) for regression and, for a classifier (``num_classes``), 1 when
    ``num_classes == 2``, else ``num_classes``.

    Args:
        checkpoint: the dict :func:`load_checkpoint` returned.
        path: the file it came from, named in every message.
        model_class: the class to build (e.g. :class:`~lr_lightning.models.LinearRegression`): its constructor's
            defaults fill keys the checkpoint lacks, a key that is not one of its arguments is refused, and it
            decides regression or classifier. ``None``: a classifier iff ``num_classes`` is present, other keys
            allowed if plain.
        strict: refuse missing and unexpected ``state_dict`` entries (``linear.weight`` is always required);
            ``False`` checks only the shapes of those present, as ``load_state_dict(strict=False)`` would load.

    Returns:
        The hyperparameters, as a new dict.

    Raises:
        InputError: the first problem, naming ``path`` and the key or tensor.

    """
    if not isinstance(checkpoint, Mapping):
        raise InputError(f"{path}: not a Lightning checkpoint (a {type(checkpoint).__name__}, not a dict)")
    hparams = check_hyperparameters(checkpoint.get("hyper_parameters"), path, model_class)
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping):
        raise InputError(
            f"{path}: 'state_dict' is {_describe(state)}, not a dict of tensors: not an lr_lightning model checkpoint"
        )
    _require_string_keys(state, "state_dict", path)
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{path}: state_dict[{name!r}] is {_describe(value)}, not a tensor")
        if value.layout != torch.strided or not value.is_floating_point():
            raise InputError(f"{path}: state_dict[{name!r}] is a {value.dtype} {value.layout} tensor, not dense floats")
    check_state_shapes({name: tuple(value.shape) for name, value in state.items()}, hparams, path, model_class, strict)
    name = non_finite_tensor(state)
    if name is not None:
        raise InputError(f"{path}: state_dict[{name!r}] holds NaN or infinite values (the weights of a diverged run)")
    return hparams


def _require_string_keys(mapping: Mapping[Any, Any], what: str, path: str | os.PathLike) -> None:
    """Refuse a key of ``mapping`` (a checkpoint's ``what``) that is not a string."""
    for key in mapping:
        if not isinstance(key, str):
            raise InputError(f"{path}: {what} key {key!r} is not a string")


def _describe(value: Any) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"


def _constructor_arguments(model_class: type[Any]) -> dict[str, inspect.Parameter]:
    """Return the hyperparameters ``model_class`` takes, with their defaults.

    Its constructor's keyword arguments and, through ``**kwargs``, its base classes' (the model classes state the
    shared options once), less :data:`~lr_lightning.models.affine.NOT_HYPERPARAMETERS`.
    """
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    arguments: dict[str, inspect.Parameter] = {}
    for cls in model_class.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = list(inspect.signature(vars(cls)["__init__"]).parameters.values())[1:]
        for parameter in parameters:
            if parameter.kind in kinds and parameter.name not in NOT_HYPERPARAMETERS:
                arguments.setdefault(parameter.name, parameter)  # the subclass's default wins
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return arguments


def _check_plain(value: Any, where: str, path: str | os.PathLike, depth: int = 0) -> None:
    """Refuse anything but None, bool, int, finite float, str, and lists, tuples and str-keyed dicts of them."""
    if depth > MAX_NESTING:
        raise InputError(f"{path}: {where} nests deeper than {MAX_NESTING} levels")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{path}: {where} is {value}, not a finite number")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]", path, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"{path}: {where} has a key {key!r} that is not a string")
            _check_plain(item, f"{where}[{key!r}]", path, depth + 1)
        return
    raise InputError(f"{path}: {where} is a {type(value).__name__}, not a plain value")


def check_hyperparameters(raw: Any, path: str | os.PathLike, model_class: type | None) -> dict[str, Any]:
    """Check the hyperparameters on their own (see :func:`check_model_checkpoint`); return them as a new dict."""
    if not isinstance(raw, dict):
        raise InputError(
            f"{path}: 'hyper_parameters' is {_describe(raw)}, not a dict: not an lr_lightning model checkpoint"
        )
    _require_string_keys(raw, "hyper_parameters", path)
    for key, value in raw.items():
        if key in FORBIDDEN_KEYS:
            raise InputError(
                f"{path}: refused to load: hyper_parameters holds {key!r}, which would make Lightning build a class "
                "named inside the file. Nothing was run."
            )
        _check_plain(value, f"hyper_parameters[{key!r}]", path)
    hparams = dict(raw)
    if model_class is not None:
        arguments = _constructor_arguments(model_class)
        unknown = [key for key in hparams if key not in arguments]
        if unknown:
            raise InputError(
                f"{path}: hyper_parameters[{unknown[0]!r}] is not an argument of {model_class.__name__}: "
                f"{_saved_by(hparams, model_class)}"
            )
    if "in_features" not in hparams:
        raise InputError(f"{path}: hyper_parameters has no 'in_features': not an lr_lightning model checkpoint")
    for key, minimum in SIZE_KEYS.items():
        value = hparams.get(key)
        if key in hparams and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise InputError(f"{path}: hyper_parameters[{key!r}] is {value!r}, not an int >= {minimum}")
    for key, types in TYPED_KEYS.items():
        value = hparams.get(key)
        if key in hparams and (not isinstance(value, types) or (bool not in types and isinstance(value, bool))):
            kind = " or ".join(t.__name__ for t in types)
            raise InputError(f"{path}: hyper_parameters[{key!r}] is {value!r}, not a {kind}")
    full = _with_defaults(hparams, model_class)
    for key, size_key in NAME_KEYS.items():
        names = hparams.get(key)
        if names is None:
            continue
        if not isinstance(names, list | tuple) or not all(isinstance(n, str | int | float) for n in names):
            raise InputError(f"{path}: hyper_parameters[{key!r}] is {names!r}, not a list of names")
        size = full.get(size_key)
        if isinstance(size, int) and len(names) != size:
            raise InputError(f"{path}: hyper_parameters[{key!r}] holds {len(names)} names but {size_key} is {size}")
    return hparams


def _with_defaults(hparams: dict[str, Any], model_class: type | None) -> dict[str, Any]:
    """Return the hyperparameters with the constructor's defaults for the keys they lack."""
    if model_class is None:
        return hparams
    defaults = {
        name: p.default
        for name, p in _constructor_arguments(model_class).items()
        if p.default is not inspect.Parameter.empty
    }
    return {**defaults, **hparams}


def check_state_shapes(
    shapes: Mapping[str, tuple[int, ...]],
    hparams: dict[str, Any],
    path: str | os.PathLike,
    model_class: type | None,
    strict: bool = True,
) -> None:
    """Check tensor shapes (read from a checkpoint or a safetensors header) against checked hyperparameters."""
    full = _with_defaults(hparams, model_class)
    classifier = "num_classes" in (hparams if model_class is None else _constructor_arguments(model_class))
    features = full["in_features"]
    if classifier:
        classes = full.get("num_classes", 2)
        outputs, how = (1 if classes == 2 else classes), f"num_classes={classes}"
    else:
        outputs, how = full.get("out_features", 1), f"out_features={full.get('out_features', 1)}"
    expected = {
        "linear.weight": (outputs, features),
        "feature_mean": (features,),
        "feature_scale": (features,),
    }
    if full.get("bias", True):
        expected["linear.bias"] = (outputs,)
    if not classifier:
        expected["target_mean"] = expected["target_scale"] = (outputs,)
    elif full.get("class_weight") is not None:  # the per-class weights it resolved, a buffer
        expected["class_weights"] = (classes,)
    if "linear.weight" not in shapes:
        raise InputError(f"{path}: state_dict has no 'linear.weight': not an lr_lightning model checkpoint")
    for name, shape in expected.items():
        if name not in shapes:
            if strict:
                raise InputError(f"{path}: state_dict has no {name!r} (the model has one)")
            continue
        if tuple(shapes[name]) != shape:
            raise InputError(
                f"{path}: state_dict[{name!r}] has shape {tuple(shapes[name])} but in_features={features} and "
                f"{how} need {shape}"
            )
    unexpected = [name for name in shapes if name not in expected]
    if strict and unexpected:
        raise InputError(f"{path}: state_dict holds {unexpected[0]!r}, which the model does not have")


def _saved_by(hparams: Mapping[str, Any], model_class: type) -> str:
    """Say which of the package's model classes takes all of ``hparams``, for the message of a class mismatch."""
    from lr_lightning.models import LinearRegression, LogisticRegression

    for candidate in (LogisticRegression, LinearRegression):
        if set(hparams) <= set(_constructor_arguments(candidate)):
            name = candidate.__name__
            return f"the checkpoint holds a {name}, not a {model_class.__name__} (on the command line: --model {name})"
    return "a checkpoint of another model?"
