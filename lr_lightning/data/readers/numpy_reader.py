"""NumPy files: a ``.npy`` 2-D array (memory-mapped), a ``.npz`` archive of a features array and a targets array.

Both are loaded with ``allow_pickle=False``: a file holding Python objects is refused, never executed, and a file
that is not what its suffix claims gets a message saying so rather than numpy's own.
"""

from __future__ import annotations

import tokenize
import typing
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lr_lightning.data.readers.columns import Table, choose_columns
from lr_lightning.errors import InputError, one_line

__all__ = ["NPZ_FEATURE_KEYS", "NPZ_TARGET_KEYS", "load_npy", "npy_column_names", "read_npy", "read_npz"]

#: Array names looked up in a ``.npz`` file, in order, when ``features``/``targets`` do not name them.
NPZ_FEATURE_KEYS = ("features", "X", "x")
NPZ_TARGET_KEYS = ("targets", "y", "Y")

#: What np.load raises for files that are not what they claim: a garbled header is parsed as a Python literal.
_UNREADABLE = (ValueError, SyntaxError, tokenize.TokenError, OSError, EOFError, zipfile.BadZipFile)

_OBJECTS = (
    "cannot be read without unpickling: it holds Python objects (an object array), which are never loaded for "
    "safety; save a numeric array, e.g. np.save(path, array.astype(np.float64))"
)


def _numeric_matrix(array: np.ndarray, what: str, allow_labels: bool = False) -> np.ndarray:
    """Check that an array holds numbers (or, for labels, strings) and has one or two dimensions."""
    if array.ndim > 2 or array.ndim == 0:
        raise InputError(f"{what}: expected a 2-D array (rows, columns), got shape {array.shape}")
    kind = array.dtype.kind
    if kind not in "biuf" and not (allow_labels and kind in "US"):
        raise InputError(f"{what}: expected numbers, got an array of dtype {array.dtype}")
    return array


def _holds_objects(handle: typing.IO[bytes]) -> bool:
    """Tell whether a stream starts with a valid ``.npy`` header whose dtype holds Python objects.

    Only such a file may be called an object array; np.load also asks for ``allow_pickle`` when a file is not a
    NumPy file at all (it then tries to unpickle it).
    """
    try:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(handle)
    except Exception:  # not a NumPy header: whatever numpy raises for it
        return False
    return bool(dtype.hasobject)


