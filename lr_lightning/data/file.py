"""User data from files: CSV, ``.npy``, ``.npz`` and Parquet, with optional files per split and to predict on.

Every mistake in a file raises :class:`~lr_lightning.errors.InputError` naming the file, the row (for CSV the line
number a text editor shows, the header being line 1) and the column, while the CLI instantiates the data: before
any run folder or checkpoint exists.
"""

from __future__ import annotations

import csv
import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lr_lightning.data.base import BLOCK_ROWS, TASKS, ArrayData, InMemoryDataModule, check_finite
from lr_lightning.errors import InputError

__all__ = ["FILE_FORMATS", "FileDataModule"]

#: File suffixes this module reads.
FILE_FORMATS = (".csv", ".npy", ".npz", ".parquet")

#: Array names looked up in a ``.npz`` file, in order, when ``features``/``targets`` do not name them.
NPZ_FEATURE_KEYS = ("features", "X", "x")
NPZ_TARGET_KEYS = ("targets", "y", "Y")


@dataclass
class _Table:
    """Columns read from one file: features (n, D) numeric, targets (n, K) numeric or (n,) raw labels."""

    features: np.ndarray
    targets: np.ndarray | None
    feature_names: list[str]
    target_names: list[str]


def _as_names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return [str(value)]
    return [str(v) for v in value]


def _check_unique(names: Sequence[str], what: str, where: str) -> None:
    duplicates = sorted({name for name in names if names.count(name) > 1})
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


def _read_csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: Excel writes a byte-order mark
        header = next(csv.reader(handle), None)
    if header is None:
        raise InputError(f"{path}: the file is empty (expected a header row of column names, then data rows)")
    names = [name.strip() for name in header]
    for column, name in enumerate(names, start=1):
        if not name:
            raise InputError(f"{path}, row 1, column {column}: empty column name in the header")
    _check_unique(names, "column names", str(path))
    return names


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


