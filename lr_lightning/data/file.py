"""User data from files: CSV with a header, ``.npy``/``.npz`` (never unpickled), Parquet when pyarrow is installed."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lr_lightning.data.base import TASKS, ArrayData, InMemoryDataModule, check_finite
from lr_lightning.errors import InputError

__all__ = ["FileDataModule", "read_table"]

SUFFIXES = (".csv", ".npy", ".npz", ".parquet")


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of cells (strings) of a CSV file."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: the file is empty (expected a header row and data rows)")
        header = [name.strip() for name in header]
        rows = [row for row in reader if row]
    if not rows:
        raise InputError(f"{path}: the file has a header but no data rows")
    for index, row in enumerate(rows):
        if len(row) != len(header):
            raise InputError(f"{path}, row {index + 2}: {len(row)} cells but the header names {len(header)} columns")
    return header, rows


def read_table(path: str | Path) -> tuple[list[str], dict[str, np.ndarray], int]:
    """Read a table file into named columns.

    Args:
        path: a ``.csv`` (header row), ``.npy`` (2-D numeric array; columns named ``c0, c1, ...``), ``.npz``
            (arrays ``features``/``X`` of shape (N, D) and ``targets``/``y``) or ``.parquet`` file.

    Returns:
        The column names in file order, the columns (numeric columns as float64, CSV text columns as arrays of
        str), and the number of the first data row as a user would count it (2 for a CSV: line 1 is the header;
        0 for arrays).

    Raises:
        InputError: the file is missing, empty, has a header only, is not 2-D, holds objects, or has duplicate
            or ragged columns.

    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        header, rows = _read_csv(path)
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise InputError(f"{path}: duplicate column names {duplicates}")
        columns_of_cells = list(zip(*rows, strict=True))
        columns: dict[str, np.ndarray] = {}
        for name, cells in zip(header, columns_of_cells, strict=True):
            values = [cell.strip() for cell in cells]
            try:
                columns[name] = np.array(values, dtype=np.float64)
            except ValueError:
                columns[name] = np.array(values, dtype=str)  # a label column, or a mistake found later
        return header, columns, 2
    if suffix in (".npy", ".npz"):
        try:
            # mmap_mode: a large .npy is paged in as it is read rather than copied whole first.
            loaded = np.load(path, allow_pickle=False, mmap_mode="r" if suffix == ".npy" else None)
        except ValueError as error:
            raise InputError(
                f"{path}: cannot be read without unpickling ({error}); save plain numeric arrays"
            ) from None
        if suffix == ".npy":
            array = loaded
            if array.ndim != 2:
                raise InputError(f"{path}: expected a 2-D array (rows, columns), got shape {array.shape}")
            if not np.issubdtype(array.dtype, np.number):
                raise InputError(f"{path}: expected a numeric array, got dtype {array.dtype}")
            names = [f"c{j}" for j in range(array.shape[1])]
            return names, {name: array[:, j] for j, name in enumerate(names)}, 0
        with loaded as archive:
            keys = set(archive.files)
            feature_key = next((k for k in ("features", "X", "x") if k in keys), None)
            target_key = next((k for k in ("targets", "y", "Y") if k in keys), None)
            if feature_key is None or target_key is None:
                raise InputError(
                    f"{path}: an .npz file needs arrays named 'features' (or 'X') and 'targets' (or 'y'); "
                    f"it has {sorted(keys)}"
                )
            features, targets = archive[feature_key], archive[target_key]
        if features.ndim != 2:
            raise InputError(f"{path}: {feature_key!r} must be 2-D (rows, columns), got shape {features.shape}")
        if targets.ndim not in (1, 2):
            raise InputError(f"{path}: {target_key!r} must be 1-D or 2-D, got shape {targets.shape}")
        if len(features) != len(targets):
            raise InputError(f"{path}: {feature_key!r} has {len(features)} rows but {target_key!r} has {len(targets)}")
        targets = targets.reshape(len(targets), -1)
        names = [f"x{j}" for j in range(features.shape[1])]
        target_names = ["y"] if targets.shape[1] == 1 else [f"y{k}" for k in range(targets.shape[1])]
        columns = {name: features[:, j] for j, name in enumerate(names)}
        columns |= {name: targets[:, k] for k, name in enumerate(target_names)}
        return [*names, *target_names], columns, 0
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as parquet
        except ImportError:
            raise InputError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        table = parquet.read_table(path)
        if table.num_rows == 0:
            raise InputError(f"{path}: the table has no rows")
        columns = {}
        for name in table.column_names:
            values = table.column(name).to_numpy(zero_copy_only=False)
            columns[name] = values if np.issubdtype(values.dtype, np.number) else values.astype(str)
        return list(table.column_names), columns, 0
    raise InputError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}")


