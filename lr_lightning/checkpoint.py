"""Checkpoints that are safe to load and cannot be half-written.

* :func:`load_checkpoint` is the one place where lr_lightning reads a checkpoint: always
  ``torch.load(..., weights_only=True)`` (tensors and plain containers only, never arbitrary unpickling), local
  files only (Lightning loads remote paths with ``weights_only=False``), and every failure becomes an
  :class:`~lr_lightning.errors.InputError` naming the file: missing, truncated or corrupt (with the previous
  whole checkpoint in the same folder to fall back on), a pickle payload, an ``_instantiator`` entry (which
  Lightning would use to build a class named inside the file) or NaN/infinite weights.
* :mod:`lr_lightning.checkpoint_contents` checks that a loaded checkpoint holds a usable model.
* :class:`AtomicCheckpointIO` writes each checkpoint beside its target and renames it into place, so a run
  killed mid-save leaves the previous file whole, and refuses to write NaN or infinite weights.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import secrets
import struct
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_warn

from lr_lightning.checkpoint_contents import FORBIDDEN_KEYS, non_finite_tensor
from lr_lightning.errors import InputError
from lr_lightning.models.base import TrainingDivergedError

__all__ = [
    "AtomicCheckpointIO",
    "NonFiniteCheckpointError",
    "check_checkpoint_path",
    "load_checkpoint",
]

#: What torch.load raises on a truncated or corrupt file (the weights-only unpickler fails in many ways).
CORRUPT_FILE_ERRORS = (
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    struct.error,
)


class NonFiniteCheckpointError(TrainingDivergedError):
    """A checkpoint was not written because its weights hold NaN or infinite values (training diverged)."""


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


def _content_problem(checkpoint: Any) -> str | None:
    """Say what makes a loaded checkpoint unfit to use whatever model it holds (None: nothing)."""
    if not isinstance(checkpoint, dict):
        return f"not a Lightning checkpoint (a {type(checkpoint).__name__}, not a dict)"
    hparams = checkpoint.get("hyper_parameters")
    found = [key for key in FORBIDDEN_KEYS if key in checkpoint or (isinstance(hparams, dict) and key in hparams)]
    if found:
        return (
            f"refused to load: the checkpoint holds {found[0]!r}, which would make Lightning build a class named "
            "inside the file; lr_lightning builds the model from your config instead. Nothing was run."
        )
    state = checkpoint.get("state_dict")
    name = non_finite_tensor(state) if isinstance(state, dict) else None
    if name is not None:
        return (
            f"refused to load: state_dict tensor {name!r} holds NaN or infinite values (the weights of a diverged "
            "run); resume from an earlier checkpoint or start a fresh run"
        )
    return None


def _is_temporary(path: Path) -> bool:
    """Tell hidden files, such as the ``.{name}.*.tmp`` that :class:`AtomicCheckpointIO` writes first."""
    return path.name.startswith(".")


def _whole_neighbours(path: Path) -> list[Path]:
    """Other checkpoints in the same folder that load and hold finite weights, newest first.

    Hidden files (the temporaries of :class:`AtomicCheckpointIO`, whole or not) are not checkpoints.
    """
    candidates = []
    for candidate in path.parent.glob("*.ckpt"):
        if _is_temporary(candidate) or candidate.resolve() == path.resolve():
            continue
        try:
            candidates.append((candidate.stat().st_mtime, candidate))
        except OSError:  # removed since the listing
            continue
    whole = []
    for _, candidate in sorted(candidates, key=lambda pair: pair[0], reverse=True):
        try:
            checkpoint = torch.load(candidate, weights_only=True, map_location="cpu")
        except Exception:
            continue
        if _content_problem(checkpoint) is None:
            whole.append(candidate)
    return whole


def _neighbour_hint(path: Path) -> str:
    neighbours = _whole_neighbours(path)
    return f"; the previous checkpoint {neighbours[0]} is whole" if neighbours else ""


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check it.

    Args:
        path: a local checkpoint file.
        map_location: as for :func:`torch.load`.

    Returns:
        The checkpoint dictionary.

    Raises:
        InputError: see :func:`check_checkpoint_path`; a pickle payload; a truncated or corrupt file (naming the
            previous whole checkpoint in the folder, if any); an ``_instantiator`` or ``_class_path`` entry; a
            ``state_dict`` tensor with NaN or infinite values (naming the tensor).

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
    except CORRUPT_FILE_ERRORS as error:
        raise _corrupt(local, error) from None
    problem = _content_problem(checkpoint)
    if problem is not None:
        hint = _neighbour_hint(local) if "NaN or infinite" in problem else ""
        raise InputError(f"{local}: {problem}{hint}")
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
    details = str(error).splitlines()[0] if str(error) else "no details"
    return InputError(
        f"{path}: the checkpoint is truncated or corrupt ({type(error).__name__}: {details}){_neighbour_hint(path)}"
    )


# -- saving ------------------------------------------------------------------------------------------------------


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save checkpoints atomically and durably: write a temporary file beside the target, fsync, rename, fsync.

    Promises, for a local target on a POSIX system:

    * at any instant the target path holds the old whole file or the new whole one, never a prefix of either
      (``os.replace`` within one folder is atomic);
    * once :meth:`save_checkpoint` returns, the new checkpoint survives a crash or power loss on filesystems that
      honour ``fsync`` (the file's data is fsynced before the rename, the folder's entry after it);
    * the file gets the permissions a new file gets under the current umask (0644 under umask 022), like the
      rest of a run;
    * temporaries that a killed save left behind (``.{target name}.*.tmp``) are removed on the next save of the
      same target; :func:`load_checkpoint` ignores them;
    * a checkpoint whose ``state_dict`` holds NaN or infinite values is not written
      (:class:`NonFiniteCheckpointError`; see :meth:`save_checkpoint`).

    Loading goes through :func:`load_checkpoint`.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        """Write ``checkpoint`` to ``path`` through a temporary file beside it.

        Raises:
            NonFiniteCheckpointError: a ``state_dict`` tensor holds NaN or infinite values; nothing was written
                and the previous file at ``path`` is untouched. While a :class:`TrainingDivergedError` is being
                handled (``OnExceptionCheckpoint`` saving after a diverged step) it warns instead, so the
                divergence stays the error the user sees.

        """
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        target = Path(path)
        state = checkpoint.get("state_dict")
        name = non_finite_tensor(state) if isinstance(state, Mapping) else None
        if name is not None:
            message = (
                f"{target}: no checkpoint was written: state_dict tensor {name!r} holds NaN or infinite values "
                "(training diverged); the previous file at this path, if any, is unchanged"
            )
            if isinstance(sys.exc_info()[1], TrainingDivergedError):
                rank_zero_warn(message)
                return
            raise NonFiniteCheckpointError(message)
        filesystem = get_filesystem(str(path))
        filesystem.makedirs(str(target.parent), exist_ok=True)
        _remove_stale_temporaries(target)
        handle, temporary = _create_temporary(target)
        try:
            with os.fdopen(handle, "wb") as stream:
                torch.save(checkpoint, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Load with :func:`load_checkpoint` (always ``weights_only=True``)."""
        return load_checkpoint(path, map_location=map_location if map_location is not None else "cpu")


def _temporary_pattern(target: Path) -> re.Pattern[str]:
    """Names of the temporaries of ``target``: ours (hex) and ``tempfile.mkstemp``'s (letters, digits, _)."""
    return re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]+\.tmp")


def _create_temporary(target: Path) -> tuple[int, Path]:
    """Create ``.{name}.{random}.tmp`` beside ``target`` with mode 0666 less the umask (as ``open`` would)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", str(target.parent))


def _remove_stale_temporaries(target: Path) -> None:
    """Remove temporaries of ``target`` that a killed save left behind (only ``.{target.name}.*.tmp`` files)."""
    pattern = _temporary_pattern(target)
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)


def _fsync_directory(folder: Path) -> None:
    """Flush the folder's entries (the rename) to disk; POSIX only, skipped where the filesystem cannot."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(descriptor)
