"""Rows held in memory as tensors: one copy in the training dtype, each split a contiguous view of it."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
from torch import Tensor

from lr_lightning.data.checks import split_sizes
from lr_lightning.data.contract import ArrayData
from lr_lightning.data.loader import InMemoryBatchLoader
from lr_lightning.data.rows import take_rows
from lr_lightning.data.stores.base import LoaderOptions, RowSplit, RowStore, SplitOptions, target_matrix
from lr_lightning.errors import InputError

__all__ = ["MemoryStore", "OrderedSplit", "fold_numbers", "ordered_split"]


class OrderedSplit(RowSplit):
    """Rows permuted once and cut into train, val and test ranges of that order.

    Args:
        order: the source row of each position (a seeded permutation), or ``None`` for the source order.
        bounds: the positions of each split; a split of size 0 already points at its fallback (all rows, or the
            training rows when the data came with its own splits).

    """

    def __init__(self, order: np.ndarray | None, bounds: dict[str, slice]) -> None:
        self.order = order
        self.bounds = bounds

    def size(self, split: str) -> int:
        """Rows in ``split``."""
        bounds = self.bounds[split]
        return bounds.stop - bounds.start

    def source_rows(self, split: str) -> np.ndarray:
        """Return the source index of each row of ``split``."""
        positions = np.arange(self.bounds[split].start, self.bounds[split].stop)
        return positions if self.order is None else self.order[positions]

    def gather(self, array: np.ndarray, split: str, dtype: np.dtype | type) -> np.ndarray:
        """Copy the rows of ``split`` of ``array`` in split order, cast to ``dtype`` while copying."""
        if self.order is None:
            return take_rows(array[self.bounds[split]], None, dtype)
        return take_rows(array, self.order[self.bounds[split]], dtype)


def ordered_split(
    n_rows: int, given: tuple[int, int, int] | None, options: SplitOptions, labels: np.ndarray | None = None
) -> OrderedSplit:
    """Split ``n_rows`` rows in memory: by the ``given`` split sizes, else permuted with the seed and cut by fractions.

    The one rule of :meth:`MemoryStore.plan`; a reader that fits something on the training rows before the data
    exists (:mod:`lr_lightning.data.encoding`) asks it which rows those are. With ``options.num_folds`` K the
    rows are permuted with the seed, the last ``test_fraction`` of them held out for testing, and the others
    dealt into K folds (:func:`fold_numbers`, stratified by ``labels`` when given); the validation rows are fold
    ``options.fold`` and the training rows the other folds. The same seed gives the same folds for every
    ``fold``: they are disjoint and cover the rows.

    Raises:
        InputError: the fractions leave a split without rows; folds with rows of their own (``given``).

    """
    if options.num_folds is not None:
        if given is not None:
            raise InputError("num_folds: the data comes with its own validation rows (val_path); remove one of them")
        return _fold_split(n_rows, options, labels)
    if given is not None:
        order, (n_train, n_val, n_test), fallback = None, given, slice(0, given[0])
    else:
        n_train, n_val, n_test = split_sizes(n_rows, options.val_fraction, options.test_fraction)
        held_out = n_val + n_test
        order = np.random.default_rng(options.seed).permutation(n_rows) if held_out else None
        fallback = slice(0, n_rows)
    return OrderedSplit(
        order,
        {
            "train": slice(0, n_train),
            "val": slice(n_train, n_train + n_val) if n_val else fallback,
            "test": slice(n_train + n_val, n_train + n_val + n_test) if n_test else fallback,
            "all": slice(0, n_rows),
        },
    )


def fold_numbers(labels: np.ndarray | None, num_folds: int, n_rows: int) -> np.ndarray:
    """Deal rows, in the order given, into ``num_folds`` folds: the fold of each row, shape (n,).

    ``n_rows`` is the number of rows (``len(labels)`` when given). Without labels, round robin (fold sizes differ
    by at most one). With labels (n,), any type, the rows are taken class by class (classes in the order they
    first appear, rows in the order given) and dealt round robin, so each class is spread over the folds as
    evenly as it can be (stratified) and the fold sizes still differ by at most one; the folds depend on which
    rows share a class, not on how the classes are numbered or named.
    """
    if labels is None:
        return np.arange(n_rows) % num_folds
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    appearance = np.empty(len(first), np.int64)
    appearance[np.argsort(first, kind="stable")] = np.arange(len(first))  # class -> its rank of first appearance
    ranked = appearance[inverse]  # (n,)
    dealt = np.empty(n_rows, np.int64)
    dealt[np.argsort(ranked, kind="stable")] = np.arange(n_rows)  # position in the class-by-class order
    return dealt % num_folds


def _fold_split(n_rows: int, options: SplitOptions, labels: np.ndarray | None) -> OrderedSplit:
    """Return the split of fold ``options.fold`` of ``options.num_folds`` (see :func:`ordered_split`)."""
    assert options.num_folds is not None
    _, _, n_test = split_sizes(n_rows, 0.0, options.test_fraction)
    order = np.random.default_rng(options.seed).permutation(n_rows)
    folded = order[: n_rows - n_test]
    folds = fold_numbers(None if labels is None else labels[folded], options.num_folds, len(folded))
    held_in = folds == options.fold
    train, val = folded[~held_in], folded[held_in]
    n_train, n_val = len(train), len(val)
    fallback = slice(0, n_rows)
    return OrderedSplit(
        np.concatenate([train, val, order[n_rows - n_test :]]),
        {
            "train": slice(0, n_train),
            "val": slice(n_train, n_train + n_val),
            "test": slice(n_train + n_val, n_rows) if n_test else fallback,
            "all": slice(0, n_rows),
        },
    )


class MemoryStore(RowStore):
    """Features (N, D) and targets as tensors, rows stored in split order (one copy, not one per split).

    The rows are permuted once with the seed and cut into train, val and test blocks of the requested fractions.
    A fraction of 0 means that stage uses *all* rows, the right default for tiny tables (the 10-row sourdough
    data); data that comes with its own splits keeps them, and a stage without rows of its own uses the training
    rows.
    """

    in_memory = True

    def __init__(
        self,
        split: OrderedSplit,
        dtype: torch.dtype,
        task: str,
        features: Tensor,
        targets: Tensor,
        predict: Tensor | None,
        actual: Tensor | None,
        actual_from_rows: bool,
        weights: Tensor | None = None,
    ) -> None:
        super().__init__(split, dtype, task)
        self.features = features  # (N, D), rows in split order
        self.targets = targets  # (N, K) float or (N,) int64
        self.weights = weights  # (N,) in the training dtype, rows in split order; None: every row weighs 1
        self._predict = predict  # (M, D) from a predict file, else None
        self._actual = actual  # (M, K) or (M,): the predict file's targets, if it has them
        self._actual_from_rows = actual_from_rows  # predicting on the rows themselves, which have real targets
        self._ordered = split

    @classmethod
    def plan(cls, data: ArrayData, options: SplitOptions) -> OrderedSplit:
        """Cut the rows by ``data.split_sizes``, or permute them with the seed and cut them (or deal them in folds)."""
        labels = data.targets if data.class_names is not None else None  # stratified folds for class labels
        return ordered_split(data.features.shape[0], data.split_sizes, options, labels)

    @classmethod
    def build(cls, data: ArrayData, split: RowSplit, dtype: torch.dtype, task: str) -> MemoryStore:
        """Copy the rows into the training dtype in split order (the source arrays may then be released)."""
        assert isinstance(split, OrderedSplit)
        float_dtype = np.float64 if dtype == torch.float64 else np.float32
        targets = target_matrix(data.targets, task)
        target_dtype = np.int64 if task == "classification" else float_dtype
        predict, actual = data.predict_features, data.predict_targets
        return cls(
            split,
            dtype,
            task,
            torch.from_numpy(split.gather(data.features, "all", float_dtype)),
            torch.from_numpy(split.gather(targets, "all", target_dtype)),
            torch.from_numpy(np.ascontiguousarray(predict, dtype=float_dtype)) if predict is not None else None,
            _as_tensor(target_matrix(actual, task) if actual is not None else None, target_dtype),
            data.predict_features is None and data.unlabelled is None,
            None if data.weights is None else torch.from_numpy(split.gather(data.weights, "all", float_dtype)),
        )

    def read(self, split: str) -> tuple[Tensor, Tensor]:
        """Return views of the stored rows of ``split`` (no copy)."""
        rows = self._ordered.bounds[split]
        return self.features[rows], self.targets[rows]

    def read_weights(self, split: str) -> Tensor | None:
        """Return a view of the stored weights of ``split`` (``None`` when the rows have none)."""
        return None if self.weights is None else self.weights[self._ordered.bounds[split]]

    def _chunk(self, split: str, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        rows = slice(self._ordered.bounds[split].start + first, self._ordered.bounds[split].start + last)
        weights = None if self.weights is None else self.weights[rows].numpy()
        return self.features[rows].numpy(), self.targets[rows].numpy(), weights

    def predict_features(self) -> Tensor:
        """Return the predict file's features, else every row gathered back into the source's order (a copy)."""
        if self._predict is not None:
            return self._predict
        order = self._ordered.order
        return self.features if order is None else self.features.index_select(0, torch.from_numpy(np.argsort(order)))

    def predict_targets(self) -> Tensor | None:
        """Return the predict file's targets, or every row's gathered back into the source's order (a copy)."""
        if not self._actual_from_rows:
            return self._actual
        order = self._ordered.order
        return self.targets if order is None else self.targets.index_select(0, torch.from_numpy(np.argsort(order)))

    def loader(self, split: str, options: LoaderOptions) -> InMemoryBatchLoader:
        """Batches of views (or gathered copies when shuffling) of the stored rows."""
        tensors: tuple[Tensor, ...] = (self.predict_features(),) if split == "predict" else self.read(split)
        weights = self.read_weights(split) if split != "predict" else None
        if weights is not None:
            tensors = (*tensors, weights)
        return InMemoryBatchLoader(
            *tensors,
            **asdict(options),
        )


def _as_tensor(actual: np.ndarray | None, dtype: type) -> Tensor | None:
    """Return a predict file's targets as a tensor of ``dtype`` (``None`` stays)."""
    if actual is None:
        return None
    return torch.from_numpy(np.ascontiguousarray(actual, dtype=dtype))
