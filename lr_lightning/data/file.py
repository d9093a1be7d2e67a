"""User data from files: CSV, ``.npy``, ``.npz`` and Parquet, with optional files per split and to predict on.

Every mistake in a file raises :class:`~lr_lightning.errors.InputError` naming the file, the row (for CSV the line
number a text editor shows, the header being line 1) and the column, while the CLI instantiates the data: before
any run folder or checkpoint exists.
"""

from __future__ import annotations

import codecs
import collections
import csv
import decimal
import io
import math
import re
import tokenize
import typing
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.checks import FLOAT32_MAX, check_finite, float32_overflow_message
from lr_lightning.data.contract import TASKS, ArrayData
from lr_lightning.data.rows import BLOCK_ROWS
from lr_lightning.errors import InputError, one_line

__all__ = ["FILE_FORMATS", "FileDataModule"]

#: File suffixes this module reads.
FILE_FORMATS = (".csv", ".npy", ".npz", ".parquet")

#: Array names looked up in a ``.npz`` file, in order, when ``features``/``targets`` do not name them.
NPZ_FEATURE_KEYS = ("features", "X", "x")
NPZ_TARGET_KEYS = ("targets", "y", "Y")


@dataclass
class _Table:
    """Columns read from one file: features (n, D) numeric, targets (n, K) numeric or (n,) raw labels.

    Attributes:
        lines: for a CSV whose rows were scanned (always when it has a label column), its skipped lines, to turn
            row indices into line numbers; ``None`` for arrays, whose rows are counted from 0.
        too_large: the message naming the first cell beyond float32's range, if any (see
            :attr:`~lr_lightning.data.base.ArrayData.too_large_for_float32`).

    """

    features: np.ndarray
    targets: np.ndarray | None
    feature_names: list[str]
    target_names: list[str]
    lines: _Lines | None = None
    too_large: str | None = None

    def row_number(self, row: int) -> int:
        """How messages name row ``row`` (0-based): a CSV's line number, an array's index."""
        return self.lines.line_of(row) if self.lines is not None else row


def _as_names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return [str(value)]
    return [str(v) for v in value]


def _check_unique(names: Sequence[str], what: str, where: str) -> None:
    duplicates = sorted(name for name, count in collections.Counter(names).items() if count > 1)
    if duplicates:
        raise InputError(f"{where}: duplicate {what} {duplicates}; names must be unique")


def _resolve_columns(
    available: list[str],
    features: list[str] | None,
    targets: list[str] | None,
    where: str,
) -> tuple[list[str], list[str]]:
    """Pick feature and target column names: by name, or the last column as target and the rest as features."""
    for role, chosen in (("feature", features), ("target", targets)):
        missing = [name for name in chosen or [] if name not in available]
        if missing:
            raise InputError(f"{where}: no {role} column {missing[0]!r}; the columns are {available}")
    if targets is None:
        targets = [available[-1]]
    if features is None:
        features = [name for name in available if name not in targets]
    overlap = sorted(set(features) & set(targets))
    if overlap:
        raise InputError(f"{where}: column {overlap[0]!r} is both a feature and a target")
    if not features:
        raise InputError(f"{where}: no feature columns left besides the targets {targets}")
    _check_unique(features, "feature names", where)
    _check_unique(targets, "target names", where)
    if not targets:
        raise InputError(f"{where}: no target column")
    return features, targets


# -- CSV ------------------------------------------------------------------------------------------------------------

#: ASCII whitespace: what numpy's parser strips around a number (``str.strip()`` would strip Unicode spaces too).
_SPACE = " \t\r\n\v\f"

#: Bytes of a CSV scanned at a time when checking its rows' widths.
_SCAN_BYTES = 1 << 24