def _load(path: Path) -> np.ndarray | np.lib.npyio.NpzFile:
    """Open a ``.npy`` (memory-mapped) or ``.npz`` file with ``allow_pickle=False``, any failure an InputError."""
    npy = path.suffix.lower() == ".npy"
    try:
        # A memory map: the base copies the rows it needs into the training dtype chunk by chunk, so a large
        # .npy is read once rather than loaded and then copied.
        loaded = np.load(path, mmap_mode="r" if npy else None, allow_pickle=False)
    except _UNREADABLE as error:
        with path.open("rb") as handle:
            if _holds_objects(handle):
                raise InputError(f"{path}: {_OBJECTS}") from None
        reason = one_line(error)
        if "pickled" in reason or "allow_pickle" in reason:  # np.load tried to unpickle it: no NumPy header
            reason = "no NumPy header: not written by np.save" if npy else "not a zip archive of arrays"
        raise InputError(f"{path}: not a readable NumPy file ({reason})") from None
    if npy and not isinstance(loaded, np.ndarray):
        loaded.close()
        raise InputError(f"{path}: not a readable NumPy file (a .npz archive named .npy; rename it to .npz)")
    if not npy and not isinstance(loaded, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: not a readable NumPy file (a single .npy array named .npz; rename it to .npy)")
    return loaded


def _take_columns(array: np.ndarray, columns: list[int]) -> np.ndarray:
    """Return columns of a (memory-mapped) array: a view when they are consecutive, else a copy of those only."""
    if columns and columns == list(range(columns[0], columns[-1] + 1)):
        return array[:, columns[0] : columns[-1] + 1]
    return array[:, columns]


def load_npy(path: Path) -> np.ndarray:
    """Open a ``.npy`` file as a memory-mapped 2-D numeric array (rows, columns) of at least one row."""
    array = _load(path)
    assert isinstance(array, np.ndarray)
    if array.ndim != 2:
        raise InputError(f"{path}: expected a 2-D array (rows, columns), got shape {array.shape}")
    _numeric_matrix(array, str(path))
    if array.shape[0] == 0:
        raise InputError(f"{path}: the array has no rows")
    return array


def npy_column_names(array: np.ndarray) -> list[str]:
    """Return the names of a 2-D array's columns: ``c0``, ``c1``, ..."""
    return [f"c{j}" for j in range(array.shape[1])]


def read_npy(
    path: Path,
    features: list[str] | None,
    targets: list[str] | None,
    *,
    labels: bool,
    need_targets: bool,
    delimiter: str = ",",
) -> Table:
    """Read a 2-D numeric array whose columns are named ``c0``, ``c1``, ...; the columns stay memory-mapped views.

    ``labels`` changes nothing: the array holds numbers, which are read as class labels like any others.
    ``delimiter`` is for CSV only (:func:`~lr_lightning.data.readers.read_table` refuses another one).
    """
    array = load_npy(path)
    header = npy_column_names(array)
    feature_names, target_names = choose_columns(path, header, features, targets, need_targets)
    feature_index = [header.index(name) for name in feature_names]
    target_index = [header.index(name) for name in target_names]
    return Table(_take_columns(array, feature_index), _take_columns(array, target_index), feature_names, target_names)


def _npz_array(
    archive: np.lib.npyio.NpzFile, name: str | None, defaults: Sequence[str], path: Path
) -> tuple[str, np.ndarray]:
    """Return the key and the array named ``name`` (or the first of ``defaults`` present)."""
    keys = list(archive.keys())
    candidates = [name] if name is not None else list(defaults)
    for key in candidates:
        if key in keys:
            try:
                array = archive[key]
            except _UNREADABLE as error:
                assert archive.zip is not None  # None only once the archive is closed
                with archive.zip.open(f"{key}.npy") as handle:
                    if _holds_objects(handle):
                        raise InputError(f"{path}: array {key!r} {_OBJECTS}") from None
                raise InputError(f"{path}: array {key!r} is not a readable NumPy array ({one_line(error)})") from None
            if not isinstance(array, np.ndarray):  # np.load hands back the raw bytes of a member that is no array
                raise InputError(f"{path}: {key!r} is not a NumPy array (no .npy header)")
            return key, array
    wanted = repr(name) if name is not None else " or ".join(map(repr, defaults))
    raise InputError(f"{path}: no array named {wanted}; the file holds {', '.join(map(repr, keys)) or 'nothing'}")


def read_npz(
    path: Path,
    features: list[str] | None,
    targets: list[str] | None,
    *,
    labels: bool,
    need_targets: bool,
    delimiter: str = ",",
) -> Table:
    """Read a features array (N, D) and a targets array (N,) or (N, K) from an archive, by key.

    ``features`` and ``targets`` name one array each (default: :data:`NPZ_FEATURE_KEYS`, :data:`NPZ_TARGET_KEYS`);
    the columns are named ``x0``, ``x1``, ... and ``y`` (or ``y0``, ``y1``, ...; ``label`` for class labels, which
    may be strings). ``delimiter`` is for CSV only.
    """
    for chosen, what in ((features, "features"), (targets, "targets")):
        if chosen is not None and len(chosen) != 1:
            raise InputError(f"{path}: for a .npz file, {what} names one array, got {chosen}")
    archive = _load(path)
    assert isinstance(archive, np.lib.npyio.NpzFile)
    with archive:
        x_key, x = _npz_array(archive, features[0] if features else None, NPZ_FEATURE_KEYS, path)
        y_key, y = (
            _npz_array(archive, targets[0] if targets else None, NPZ_TARGET_KEYS, path) if need_targets else ("", None)
        )
    _numeric_matrix(x, f"{path}, {x_key!r}")
    x = x[:, None] if x.ndim == 1 else x
    if x.shape[0] == 0:
        raise InputError(f"{path}: the features have no rows")
    target_names: list[str] = []
    if y is not None:
        _numeric_matrix(y, f"{path}, {y_key!r}", allow_labels=labels)
        if y.shape[0] != x.shape[0]:
            raise InputError(f"{path}: {x_key!r} has {x.shape[0]} rows but {y_key!r} has {y.shape[0]}")
        if labels:
            if y.ndim != 1 and y.shape[1] != 1:
                raise InputError(f"{path}: class labels must be one column, got shape {y.shape}")
            y = y.reshape(-1)
            target_names = ["label"]
        else:
            y = y[:, None] if y.ndim == 1 else y
            target_names = ["y"] if y.shape[1] == 1 else [f"y{k}" for k in range(y.shape[1])]
    return Table(x, y, [f"x{j}" for j in range(x.shape[1])], target_names)