def _as_list(names: str | list[str] | None) -> list[str] | None:
    if names is None:
        return None
    return [names] if isinstance(names, str) else list(names)


class FileDataModule(InMemoryDataModule):
    """Features and targets from the user's files, chosen by column name.

    Formats: CSV with a header row; ``.npy`` (a 2-D numeric array whose columns are named ``c0, c1, ...``);
    ``.npz`` with arrays ``features`` (or ``X``) and ``targets`` (or ``y``); Parquet when pyarrow is installed.
    Arrays are always loaded with ``allow_pickle=False``.

    Columns: ``targets`` names the target column(s) (default: the last column), ``features`` the feature columns
    (default: every other column).

    Splits: by ``val_fraction``/``test_fraction`` with ``seed`` (a fraction of 0 makes that stage use all rows),
    or from separate files ``val_path``/``test_path`` with the same columns (a missing one uses the training
    rows). ``predict_path`` names the rows to predict on; it needs the feature columns only. Without it,
    ``predict`` runs on every row of ``path``.

    Classification (``task="classification"``): the target column holds labels; string labels are mapped to
    indices ``0..C-1`` in sorted order and the names are kept (``class_names``), so the CLI stores them in the
    model and predictions come back as the strings. Numeric labels must be integers; they are named ``"0"``,
    ``"1"``, ... and must cover ``0..C-1``.

    Every problem with the input (a missing file or column, a non-numeric or missing cell, NaN or infinity,
    mismatched lengths, the wrong number of dimensions) raises :class:`~lr_lightning.errors.InputError` naming
    the file, the line and the column, while the CLI instantiates the data: before any run folder exists.

    Args:
        path: the data file.
        targets: target column name or names; default the last column.
        features: feature column names; default all columns but the targets.
        task: ``"regression"`` or ``"classification"``.
        val_path: a file of validation rows (instead of ``val_fraction``).
        test_path: a file of test rows (instead of ``test_fraction``).
        predict_path: a file of rows to predict on (the feature columns only are needed).
        batch_size: rows per batch.
        val_fraction: share of rows held out for validation when there is no ``val_path``.
        test_fraction: share of rows held out for testing when there is no ``test_path``.
        standardize: standardize the features on the training rows.
        standardize_targets: standardize regression targets too.
        shuffle: reshuffle training rows each epoch.
        seed: seed of the split and the shuffles.

    """

    def __init__(
        self,
        path: str,
        targets: str | list[str] | None = None,
        features: list[str] | None = None,
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
    ) -> None:
        if task not in TASKS:
            raise InputError(f"task must be one of {TASKS}, got {task!r}")
        super().__init__(
            batch_size=batch_size,
            val_fraction=0.0 if val_path else val_fraction,
            test_fraction=0.0 if test_path else test_fraction,
            standardize=standardize,
            standardize_targets=standardize_targets and task == "regression",
            shuffle=shuffle,
            seed=seed,
        )
        self.task = task
        self.path = path
        self.target_columns = _as_list(targets)
        self.feature_columns = _as_list(features)
        self.val_path = val_path
        self.test_path = test_path
        self.predict_path = predict_path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, task={self.task!r}, batch_size={self.batch_size})"

    __str__ = __repr__

    def _choose_columns(self, path: str, names: list[str]) -> tuple[list[str], list[str]]:
        targets = self.target_columns or [names[-1]]
        features = self.feature_columns or [name for name in names if name not in targets]
        for role, chosen in (("target", targets), ("feature", features)):
            missing = [name for name in chosen if name not in names]
            if missing:
                raise InputError(f"{path}: no {role} column {missing[0]!r}; the columns are {names}")
        if not features:
            raise InputError(f"{path}: no feature columns left besides the targets {targets}")
        overlap = sorted(set(features) & set(targets))
        if overlap:
            raise InputError(f"{path}: column {overlap[0]!r} is both a feature and a target")
        return features, targets

    @staticmethod
    def _numeric_matrix(path: str, columns: dict[str, np.ndarray], names: list[str], first_row: int) -> np.ndarray:
        for name in names:
            if not np.issubdtype(columns[name].dtype, np.number):
                cells = columns[name]
                row = next(i for i, cell in enumerate(cells) if not _is_number(cell))
                raise InputError(f"{path}, row {row + first_row}, column {name!r}: {str(cells[row])!r} is not a number")
        features = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in names])
        check_finite(features, names, path, first_row)
        return features

    def _read_split(self, path: str) -> tuple[np.ndarray, np.ndarray, int, list[str], list[str]]:
        """Features (n, D), targets (n, K) or raw labels (n,), first row number, feature and target names."""
        names, columns, first_row = read_table(path)
        feature_names, target_names = self._choose_columns(path, names)
        if self.task == "classification" and len(target_names) != 1:
            raise InputError(f"{path}: classification takes one label column, got {target_names}")
        features = self._numeric_matrix(path, columns, feature_names, first_row)
        if self.task == "regression":
            targets = self._numeric_matrix(path, columns, target_names, first_row)
        else:
            targets = np.asarray(columns[target_names[0]])
        return features, targets, first_row, feature_names, target_names

    def _encode_labels(
        self, labels: list[np.ndarray], first_rows: list[int], paths: list[str]
    ) -> tuple[list[np.ndarray], list[str]]:
        """Map labels of every split to indices with one shared list of class names."""
        column = self.target_columns[0] if self.target_columns else "the last column"
        if all(np.issubdtype(split.dtype, np.number) for split in labels):
            for split, first_row, path in zip(labels, first_rows, paths, strict=True):
                fractional = split != np.round(split)
                if fractional.any():
                    row = int(np.argmax(fractional))
                    raise InputError(
                        f"{path}, row {row + first_row}, column {column!r}: label {float(split[row])!r} is not an "
                        "integer; classification needs class labels (use task: regression for continuous targets)"
                    )
            every = np.concatenate(labels).astype(np.int64)
            num_classes = int(every.max()) + 1
            if every.min() < 0:
                raise InputError(f"{paths[0]}: labels must be >= 0, found {int(every.min())}")
            return [split.astype(np.int64) for split in labels], [str(c) for c in range(num_classes)]
        names = sorted({str(value) for split in labels for value in split})
        index = {name: i for i, name in enumerate(names)}
        return [np.array([index[str(v)] for v in split], dtype=np.int64) for split in labels], names

    def load_arrays(self) -> ArrayData:
        """Read the file(s), choose the columns and check every cell."""
        paths = [self.path, *(p for p in (self.val_path, self.test_path) if p)]
        splits = [self._read_split(path) for path in paths]
        _, _, _, feature_names, target_names = splits[0]
        for path, split in zip(paths[1:], splits[1:], strict=True):
            if split[3] != feature_names:
                raise InputError(f"{path}: feature columns {split[3]} differ from {self.path}'s {feature_names}")
        features = np.concatenate([split[0] for split in splits])
        labels = [split[1] for split in splits]
        class_names = None
        if self.task == "classification":
            encoded, class_names = self._encode_labels(labels, [s[2] for s in splits], paths)
            targets = np.concatenate(encoded)
        else:
            targets = np.concatenate(labels)
        split_sizes = None
        if self.val_path or self.test_path:
            sizes = iter(len(split[0]) for split in splits)
            n_train = next(sizes)
            n_val = next(sizes) if self.val_path else 0
            n_test = next(sizes) if self.test_path else 0
            split_sizes = (n_train, n_val, n_test)
        predict_features = None
        if self.predict_path:
            predict_header, predict_columns, first_row = read_table(self.predict_path)
            missing = [name for name in feature_names if name not in predict_header]
            if missing:
                raise InputError(
                    f"{self.predict_path}: no feature column {missing[0]!r}; the model takes {feature_names}"
                )
            predict_features = self._numeric_matrix(self.predict_path, predict_columns, feature_names, first_row)
        return ArrayData(
            features=features,
            targets=targets,
            feature_names=feature_names,
            target_names=target_names,
            class_names=class_names,
            split_sizes=split_sizes,
            predict_features=predict_features,
            source=self.path,
        )


def _is_number(cell: object) -> bool:
    try:
        float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True
