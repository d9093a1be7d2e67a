"""Checkpoints that are safe to load and cannot be half-written.

* :func:`load_checkpoint` is the one place where lr_lightning reads a checkpoint: always
  ``torch.load(..., weights_only=True)`` (tensors and plain containers only, never arbitrary unpickling), local
  files only (Lightning loads remote paths with ``weights_only=False``), and every failure becomes an
  :class:`~lr_lightning.errors.InputError` naming the file: missing, truncated or corrupt (with the previous
  whole checkpoint in the same folder to fall back on), a pickle payload, or an ``_instantiator`` entry (which
  Lightning would use to build a class named inside the file).
* :class:`AtomicCheckpointIO` writes each checkpoint beside its target and renames it into place, so a run
  killed mid-save leaves the previous file whole.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lr_lightning.errors import InputError

__all__ = ["AtomicCheckpointIO", "check_checkpoint_path", "load_checkpoint"]

#: Hyperparameter keys a checkpoint may not hold: Lightning builds the class named there when loading.
FORBIDDEN_KEYS = ("_instantiator", "_class_path")


def check_checkpoint_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a local Path after refusing URLs and missing files.

    Raises:
        InputError: a URL (``http://``, ``https://``, ``s3://``, ...) or a path that is not an existing file.

    """
    text = os.fspath(path)
    # Lightning's loader treats any path starting with "http" as a URL, so a local "http…" name is refused too.
    if "://" in text or text.startswith("http"):
        raise InputError(
            f"{text}: checkpoints are loaded from local files only (Lightning would load a URL with "
            "weights_only=False, which can run code); download the file and pass its path"
        )
    local = Path(text)
    if not local.is_file():
        raise InputError(f"{text}: no such checkpoint file (a missing --ckpt_path never starts a fresh run)")
    return local


def _whole_neighbours(path: Path) -> list[Path]:
    """Other checkpoints in the same folder that load, newest first."""
    whole = []
    for candidate in sorted(path.parent.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True):
        if candidate.resolve() == path.resolve():
            continue
        try:
            torch.load(candidate, weights_only=True, map_location="cpu")
        except Exception:
            continue
        whole.append(candidate)
    return whole


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check it.

    Args:
        path: a local checkpoint file.
        map_location: as for :func:`torch.load`.

    Returns:
        The checkpoint dictionary.

    Raises:
        InputError: see :func:`check_checkpoint_path`; a pickle payload; a truncated or corrupt file (naming the
            previous whole checkpoint in the folder, if any); an ``_instantiator`` entry.

    """
    local = check_checkpoint_path(path)
    try:
        checkpoint = torch.load(local, weights_only=True, map_location=map_location)
    except pickle.UnpicklingError as error:
        if not _intact_zip(local):
            raise _corrupt(local, error) from None
        raise InputError(
            f"{local}: refused to load: the file holds Python objects that only full unpickling could build "
            f"(weights_only=True allows tensors and plain values; {str(error).splitlines()[0]}). Nothing was run."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as error:
        raise _corrupt(local, error) from None
    if not isinstance(checkpoint, dict):
        raise InputError(f"{local}: not a Lightning checkpoint (a {type(checkpoint).__name__}, not a dict)")
    hparams = checkpoint.get("hyper_parameters")
    found = [key for key in FORBIDDEN_KEYS if key in checkpoint or (isinstance(hparams, dict) and key in hparams)]
    if found:
        raise InputError(
            f"{local}: refused to load: the checkpoint holds {found[0]!r}, which would make Lightning build a class "
            "named inside the file; lr_lightning builds the model from your config instead. Nothing was run."
        )
    return checkpoint


def _intact_zip(path: Path) -> bool:
    """Whether the file is a zip archive whose members all match their CRCs (read without unpickling)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _corrupt(path: Path, error: BaseException) -> InputError:
    """Build the error for a truncated or corrupt file, naming the newest whole checkpoint beside it."""
    neighbours = _whole_neighbours(path)
    hint = f"; the previous checkpoint {neighbours[0]} is whole" if neighbours else ""
    details = str(error).splitlines()[0] if str(error) else "no details"
    return InputError(f"{path}: the checkpoint is truncated or corrupt ({type(error).__name__}: {details}){hint}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save checkpoints atomically: write a temporary file in the target's folder, fsync, then rename.

    ``os.replace`` within one filesystem is atomic, so at every instant the target path holds either the previous
    whole checkpoint or the new whole one, never a prefix of it. Loading goes through :func:`load_checkpoint`.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        """Write ``checkpoint`` to ``path`` through a temporary file beside it."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        target = Path(path)
        filesystem = get_filesystem(str(path))
        filesystem.makedirs(str(target.parent), exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                torch.save(checkpoint, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Load with :func:`load_checkpoint` (always ``weights_only=True``)."""
        return load_checkpoint(path, map_location=map_location if map_location is not None else "cpu")
