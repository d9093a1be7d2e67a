"""User data from files: CSV, ``.npy``, ``.npz`` and Parquet, with optional files per split and to predict on.

The formats are read by :mod:`lr_lightning.data.readers`; this module chooses the files and joins what they hold
into one :class:`~lr_lightning.data.contract.ArrayData`. Every mistake in a file raises
:class:`~lr_lightning.errors.InputError` naming the file, the row and the column while the CLI instantiates the
data: before any run folder or checkpoint exists.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.contract import TASKS, ArrayData
from lr_lightning.data.encoded_file import RawRows, encoded_table, read_rows
from lr_lightning.data.encoding import EncodingOptions, TableEncoding, fit_encoding
from lr_lightning.data.readers import (
    FILE_FORMATS,
    Table,
    as_names,
    check_delimiter,
    column_names,
    encode_labels,
    read_table,
    read_text_columns,
    row_namer,
)
from lr_lightning.data.stores.memory import ordered_split
from lr_lightning.data.weights import check_weight_column, check_weights, parse_weights, require_positive
from lr_lightning.errors import InputError, require

__all__ = ["FILE_FORMATS", "FileDataModule"]


class FileDataModule(InMemoryDataModule):
    r"""Regression or classification data from a CSV, ``.npy``, ``.npz`` or Parquet file.

    Columns:

    * **CSV** (a header row of unique names; cells separated by commas, or by ``delimiter``): ``targets`` and
      ``features`` choose columns by name. By default the last column is the target and every other column a
      feature. Cells must be numbers, except the label column of classification data.
    * **.npy**: one 2-D numeric array (rows, columns); its columns are named ``c0``, ``c1``, ..., so
      ``targets: c0`` picks the first column. By default the last column is the target. The file is
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
    Parquet, and may lack the target), otherwise on all rows of ``path``. When both ``features`` and ``targets``
    are named and ``path`` has none of the targets (a new file to predict on), its rows can only be predicted on;
    this is how ``lr-lightning predict --ckpt_path CKPT --data.path new.csv`` reads a new file with a checkpoint's
    names. The predict rows' targets, when their file has them, go to ``predictions.csv`` beside the predictions.

    Classification: the target column holds class labels, numbers or text. Labels are mapped to indices in sorted
    order (numerically for numbers) unless ``class_names`` gives the classes, and the class names (``"setosa"``,
    or ``"0"``, ``"1"`` for integer labels) go to the model, which saves them in its checkpoint and writes them
    back in ``predictions.csv``. Targets are never standardized (``standardize_targets`` applies to regression
    only).

    Storage (``in_memory``): by default a single ``.npy`` file stays on disk, memory-mapped and read batch by
    batch, so data larger than memory trains (splits and shuffles work on blocks of ``block_rows`` rows); every
    other format is read into memory. ``in_memory: true`` always reads into memory (fastest when it fits),
    ``false`` streams from disk.

    Args:
        path: the data file (suffix ``.csv``, ``.npy``, ``.npz`` or ``.parquet``); the training data when split
            files are given.
        targets: target column name(s); default: the last column. Classification takes exactly one.
        features: feature column name(s); default: every column that is not a target.
        task: ``"regression"`` or ``"classification"``; ``None`` (the default): the model's under the CLI (a
            ``LogisticRegression`` makes it classification), regression otherwise.
        val_path: a file of validation rows, same format and columns as ``path``.
        test_path: a file of test rows.
        predict_path: a file of rows to predict on.
        delimiter: the character between a CSV file's cells (``";"``, a tab ``"\t"``); CSV files only.
        class_names: the classes, in order (a checkpoint's, so that a new file's labels mean what they meant in
            training); every label must be one of them. Default: the sorted labels of the files.
        weights: the column of sample weights (numbers >= 0, not all 0; CSV, Parquet and ``.npy``): each row counts
            that many times in the fit (:mod:`lr_lightning.data.weights`). It is neither a feature nor a target
            (the default target is then the last other column). Split files need the column too; a predict file
            does not. ``None``: every row weighs 1.
        categorical: feature column(s) of categories (text, or integer codes), one-hot encoded
            (:mod:`lr_lightning.data.encoding`); CSV and Parquet only, read into memory.
        missing: ``"mean"`` or ``"median"``: impute a numeric feature's missing cells with the training rows'
            statistic (plus an indicator column), and make a categorical column's missing cells a level; ``None``: a
            missing feature cell is an error.
        handle_unknown: a level the training rows did not have: ``"error"`` refuses it, ``"ignore"`` encodes it as
            all zeros. ``None`` (the default): ``"error"`` when the encoding is fitted, the fitted ``encoding``'s
            otherwise; given with ``encoding``, it replaces the encoding's.
        drop_first: drop each categorical column's first level (treatment coding); ``None`` (the default): true
            when the encoding is fitted, the ``encoding``'s otherwise.
        drop_missing_targets: drop (and count) the rows whose target cell is missing; targets are never imputed.
            Without it such a row is refused, except in a file whose rows can only be predicted on.
        encoding: a fitted table encoding as a checkpoint records it (``lr-lightning predict --ckpt_path CKPT``
            passes the checkpoint's): every file is encoded with it, nothing is fitted. It decides
            ``categorical``, ``missing`` and ``drop_first``: giving one of them with it is refused unless it
            equals the encoding's.
        val_fraction: share of rows held out for validation when there is no ``val_path`` (0: all rows).
        test_fraction: share of rows held out for testing when there is no ``test_path`` (0: all rows).
        **kwargs: the other options of every DataModule (``batch_size``, ``standardize``, ``standardize_targets``,
            ``shuffle``, ``seed``, ``in_memory``, ``block_rows``): see the Args of
            :class:`~lr_lightning.data.base.InMemoryDataModule`.

    """

    def __init__(
        self,
        path: str,
        targets: str | list[str] | None = None,
        features: str | list[str] | None = None,
        task: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        class_names: list[str] | None = None,
        delimiter: str = ",",
        weights: str | None = None,
        categorical: str | list[str] | None = None,
        missing: str | None = None,
        handle_unknown: str | None = None,
        drop_first: bool | None = None,
        drop_missing_targets: bool = False,
        encoding: dict[str, Any] | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.1,
        **kwargs: Any,
    ) -> None:
        task = task or "regression"
        if task != "regression":
            kwargs["standardize_targets"] = False  # class labels are indices, never standardized
        super().__init__(val_fraction=val_fraction, test_fraction=test_fraction, **kwargs)
        require(task in TASKS, "task", f"one of {TASKS}", task)
        self.task = task  # the base reads self.task; per instance, unlike the fixed-task DataModules
        self.path = path
        self.targets = as_names(targets)
        self.features = as_names(features)
        if task == "classification" and self.targets is not None and len(self.targets) != 1:
            raise InputError(f"classification takes one label column, got targets={targets!r}")
        self.val_path = val_path
        self.test_path = test_path
        self.predict_path = predict_path
        check_delimiter(delimiter)
        self.delimiter = delimiter
        self.weights = None if weights is None else str(weights)
        self.encoding_options = EncodingOptions(
            as_names(categorical) or [],
            missing,
            "error" if handle_unknown is None else handle_unknown,
            True if drop_first is None else drop_first,
        )
        self.encoding_options.check()
        require(isinstance(drop_missing_targets, bool), "drop_missing_targets", "true or false", drop_missing_targets)
        self.drop_missing_targets = drop_missing_targets
        self._given_encoding = None
        if encoding is not None:
            fitted = TableEncoding.from_record(encoding, "encoding")
            self._given_encoding = fitted.with_options(as_names(categorical), missing, drop_first, handle_unknown)
        self._encoding: TableEncoding | None = self._given_encoding
        self._encoded_reads: dict[str, RawRows] = {}  # by file: what its encoded read kept, its cells left out
        if self.encodes and self.in_memory is False:
            raise InputError(
                "in_memory: false streams numbers from disk; categorical, missing and drop_missing_targets need the "
                "rows in memory (in_memory: true or unset)"
            )
        self.known_classes = [str(name) for name in class_names] if class_names is not None else None
        if self.known_classes is not None and task != "classification":
            raise InputError(f"class_names {self.known_classes} is for classification; this data's task is {task}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, task={self.task!r}, batch_size={self.batch_size})"

    __str__ = __repr__

    @property
    def encodes(self) -> bool:
        """Whether the files are read through a table encoding (:mod:`lr_lightning.data.encoded_file`)."""
        options = self.encoding_options
        return bool(options.categorical or options.missing or self.drop_missing_targets or self._given_encoding)

    @property
    def table_encoding(self) -> dict[str, Any] | None:
        """The fitted table encoding as plain values (for the checkpoint), ``None`` when the files are numbers."""
        _ = self.description  # loading the data fits it
        return None if self._encoding is None else self._encoding.to_record()

    def _read_encoded(self, path: str, features: list[str] | None, targets: list[str] | None, need: bool) -> Table:
        """Read one file through the encoding, fitted on the training rows of ``path`` when this is that file."""
        rows = read_rows(
            path,
            features,
            targets,
            weights=self.weights,
            labels=self.task == "classification",
            need_targets=need,
            drop_missing_targets=self.drop_missing_targets,
            delimiter=self.delimiter,
        )
        if self._encoding is None:
            count = len(rows.cells[rows.feature_names[0]])
            split_files = self.val_path is not None or self.test_path is not None
            labels = rows.targets if self.task == "classification" else None  # folds are stratified by class
            split = ordered_split(count, None, self.split_options, labels) if not split_files else None
            train = np.arange(count) if split is None else split.source_rows("train")
            options = self.encoding_options
            self._encoding = fit_encoding(rows.cells, rows.feature_names, train, options, rows.name_row, source=path)
        self._encoded_reads[path] = dataclasses.replace(rows, cells={})
        return encoded_table(rows, self._encoding)

    def _read(self, path: str, features: list[str] | None, targets: list[str] | None, need_targets: bool) -> Table:
        """Read one file of this module; a ``.npz`` is read by the user's array names, whatever ``features`` says."""
        if self.encodes:
            if path != self.path and self._encoding is not None:  # split and predict files: the raw columns
                features = self._encoding.input_columns
            return self._read_encoded(path, features, targets, need_targets)
        return read_table(
            path,
            features,
            targets,
            labels=self.task == "classification",
            need_targets=need_targets,
            key_names=(self.features, self.targets),
            delimiter=self.delimiter,
        )

    @property
    def _targets_optional(self) -> bool:
        """Whether ``path`` may lack the targets: both are named (a ``.npz`` names arrays, not columns)."""
        return self.features is not None and self.targets is not None and not self.path.lower().endswith(".npz")

    def _weighted_columns(self) -> tuple[list[str] | None, list[str] | None]:
        """Return the feature and target names to read: the user's, and without the weight column by default."""
        if self.weights is None or self.encodes:  # an encoded read leaves the weight column out itself
            return self.features, self.targets
        columns = column_names(self.path, delimiter=self.delimiter)
        if columns is None:
            raise InputError(f"weights: {self.path} is a .npz file, which has no columns; use CSV, Parquet or .npy")
        check_weight_column(self.path, columns, self.weights, (("feature", self.features), ("target", self.targets)))
        others = [name for name in columns if name != self.weights]
        targets = self.targets if self.targets is not None else others[-1:]
        features = self.features if self.features is not None else [c for c in others if c not in targets]
        return features, targets

    def _read_weights(self, path: str) -> np.ndarray:
        """Read the weight column of one file, checked; ``.npy`` columns directly, others as the file's text."""
        assert self.weights is not None
        if self.encodes:
            weights = self._encoded_reads[path].weights
            assert weights is not None, "a file of training rows has its weight column"
            return weights
        if path.lower().endswith(".npy"):
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            column = int(self.weights[1:])  # c0, c1, ...: the reader checked the name
            return check_weights(array[:, column], self.weights, row_namer(path))
        cells = read_text_columns(path, [self.weights], delimiter=self.delimiter)[self.weights]
        return parse_weights(cells, self.weights, row_namer(path, delimiter=self.delimiter))

    def load_arrays(self) -> ArrayData:
        """Read the data file(s), check them, and encode class labels."""
        feature_columns, target_columns = self._weighted_columns()
        main = self._read(self.path, feature_columns, target_columns, need_targets=not self._targets_optional)
        unlabelled = None
        if main.targets is None:  # a new file to predict on, or one with missing targets not dropped
            assert self.targets is not None
            read = self._encoded_reads.get(self.path)
            unlabelled = read.missing_target if read is not None else None
            if unlabelled is None:
                unlabelled = f"{self.path}: no target column {self.targets[0]!r}: its rows can only be predicted on"
            main.target_names = list(self.targets)
            main.targets = _stand_in_targets(len(main.features), len(self.targets), self.task)
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
        sources = [self.path, *(p for p in (self.val_path, self.test_path) if p is not None)]  # the tables' files

        class_names = self.known_classes
        if self.task == "classification":
            label = main.target_names[0]
            if unlabelled is None:
                encoded, class_names = encode_labels(list(zip(tables, sources, strict=True)), label, class_names)
                for table, labels in zip(tables, encoded, strict=True):
                    table.targets = labels
            elif class_names is None:
                raise InputError(f"{unlabelled}, and without labels the classes are unknown: name them (class_names)")

        weights = None
        if self.weights is not None and unlabelled is None:
            weights = np.concatenate([self._read_weights(source) for source in sources])
            require_positive(weights, self.weights, ", ".join(sources))

        split_sizes = None
        targets: np.ndarray | None
        if len(tables) > 1:
            features = np.concatenate([t.features for t in tables])
            targets = np.concatenate([t.targets for t in tables])
            val_rows, test_rows = (0 if t is None else t.features.shape[0] for t in split_tables)
            split_sizes = (main.features.shape[0], val_rows, test_rows)
        else:
            features, targets = main.features, main.targets

        predict_features = predict_targets = None
        if self.predict_path is not None:
            predict = self._read(self.predict_path, main.feature_names, None, need_targets=False)
            if predict.features.shape[1] != main.features.shape[1]:
                raise InputError(
                    f"{self.predict_path}: {predict.features.shape[1]} feature columns but the model takes "
                    f"{main.features.shape[1]} ({', '.join(main.feature_names)} from {self.path})"
                )
            predict_features = predict.features
            if predict.targets is not None and self.task == "classification":
                assert class_names is not None
                predict.targets = encode_labels([(predict, self.predict_path)], main.target_names[0], class_names)[0][0]
            predict_targets = predict.targets
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
            predict_targets=predict_targets,
            unlabelled=unlabelled,
            source=self.path,
            split_sources=(self.val_path, self.test_path),
            too_large_for_float32=next((table.too_large for table in tables if table.too_large), None),
            values_checked=True,  # read_table checked every cell, naming its file and line
            weights=weights,
        )

    def predict_columns(self, names: list[str]) -> dict[str, list[str]]:
        """Columns ``names`` of the rows predicted on, as the file holds them: ``predict_path``'s, else every file's.

        The rows are exactly those predicted on, in order: without the rows an encoded read dropped (a missing
        target with ``drop_missing_targets``).
        """
        if self.encodes:
            _ = self.description  # loading the data finds the rows each file keeps
        sources = [self.predict_path] if self.predict_path else [self.path, self.val_path, self.test_path]
        columns: dict[str, list[str]] = {name: [] for name in names}
        for source in sources:
            if source is not None:
                read = self._encoded_reads.get(source)
                kept = read.kept_rows if read is not None else None
                for name, cells in read_text_columns(source, names, delimiter=self.delimiter).items():
                    columns[name] += cells if kept is None else [cells[row] for row in kept.tolist()]
        return columns


def _stand_in_targets(rows: int, width: int, task: str) -> np.ndarray:
    """Zeros in place of targets a file does not have (:attr:`ArrayData.unlabelled`; never trained on)."""
    return np.zeros(rows, np.int64) if task == "classification" else np.zeros((rows, width))