def _diagnose_csv(path: Path, header: list[str], numeric_columns: list[str]) -> None:
    """Find the first cell that is not a finite number (or a short row) and raise an error naming it.

    Only runs after the fast parser has failed or found a non-finite value, so its speed does not matter; it
    reports the line number a text editor shows, counting blank lines.
    """
    indices = [header.index(name) for name in numeric_columns]
    with path.open(newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: Excel writes a byte-order mark
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            line = reader.line_num
            if len(row) != len(header):
                raise InputError(f"{path}, row {line}: {len(row)} cells but the header names {len(header)} columns")
            for index in indices:
                cell = row[index].strip()
                where = f"{path}, row {line}, column {header[index]!r}"
                if not cell:
                    raise InputError(
                        f"{where}: '' is not a number (an empty cell: fill in or remove the missing value)"
                    )
                try:
                    value = float(cell)
                except ValueError:
                    raise InputError(f"{where}: {cell!r} is not a number") from None
                if not math.isfinite(value):
                    raise InputError(f"{where}: {cell} is not a finite number (remove or fill the missing values)")


def _load_csv_columns(path: Path, header: list[str], names: list[str], dtype: type) -> np.ndarray:
    """Columns ``names`` of a CSV as an array (n, len(names)); numpy's C parser does the work (1e6 rows/s)."""
    with warnings.catch_warnings():
        # A header-only file: reported as an InputError by the caller, not as numpy's warning.
        warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
        return np.loadtxt(
            path,
            delimiter=",",
            skiprows=1,
            usecols=[header.index(name) for name in names],
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
        values = _load_csv_columns(path, header, numeric, np.float64)
        target_values = _load_csv_columns(path, header, target_names, str)[:, 0] if labels and target_names else None
    except ValueError:
        _diagnose_csv(path, header, numeric)
        raise  # the diagnosis found nothing: a parser problem we do not know, keep numpy's message
    if values.shape[0] == 0:
        raise InputError(f"{path}: the file has a header but no data rows")
    if not np.isfinite(values).all():
        _diagnose_csv(path, header, numeric)
    n_features = len(feature_names)
    if labels:
        table_targets = target_values
    elif target_names:
        table_targets = values[:, n_features:]
    else:
        table_targets = None
    return _Table(values[:, :n_features], table_targets, feature_names, target_names)


# -- NumPy and Parquet ----------------------------------------------------------------------------------------------


def _numeric_matrix(array: np.ndarray, what: str, allow_labels: bool = False) -> np.ndarray:
    """Check that an array holds numbers (or, for labels, strings) and has at most two dimensions."""
    if array.ndim > 2 or array.ndim == 0:
        raise InputError(f"{what}: expected a 2-D array (rows, columns), got shape {array.shape}")
    kind = array.dtype.kind
    if kind not in "biuf" and not (allow_labels and kind in "US"):
        raise InputError(f"{what}: expected numbers, got an array of dtype {array.dtype}")
    return array


def _load_numpy(path: Path) -> np.ndarray | np.lib.npyio.NpzFile:
    try:
        # A memory map: the base copies the rows it needs into the training dtype chunk by chunk, so a large
        # .npy is read once rather than loaded and then copied.
        return np.load(path, mmap_mode="r" if path.suffix == ".npy" else None, allow_pickle=False)
    except ValueError as error:
        # np.load says "allow_pickle", a memory map "Python objects in dtype": both mean an object array.
        if "allow_pickle" in str(error) or "Python objects" in str(error):
            raise InputError(
                f"{path}: cannot be read without unpickling: it holds Python objects (an object array), which are "
                "never loaded for safety; save a numeric array, e.g. np.save(path, array.astype(np.float64))"
            ) from None
        raise InputError(f"{path}: not a readable NumPy file ({error})") from None
    except (OSError, EOFError) as error:
        raise InputError(f"{path}: not a readable NumPy file ({error})") from None


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
                return key, archive[key]
            except ValueError:
                raise InputError(
                    f"{path}: array {key!r} cannot be read without unpickling: it holds Python objects (an object "
                    "array), which are never loaded for safety"
                ) from None
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
        raise InputError(f"{path}: not a readable Parquet file ({error})") from None
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


def _encode_labels(label_arrays: list[tuple[np.ndarray, str, int]], column: str) -> tuple[list[np.ndarray], list[str]]:
    """Map raw labels of several files to indices ``0..C-1`` shared by all, and return the class names.

    Numbers (``0``, ``1``, ``2`` or ``"3"``, ``"7"``) are sorted numerically and named by their integer value;
    anything else (``"setosa"``) is sorted as text. So integer labels ``0..C-1`` keep their values and their
    names are ``"0"``, ``"1"``, ...

    Args:
        label_arrays: ``(labels (n,), file name, number of the first row)`` per file, for messages.
        column: the name of the label column, for messages.

    """
    as_text = [np.char.strip(np.asarray(labels).astype(str)) for labels, _, _ in label_arrays]
    for labels, (_, where, first_row) in zip(as_text, label_arrays, strict=True):
        empty = np.flatnonzero(labels == "")
        if empty.size:
            raise InputError(f"{where}, row {int(empty[0]) + first_row}, column {column!r}: empty class label")
    as_text_all = np.concatenate(as_text)
    unique, inverse = np.unique(as_text_all, return_inverse=True)
    try:
        numbers = unique.astype(np.float64)
    except ValueError:
        numbers = None
    if numbers is not None:
        not_a_class = ~np.isfinite(numbers) | (numbers != np.round(numbers))
        if not_a_class.any():
            bounds = np.cumsum([0, *(len(labels) for labels in as_text)])
            for (_, where, first_row), start, stop in zip(label_arrays, bounds[:-1], bounds[1:], strict=True):
                bad = np.flatnonzero(not_a_class[inverse[start:stop]])
                if bad.size:
                    row = int(bad[0])
                    raise InputError(
                        f"{where}, row {row + first_row}, column {column!r}: label {as_text_all[start + row]} is not "
                        "an integer; classification needs class labels (use task: regression for continuous targets)"
                    )
        values = np.unique(numbers)  # "1" and "1.0" are one class
        class_names = [str(int(value)) for value in values]
        class_of_unique = np.searchsorted(values, numbers)
    else:
        class_names = [str(name) for name in unique]
        class_of_unique = np.arange(len(unique))
    encoded = class_of_unique[inverse].astype(np.int64)
    bounds = np.cumsum([0, *(len(labels) for labels in as_text)])
    return [encoded[start:stop] for start, stop in itertools.pairwise(bounds)], class_names


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
        if not file.is_file():
            raise InputError(f"{path}: no such file")
        suffix = file.suffix.lower()
        if suffix not in FILE_FORMATS:
            raise InputError(f"{path}: unknown file type {suffix!r}; expected one of {', '.join(FILE_FORMATS)}")
        if suffix != ".npz" and file.stat().st_size == 0:
            raise InputError(f"{path}: the file is empty")
        labels = self.task == "classification"
        if suffix == ".csv":
            table = _read_csv(file, features, targets, labels, need_targets)
        elif suffix == ".npy":
            table = _read_npy(file, features, targets, need_targets)
        elif suffix == ".npz":
            # Names in a .npz are array keys, not columns: every file of the module uses the user's keys.
            table = _read_npz(file, self.features, self.targets, labels, need_targets)
        else:
            table = _read_parquet(file, features, targets, labels, need_targets)
        if labels and need_targets:
            assert table.targets is not None
            if len(table.target_names) != 1:
                raise InputError(f"{path}: classification takes one label column, got {table.target_names}")
            table.targets = table.targets.reshape(-1)
        if suffix != ".csv":  # CSV cells were checked while parsing, by line number; array rows count from 0
            check_finite(table.features, table.feature_names, str(path))
            if table.targets is not None and not labels:
                check_finite(table.targets.reshape(len(table.targets), -1), table.target_names, str(path))
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
            label_arrays = [
                (t.targets, source, 2 if source.lower().endswith(".csv") else 0)
                for t, source in zip(tables, sources, strict=True)
            ]
            encoded, class_names = _encode_labels(label_arrays, main.target_names[0])  # type: ignore[arg-type]
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
        )
