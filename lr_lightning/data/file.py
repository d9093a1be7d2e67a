"""User data from files: CSV, ``.npy``, ``.npz`` and Parquet, with optional files per split and to predict on.

The formats are read by :mod:`lr_lightning.data.readers`; this module chooses the files and joins what they hold
into one :class:`~lr_lightning.data.contract.ArrayData`. Every mistake in a file raises
:class:`~lr_lightning.errors.InputError` naming the file, the row and the column while the CLI instantiates the
data: before any run folder or checkpoint exists.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.contract import TASKS, ArrayData
from lr_lightning.data.readers import FILE_FORMATS, Table, as_names, encode_labels, read_table
from lr_lightning.errors import InputError, require

__all__ = ["FILE_FORMATS", "FileDataModule"]


class FileDataModule(InMemoryDataModule):
    """Regression or classification data from a CSV, ``.npy``, ``.npz`` or Parquet file.

    Columns:

    * **CSV** (comma-separated, header row of unique names): ``targets`` and ``features`` choose columns by name.
      By default the last column is the target and every other column a feature. Cells must be numbers, except
      the label column of classification data.
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
    Parquet, and may lack the target), otherwise on all rows of ``path``.

    Classification: the target column holds class labels, numbers or text. Labels are mapped to indices in sorted
    order (numerically for numbers), and the class names (``"setosa"``, or ``"0"``, ``"1"`` for integer labels)
    go to the model, which saves them in its checkpoint and writes them back in ``predictions.csv``. Targets are
    never standardized (``standardize_targets`` applies to regression only).

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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, task={self.task!r}, batch_size={self.batch_size})"

    __str__ = __repr__

    def _read(self, path: str, features: list[str] | None, targets: list[str] | None, need_targets: bool) -> Table:
        """Read one file of this module; a ``.npz`` is read by the user's array names, whatever ``features`` says."""
        return read_table(
            path,
            features,
            targets,
            labels=self.task == "classification",
            need_targets=need_targets,
            key_names=(self.features, self.targets),
        )

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
        sources = [self.path, *(p for p in (self.val_path, self.test_path) if p is not None)]  # the tables' files

        class_names = None
        if self.task == "classification":
            encoded, class_names = encode_labels(list(zip(tables, sources, strict=True)), main.target_names[0])
            for table, labels in zip(tables, encoded, strict=True):
                table.targets = labels

        split_sizes = None
        targets: np.ndarray | None
        if len(tables) > 1:
            features = np.concatenate([t.features for t in tables])
            targets = np.concatenate([t.targets for t in tables])
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
            values_checked=True,  # read_table checked every cell, naming its file and line
        )