def _read_csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: Excel writes a byte-order mark
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError:  # the text layer decodes ahead: the bad byte may be in any early row
        raise _encoding_error(path, None) from None
    if header is None:
        raise InputError(f"{path}: the file is empty (expected a header row of column names, then data rows)")
    if not header:
        raise InputError(f"{path}, row 1: the header row is blank (expected the column names on the first line)")
    for name in header:  # before stripping: a quoted trailing line break also moves the data to another line
        if "\n" in name or "\r" in name:
            raise InputError(
                f"{path}, row 1, column {name.strip()!r}: a column name holds a line break (inside quotes); the "
                "header must be the first line, one name per cell"
            )
    names = [name.strip() for name in header]
    for column, name in enumerate(names, start=1):
        if not name:
            raise InputError(f"{path}, row 1, column {column}: empty column name in the header")
    _check_unique(names, "column names", str(path))
    return names


def _encoding_error(path: Path, header: list[str] | None) -> InputError:
    """Build the error naming the row and column of the first byte of ``path`` that is not UTF-8."""
    raw = path.read_bytes()
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        raw[start:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = start + error.start
    else:  # pragma: no cover - only called after a decoding error
        return InputError(f"{path}: the file is not UTF-8 text")
    line_start = raw.rfind(b"\n", 0, offset) + 1
    row = raw.count(b"\n", 0, offset) + 1
    if header is None and row > 1:  # the text layer decodes ahead: the header itself may be fine
        header = [name.strip() for name in next(csv.reader([raw[start : raw.find(b"\n")].decode("utf-8")]))]
    # The cells before the bad byte, plus one: the index of the cell that holds it.
    before = raw[line_start:offset].decode("utf-8", errors="replace")
    index = len(next(csv.reader([before + "x"]))) - 1
    column = repr(header[index]) if header is not None and row > 1 and index < len(header) else str(index + 1)
    return InputError(
        f"{path}, row {row}, column {column}: byte 0x{raw[offset]:02x} is not UTF-8 text; the file must be "
        "UTF-8 (save it again as UTF-8, e.g. 'CSV UTF-8' in a spreadsheet)"
    )


def _require_feature_columns(path: Path, header: list[str], features: list[str]) -> None:
    """Check that a predict file has every feature column of the training file, by name (in any order)."""
    missing = [name for name in features if name not in header]
    if missing:
        raise InputError(
            f"{path}: no feature column {missing[0]!r}; the model takes {features} (the file has {header})"
        )


def _choose_columns(
    path: Path, header: list[str], features: list[str] | None, targets: list[str] | None, need_targets: bool
) -> tuple[list[str], list[str]]:
    """Feature and target column names of a file with columns ``header``.

    A training or evaluation file resolves them (:func:`_resolve_columns`); a predict file must have the model's
    feature columns, and its target column may be missing.
    """
    if need_targets:
        return _resolve_columns(header, features, targets, str(path))
    assert features is not None
    _require_feature_columns(path, header, features)
    return features, []


@dataclass
class _Lines:
    """The data lines of a CSV that hold no cells: skipped, as numpy skips empty lines.

    Attributes:
        skipped: line numbers (as an editor counts them) of every empty or whitespace-only line after the header.
        whitespace: the whitespace-only ones among them, which numpy's parser does not skip by itself.

    """

    skipped: list[int]
    whitespace: list[int]

    def line_of(self, row: int) -> int:
        """Return the line number of data row ``row`` (0-based, in parsed order)."""
        line = row + 2
        for skipped in self.skipped:  # in increasing order
            if skipped > line:
                break
            line += 1
        return line


def _is_blank(row: list[str]) -> bool:
    """Tell whether a CSV record is an empty or whitespace-only line (skipped); ``,,`` is a row of empty cells."""
    return not row or (len(row) == 1 and not row[0].strip(_SPACE))


def _check_row_widths(path: Path, width: int) -> _Lines:
    """Check that every data line has ``width`` cells, and find the blank lines (skipped).

    numpy's parser reads only the chosen columns (``usecols``) and ignores extra cells, so the widths are checked
    here: a count of commas per line, in C (``bytes.count``), for files without quotes; with quotes, the ``csv``
    module's count of cells.
    """
    skipped: list[int] = []
    whitespace: list[int] = []
    with path.open("rb") as handle:
        handle.readline()  # the header: one line (a name with a line break was refused)
        line = 1
        carry = b""
        while True:
            chunk = handle.read(_SCAN_BYTES)
            block = carry + chunk if carry else chunk
            if b'"' in block:
                return _check_row_widths_quoted(path, width)
            lines = block.split(b"\n") if block else []
            carry = lines.pop() if chunk else b""  # a line the next chunk continues; at the end, the last line
            counts = [text.count(b",") for text in lines]
            if width == 1:  # every line has no comma: find the blank ones by their content
                odd = [i for i, text in enumerate(lines) if not text.strip(b" \t\r\v\f")]
            elif counts.count(width - 1) != len(counts):
                odd = [i for i, count in enumerate(counts) if count != width - 1]
            else:
                odd = []
            for i in odd:
                number = line + 1 + i
                if lines[i].strip(b" \t\r\v\f"):
                    raise InputError(
                        f"{path}, row {number}: {counts[i] + 1} cells but the header names {width} columns"
                    )
                skipped.append(number)
                if lines[i] not in (b"", b"\r"):
                    whitespace.append(number)
            line += len(lines)
            if not chunk:
                return _Lines(skipped, whitespace)


def _check_row_widths_quoted(path: Path, width: int) -> _Lines:
    """:func:`_check_row_widths` for a file with quotes, which may hold commas and line breaks inside cells."""
    skipped: list[int] = []
    whitespace: list[int] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            number = reader.line_num
            if _is_blank(row):
                skipped.append(number)
                if row:
                    whitespace.append(number)
            elif len(row) != width:
                raise InputError(f"{path}, row {number}: {len(row)} cells but the header names {width} columns")
    return _Lines(skipped, whitespace)


def _parse_number(cell: str) -> float | None:
    """Read the number in a CSV cell as numpy's parser does; ``None`` if numpy cannot read one.

    Python's ``float()`` also accepts ``1_000`` and non-ASCII digits; numpy does not, and the two must agree.
    """
    text = cell.strip(_SPACE)
    if not text or "_" in text or not text.isascii():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _diagnose_csv(path: Path, header: list[str], numeric_columns: list[str], too_large: bool = False) -> str | None:
    """Find the first cell that is not a finite number (or a row of the wrong width) and raise an error naming it.

    Only runs after the fast parser has failed or found a bad value, so its speed does not matter; it reports
    the line number a text editor shows, counting blank lines, and reads cells as numpy does
    (:func:`_parse_number`). With ``too_large``, it returns the message naming the first cell whose magnitude
    float32 cannot hold (``None`` if there is none) instead.
    """
    indices = [header.index(name) for name in numeric_columns]
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: Excel writes a byte-order mark
            reader = csv.reader(handle)
            next(reader)
            for row in reader:
                line = reader.line_num
                if _is_blank(row):
                    continue
                if len(row) != len(header):
                    raise InputError(f"{path}, row {line}: {len(row)} cells but the header names {len(header)} columns")
                for index in indices:
                    cell = row[index].strip(_SPACE)
                    where = f"{path}, row {line}, column {header[index]!r}"
                    value = _parse_number(cell)
                    if not cell:
                        raise InputError(
                            f"{where}: '' is not a number (an empty cell: fill in or remove the missing value)"
                        )
                    if value is None:
                        raise InputError(f"{where}: {cell!r} is not a number")
                    if not math.isfinite(value):
                        raise InputError(f"{where}: {cell} is not a finite number (remove or fill the missing values)")
                    if too_large and abs(value) > FLOAT32_MAX:
                        return float32_overflow_message(where, cell)
    except UnicodeDecodeError:
        raise _encoding_error(path, header) from None
    return None


def _csv_source(path: Path, lines: _Lines | None) -> Path | io.StringIO:
    """Return what numpy parses: the file, or, with whitespace-only lines, its text with those lines emptied."""
    if lines is None or not lines.whitespace:
        return path
    text = path.read_bytes().split(b"\n")
    for number in lines.whitespace:
        text[number - 1] = b""
    return io.StringIO(b"\n".join(text).decode("utf-8-sig"))


def _load_csv_columns(path: Path, lines: _Lines | None, header: list[str], names: list[str], dtype: type) -> np.ndarray:
    """Columns ``names`` of a CSV as an array (n, len(names)); numpy's C parser does the work (1e6 rows/s).

    When ``names`` are all the columns, in order, numpy reads every cell and refuses rows of another width itself;
    otherwise it reads only those columns (``usecols``) and ignores extra cells, so :func:`_check_row_widths` must
    have run (``lines``).
    """
    with warnings.catch_warnings():
        # A header-only file: reported as an InputError by the caller, not as numpy's warning.
        warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
        return np.loadtxt(
            _csv_source(path, lines),
            delimiter=",",
            skiprows=1,
            usecols=None if names == header else [header.index(name) for name in names],
            dtype=dtype,
            comments=None,
            quotechar='"',
            ndmin=2,
            encoding="utf-8",
        )


def _read_csv(
    path: Path, features: list[str] | None, targets: list[str] | None, labels: bool, need_targets: bool
) -> _Table:
    header = _read_csv_header(path)
    feature_names, target_names = _choose_columns(path, header, features, targets, need_targets)
    numeric = feature_names + ([] if labels else target_names)
    try:
        # Reading every column, numpy checks the rows' widths itself: the scan runs only if it fails (it may
        # have met a whitespace-only line, which is skipped like a blank one).
        lines = None if numeric == header else _check_row_widths(path, len(header))
        try:
            values = _load_csv_columns(path, lines, header, numeric, np.float64)
        except ValueError as error:
            if lines is not None or isinstance(error, UnicodeDecodeError):
                raise
            lines = _check_row_widths(path, len(header))  # raises for a row of another width
            if not lines.whitespace:
                raise
            values = _load_csv_columns(path, lines, header, numeric, np.float64)
        target_values = (
            _load_csv_columns(path, lines, header, target_names, str)[:, 0] if labels and target_names else None
        )
    except UnicodeDecodeError:
        raise _encoding_error(path, header) from None
    except ValueError:
        _diagnose_csv(path, header, numeric)
        raise  # the diagnosis found nothing: a parser problem we do not know, keep numpy's message
    if values.shape[0] == 0:
        raise InputError(f"{path}: the file has a header but no data rows")
    try:
        too_large = check_finite(values, numeric, str(path), first_row=2)
    except InputError:
        _diagnose_csv(path, header, numeric)  # the same cell, named by its line number
        raise
    if too_large is not None:
        too_large = _diagnose_csv(path, header, numeric, too_large=True) or too_large
    n_features = len(feature_names)
    if labels:
        table_targets = target_values
    elif target_names:
        table_targets = values[:, n_features:]
    else:
        table_targets = None
    return _Table(values[:, :n_features], table_targets, feature_names, target_names, lines, too_large)


# -- NumPy and Parquet ----------------------------------------------------------------------------------------------


def _numeric_matrix(array: np.ndarray, what: str, allow_labels: bool = False) -> np.ndarray:
    """Check that an array holds numbers (or, for labels, strings) and has at most two dimensions."""
    if array.ndim > 2 or array.ndim == 0:
        raise InputError(f"{what}: expected a 2-D array (rows, columns), got shape {array.shape}")
    kind = array.dtype.kind
    if kind not in "biuf" and not (allow_labels and kind in "US"):
        raise InputError(f"{what}: expected numbers, got an array of dtype {array.dtype}")
    return array


def _holds_objects(handle: typing.BinaryIO) -> bool:
    """Whether a stream starts with a valid ``.npy`` header whose dtype holds Python objects.

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


#: What np.load raises for files that are not what they claim: a garbled header is parsed as a Python literal.
_UNREADABLE = (ValueError, SyntaxError, tokenize.TokenError, OSError, EOFError, zipfile.BadZipFile)

_OBJECTS = (
    "cannot be read without unpickling: it holds Python objects (an object array), which are never loaded for "
    "safety; save a numeric array, e.g. np.save(path, array.astype(np.float64))"
)


def _load_numpy(path: Path) -> np.ndarray | np.lib.npyio.NpzFile:
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


def _read_npy(path: Path, features: list[str] | None, targets: list[str] | None, need_targets: bool) -> _Table:
    array = _load_numpy(path)
    assert isinstance(array, np.ndarray)
    if array.ndim != 2:
        raise InputError(f"{path}: expected a 2-D array (rows, columns), got shape {array.shape}")
    _numeric_matrix(array, str(path))
    if array.shape[0] == 0:
        raise InputError(f"{path}: the array has no rows")
    header = [f"c{j}" for j in range(array.shape[1])]
    feature_names, target_names = _choose_columns(path, header, features, targets, need_targets)
    feature_index = [header.index(name) for name in feature_names]
    target_index = [header.index(name) for name in target_names]
    return _Table(_take_columns(array, feature_index), _take_columns(array, target_index), feature_names, target_names)


def _take_columns(array: np.ndarray, columns: list[int]) -> np.ndarray:
    """Columns of a (memory-mapped) array: a view when they are consecutive, else a copy of those columns only."""
    if columns and columns == list(range(columns[0], columns[-1] + 1)):
        return array[:, columns[0] : columns[-1] + 1]
    return array[:, columns]


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
                with archive.zip.open(f"{key}.npy") as handle:
                    if _holds_objects(handle):
                        raise InputError(f"{path}: array {key!r} {_OBJECTS}") from None
                raise InputError(f"{path}: array {key!r} is not a readable NumPy array ({one_line(error)})") from None
            if not isinstance(array, np.ndarray):  # np.load hands back the raw bytes of a member that is no array
                raise InputError(f"{path}: {key!r} is not a NumPy array (no .npy header)")
            return key, array
    wanted = repr(name) if name is not None else " or ".join(map(repr, defaults))
    raise InputError(f"{path}: no array named {wanted}; the file holds {', '.join(map(repr, keys)) or 'nothing'}")


def _read_npz(
    path: Path, features: list[str] | None, targets: list[str] | None, labels: bool, need_targets: bool
) -> _Table:
    for chosen, what in ((features, "features"), (targets, "targets")):
        if chosen is not None and len(chosen) != 1:
            raise InputError(f"{path}: for a .npz file, {what} names one array, got {chosen}")
    archive = _load_numpy(path)
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
    return _Table(x, y, [f"x{j}" for j in range(x.shape[1])], target_names)


def _read_parquet(
    path: Path, features: list[str] | None, targets: list[str] | None, labels: bool, need_targets: bool
) -> _Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet files needs pyarrow (pip install pyarrow)") from None
    try:
        header = list(pq.read_schema(path).names)
    except Exception as error:  # pyarrow raises its own error types for files that are not Parquet
        raise InputError(f"{path}: not a readable Parquet file ({one_line(error)})") from None
    _check_unique(header, "column", str(path))
    feature_names, target_names = _choose_columns(path, header, features, targets, need_targets)
    table = pq.read_table(path, columns=feature_names + target_names)
    if table.num_rows == 0:
        raise InputError(f"{path}: the file has no rows")

    def column(name: str, allow_labels: bool = False) -> np.ndarray:
        values = table.column(name)
        if values.null_count:
            row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}, row {row}, column {name!r}: missing value")
        array = values.to_numpy(zero_copy_only=False)
        if array.dtype == object and allow_labels:
            array = array.astype(str)
        if array.dtype.kind not in "biuf" and not (allow_labels and array.dtype.kind in "US"):
            raise InputError(f"{path}, column {name!r}: expected numbers, got {values.type}")
        return array

    x = np.column_stack([column(name) for name in feature_names]).astype(np.float64, copy=False)
    if not target_names:
        y = None
    elif labels:
        y = column(target_names[0], allow_labels=True)
    else:
        y = np.column_stack([column(name) for name in target_names]).astype(np.float64, copy=False)
    return _Table(x, y, feature_names, target_names)


# -- labels ---------------------------------------------------------------------------------------------------------

#: How a number may be written as a label: an integer, a decimal, an exponent, or NaN/infinity (refused).
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)

#: Integer labels with more digits than this are refused (Python prints at most 4300 digits of an int).
_MAX_LABEL_DIGITS = 4000


def _distinct_labels(labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Return the distinct labels of one file as text, and for each row the index of its label in that list.

    Text is stripped of whitespace; integers (any size) are written exactly; floats as Python writes them
    (``3.0``). Nothing goes through float64 on the way, so ``9007199254740993`` stays itself.
    """
    labels = np.asarray(labels)
    unique, inverse = np.unique(labels, return_inverse=True)
    kind = labels.dtype.kind
    if kind in "iub":
        texts = [str(int(value)) for value in unique]
    elif kind == "f":
        texts = [repr(float(value)) for value in unique]
    else:
        texts = [str(value).strip(_SPACE) for value in unique]
    return texts, inverse.reshape(-1)


def _integer_label(text: str) -> int | None:
    """Return the exact integer a numeric label means (``"7.0"`` and ``"7e0"`` are 7); ``None`` if not whole."""
    number = decimal.Decimal(text)
    if not number.is_finite():
        return None
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    if exponent < 0 and any(digits[exponent:]):
        return None  # a fraction: digits after the point that are not zero
    return int(number)  # exact: no float in between


def _encode_labels(tables: list[tuple[_Table, str]], column: str) -> tuple[list[np.ndarray], list[str]]:
    """Map raw labels of several files to indices ``0..C-1`` shared by all, and return the class names.

    Labels are read as text or exact integers, never through float64, so large integer labels stay distinct
    and exact. When every label of every file is a number, the classes are integers: sorted by value and named
    by that value in decimal (``"3"``, ``"7"``, ``"10"``, or all thirty digits of a thirty-digit label); ``"1"``,
    ``"1.0"`` and ``"01"`` are the one class ``"1"``, and a label that is not a whole number (``0.5``, ``nan``)
    is refused. Otherwise every label is text (``"setosa"``): sorted as text and named as written, stripped of
    surrounding whitespace (then ``"1"`` and ``"1.0"`` are two classes).

    Args:
        tables: ``(table, file name)`` per file; each table's targets are its raw labels (n,).
        column: the name of the label column, for messages.

    """
    distinct = [_distinct_labels(table.targets) for table, _ in tables]  # type: ignore[arg-type]

    def refuse(is_bad: Callable[[str], bool], problem: str) -> None:
        """Raise an error naming the first row (in file order) whose label ``is_bad``."""
        for (texts, inverse), (table, where) in zip(distinct, tables, strict=True):
            bad = [index for index, text in enumerate(texts) if is_bad(text)]
            if bad:
                row = int(np.flatnonzero(np.isin(inverse, bad))[0])
                text = texts[inverse[row]]
                raise InputError(
                    f"{where}, row {table.row_number(row)}, column {column!r}: {problem.format(label=text)}"
                )

    refuse(lambda text: not text, "empty class label")
    all_texts = {text for texts, _ in distinct for text in texts}
    if all(_NUMBER.fullmatch(text) for text in all_texts):
        refuse(
            lambda text: decimal.Decimal(text).is_finite() and decimal.Decimal(text).adjusted() >= _MAX_LABEL_DIGITS,
            f"label {{label}} has more than {_MAX_LABEL_DIGITS} digits; use text labels",
        )
        values = {text: _integer_label(text) for text in all_texts}
        refuse(
            lambda text: values[text] is None,
            "label {label} is not an integer; classification needs class labels (use task: regression for "
            "continuous targets)",
        )
        classes = sorted({value for value in values.values() if value is not None})
        class_names = [str(value) for value in classes]
        index = {value: position for position, value in enumerate(classes)}
        class_of = {text: index[value] for text, value in values.items() if value is not None}
    else:
        class_names = sorted(all_texts)
        class_of = {text: position for position, text in enumerate(class_names)}
    encoded = [np.array([class_of[text] for text in texts], dtype=np.int64)[inverse] for texts, inverse in distinct]
    return encoded, class_names


# -- the DataModule -------------------------------------------------------------------------------------------------


class FileDataModule(InMemoryDataModule):
    """Regression or classification data from a CSV, ``.npy``, ``.npz`` or Parquet file.

    Columns:

    * **CSV** (comma-separated, header row of unique names): ``targets`` and ``features`` choose columns by name.
      By default the last column is the target and every other column a feature. Cells must be numbers, except
      the label column of classification data.
    * **.npy**: one 2-D numeric array (rows, columns); its columns are named by their index, ``"0"``, ``"1"``,
      ..., so ``targets: "0"`` picks the first column. By default the last column is the target. The file is
      memory-mapped, not read into memory twice.
    * **.npz**: arrays named ``features`` (or ``X``) of shape (N, D) and ``targets`` (or ``y``) of shape (N,) or
      (N, K); ``features``/``targets`` name other arrays. Features are named ``x0``, ``x1``, ...
    * **Parquet** (needs pyarrow): columns by name, as for CSV.

    NumPy files are loaded with ``allow_pickle=False``: a file holding Python objects is refused, never executed.

    Splits: without split files, the rows of ``path`` are split by ``val_fraction``/``test_fraction`` with
    ``seed`` (a fraction of 0 means that stage uses all rows). With ``val_path`` and/or ``test_path``, those files
    are the validation and test rows, ``path`` is all training rows, and the fractions are ignored; a stage
    without a file then uses the training rows. Split files need the same columns as ``path``.

    Prediction: ``predict`` runs on ``predict_path`` if given (it needs the feature columns, by name for CSV and
    Parquet, and may lack the target), otherwise on all rows of ``path``.

    Classification: the target column holds class labels, numbers or text. Labels are mapped to indices in sorted
    order (numerically for numbers), and the class names (``"setosa"``, or ``"0"``, ``"1"`` for integer labels)
    go to the model, which saves them in its checkpoint and writes them back in ``predictions.csv``.

    Args:
        path: the data file (suffix ``.csv``, ``.npy``, ``.npz`` or ``.parquet``); the training data when split
            files are given.
        targets: target column name(s); default: the last column. Classification takes exactly one.
        features: feature column name(s); default: every column that is not a target.
        task: ``"regression"`` or ``"classification"``.
        val_path: a file of validation rows, same format and columns as ``path``.
        test_path: a file of test rows.
        predict_path: a file of rows to predict on.
        batch_size: rows per batch.
        val_fraction: share of rows held out for validation when there is no ``val_path`` (0: all rows).
        test_fraction: share of rows held out for testing when there is no ``test_path`` (0: all rows).
        standardize: standardize the features on the training rows.
        standardize_targets: standardize regression targets too.
        shuffle: reshuffle training rows each epoch.
        seed: seed of the split and the shuffles.
        in_memory: ``None`` (default): a single ``.npy`` file stays on disk, memory-mapped and read batch by batch
            (data larger than memory trains; splits and shuffles work on blocks of ``block_rows`` rows), every
            other format is read into memory; ``True``: always read into memory (fastest when it fits);
            ``False``: stream from disk.
        block_rows: rows per block on disk (the split and shuffle unit); ignored in memory.

    """

    def __init__(
        self,
        path: str,
        targets: str | list[str] | None = None,
        features: str | list[str] | None = None,
        task: str = "regression",
        val_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        batch_size: int = 64,
        val_fraction: float = 0.2,
        test_fraction: float = 0.1,
        standardize: bool = True,
        standardize_targets: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        in_memory: bool | None = None,
        block_rows: int = BLOCK_ROWS,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            standardize=standardize,
            standardize_targets=standardize_targets and task == "regression",
            shuffle=shuffle,
            seed=seed,
            in_memory=in_memory,
            block_rows=block_rows,
        )
        if task not in TASKS:
            raise InputError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task  # the base reads self.task; per instance, unlike the fixed-task DataModules
        self.path = path
        self.targets = _as_names(targets)
        self.features = _as_names(features)
        if task == "classification" and self.targets is not None and len(self.targets) != 1:
            raise InputError(f"classification takes one label column, got targets={targets!r}")
        self.val_path = val_path
        self.test_path = test_path
        self.predict_path = predict_path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, task={self.task!r}, batch_size={self.batch_size})"

    __str__ = __repr__

    def _read(self, path: str, features: list[str] | None, targets: list[str] | None, need_targets: bool) -> _Table:
        file = Path(path)
        if file.is_dir():
            raise InputError(f"{path}: is a directory, not a data file")
        if not file.is_file():
            raise InputError(f"{path}: no such file")
        suffix = file.suffix.lower()
        if suffix not in FILE_FORMATS:
            raise InputError(f"{path}: unknown file type {suffix!r}; expected one of {', '.join(FILE_FORMATS)}")
        if suffix != ".npz" and file.stat().st_size == 0:
            raise InputError(f"{path}: the file is empty")
        labels = self.task == "classification"
        try:
            if suffix == ".csv":
                table = _read_csv(file, features, targets, labels, need_targets)
            elif suffix == ".npy":
                table = _read_npy(file, features, targets, need_targets)
            elif suffix == ".npz":
                # Names in a .npz are array keys, not columns: every file of the module uses the user's keys.
                table = _read_npz(file, self.features, self.targets, labels, need_targets)
            else:
                table = _read_parquet(file, features, targets, labels, need_targets)
        except OSError as error:  # no permission to read, an I/O error
            raise InputError(f"{path}: cannot read the file ({error.strerror or error})") from None
        if labels and need_targets:
            assert table.targets is not None
            if len(table.target_names) != 1:
                raise InputError(f"{path}: classification takes one label column, got {table.target_names}")
            table.targets = table.targets.reshape(-1)
        if suffix != ".csv":  # CSV cells were checked while parsing, by line number; array rows count from 0
            too_large = [check_finite(table.features, table.feature_names, str(path))]
            if table.targets is not None and not labels:
                too_large.append(
                    check_finite(table.targets.reshape(len(table.targets), -1), table.target_names, str(path))
                )
            table.too_large = next((message for message in too_large if message), None)
        return table

    def load_arrays(self) -> ArrayData:
        """Read the data file(s), check them, and encode class labels."""
        main = self._read(self.path, self.features, self.targets, need_targets=True)
        # Split files must have the training file's columns, picked by the same names.
        split_tables = [
            self._read(split_path, main.feature_names, main.target_names, need_targets=True)
            if split_path is not None
            else None
            for split_path in (self.val_path, self.test_path)
        ]
        for split_path, table in zip((self.val_path, self.test_path), split_tables, strict=True):
            if table is not None and table.features.shape[1] != main.features.shape[1]:
                raise InputError(
                    f"{split_path}: {table.features.shape[1]} feature columns but {self.path} has "
                    f"{main.features.shape[1]}"
                )
        tables = [main, *(t for t in split_tables if t is not None)]
        sources = [self.path, *(p for p, t in zip((self.val_path, self.test_path), split_tables, strict=True) if t)]

        class_names = None
        if self.task == "classification":
            encoded, class_names = _encode_labels(list(zip(tables, sources, strict=True)), main.target_names[0])
            for table, labels in zip(tables, encoded, strict=True):
                table.targets = labels

        split_sizes = None
        if len(tables) > 1:
            features = np.concatenate([t.features for t in tables])
            targets = np.concatenate([t.targets for t in tables])  # type: ignore[misc]
            val_rows, test_rows = (0 if t is None else t.features.shape[0] for t in split_tables)
            split_sizes = (main.features.shape[0], val_rows, test_rows)
        else:
            features, targets = main.features, main.targets

        predict_features = None
        if self.predict_path is not None:
            predict = self._read(self.predict_path, main.feature_names, None, need_targets=False)
            if predict.features.shape[1] != main.features.shape[1]:
                raise InputError(
                    f"{self.predict_path}: {predict.features.shape[1]} feature columns but the model takes "
                    f"{main.features.shape[1]} ({', '.join(main.feature_names)} from {self.path})"
                )
            predict_features = predict.features
            tables.append(predict)

        assert targets is not None
        return ArrayData(
            features=features,
            targets=targets,
            feature_names=main.feature_names,
            target_names=main.target_names,
            class_names=class_names,
            split_sizes=split_sizes,
            predict_features=predict_features,
            source=self.path,
            split_sources=(self.val_path, self.test_path),
            too_large_for_float32=next((table.too_large for table in tables if table.too_large), None),
        )
