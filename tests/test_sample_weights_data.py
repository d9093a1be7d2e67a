"""Sample weights in the data layer: read from a column or an array, checked, carried by every store and pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

from lr_lightning.data import ArraysDataModule, FileDataModule
from lr_lightning.errors import InputError
from tests.helpers import write_csv


@pytest.fixture
def weighted_table(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)) * [1.0, 5.0] + [2.0, -1.0]
    y = x @ np.array([1.0, -2.0]) + 3.0
    w = rng.integers(0, 4, size=40).astype(float)
    w[0] = 2.5
    table = np.column_stack([x, w, y])
    return write_csv(tmp_path / "weighted.csv", ["a", "b", "w", "y"], table.tolist()), table


def test_the_weight_column_is_neither_a_feature_nor_the_target(weighted_table: tuple[Path, np.ndarray]) -> None:
    path, _ = weighted_table
    data = FileDataModule(str(path), targets="y", weights="w", val_fraction=0, test_fraction=0)
    assert data.feature_names == ["a", "b"] and data.target_names == ["y"] and data.weighted
    # The weight column last: the default target is the last *other* column.
    rows = np.array([[1.0, 2.0, 1.0], [2.0, 3.0, 0.5], [3.0, 5.0, 2.0]])
    last = write_csv(path.parent / "last.csv", ["x", "y", "w"], rows.tolist())
    data = FileDataModule(str(last), weights="w", val_fraction=0, test_fraction=0)
    assert data.feature_names == ["x"] and data.target_names == ["y"]
    assert not FileDataModule(str(last), val_fraction=0, test_fraction=0).weighted


def test_batches_and_passes_carry_the_weights_row_for_row(weighted_table: tuple[Path, np.ndarray]) -> None:
    path, table = weighted_table
    data = FileDataModule(str(path), weights="w", batch_size=8, val_fraction=0.25, test_fraction=0, seed=3)
    data.setup("fit")
    for split in ("train", "val"):
        seen = [batch for batch in (data.train_dataloader() if split == "train" else data.val_dataloader())]
        assert all(len(batch) == 3 for batch in seen)
        features = torch.cat([batch[0] for batch in seen]).double().numpy()
        weights = torch.cat([batch[2] for batch in seen]).double().numpy()
        # Each row keeps its own weight, whatever the shuffle.
        source = np.abs(features[:, None, :] - table[None, :, :2]).sum(axis=2).argmin(axis=1)  # each row's origin
        np.testing.assert_allclose(weights, table[source, 2], rtol=1e-6)
    chunks = list(data.chunks("train"))
    assert sum(len(w) for _, _, w in chunks) == 30 and all(w.dtype == np.float64 for _, _, w in chunks)
    predict = next(iter(data.predict_dataloader()))
    assert len(predict) == 1  # predictions need no weights


def test_standardization_is_weighted_as_scikit_learns(weighted_table: tuple[Path, np.ndarray]) -> None:
    path, table = weighted_table
    data = FileDataModule(str(path), weights="w", val_fraction=0, test_fraction=0, standardize_targets=True)
    data.trainer = None
    data.setup("fit")
    scaling = data.scaling_statistics()
    reference = StandardScaler().fit(table[:, :2], sample_weight=table[:, 2])
    np.testing.assert_allclose(scaling.feature_mean.double().numpy(), reference.mean_, rtol=1e-6)
    np.testing.assert_allclose(scaling.feature_scale.double().numpy(), reference.scale_, rtol=1e-6)
    target = StandardScaler().fit(table[:, 3:], sample_weight=table[:, 2])
    np.testing.assert_allclose(scaling.target_mean.double().numpy(), target.mean_, rtol=1e-6)


def test_a_memory_mapped_file_carries_a_weight_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    array = np.column_stack([rng.normal(size=(600, 2)), rng.uniform(0.5, 2, 600), rng.normal(size=600)])
    np.save(tmp_path / "rows.npy", array)
    data = FileDataModule(str(tmp_path / "rows.npy"), weights="c2", val_fraction=0, test_fraction=0, batch_size=64)
    assert not data.source_loaded or data.out_of_core
    assert data.out_of_core and data.feature_names == ["c0", "c1"] and data.target_names == ["c3"]
    data.setup("fit")
    weights = np.concatenate([w for _, _, w in data.chunks("train")])
    np.testing.assert_array_equal(np.sort(weights), np.sort(array[:, 2]))
    batch = next(iter(data.train_dataloader()))
    assert len(batch) == 3 and batch[2].dtype == torch.float32


def test_arrays_take_weights_and_count_classes() -> None:
    rng = np.random.default_rng(2)
    labels = np.array([0, 1, 1, 2, 2, 2] * 5)
    data = ArraysDataModule(rng.normal(size=(30, 2)), labels, task="classification", weights=np.arange(30.0) + 1)
    assert data.weighted
    np.testing.assert_array_equal(data.class_counts(), [5, 10, 15])  # unweighted counts, as scikit-learn's balanced


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("-1", "weighted.csv, row 5, column 'w': weight -1.0 is not a number >= 0"),
        ("nan", "weighted.csv, row 5, column 'w': weight nan is not a number >= 0"),
        ("", "weighted.csv, row 5, column 'w': an empty cell is not a weight"),
        ("heavy", "weighted.csv, row 5, column 'w': 'heavy' is not a weight"),
    ],
)
def test_a_bad_weight_is_refused_naming_its_line(
    weighted_table: tuple[Path, np.ndarray], cell: str, message: str
) -> None:
    path, table = weighted_table
    rows: list[list[object]] = table.tolist()
    rows[3][2] = cell  # data row 3 is line 5 (the header is line 1)
    write_csv(path, ["a", "b", "w", "y"], rows)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _ = FileDataModule(str(path), weights="w").description


def test_weights_refusals(weighted_table: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, table = weighted_table
    with pytest.raises(InputError, match=r"no weight column 'weight' \(weights\)"):
        _ = FileDataModule(str(path), weights="weight").description
    with pytest.raises(InputError, match="column 'w' is both a feature and the weights"):
        _ = FileDataModule(str(path), features=["a", "w"], weights="w").description
    zeros = table.copy()
    zeros[:, 2] = 0
    write_csv(path, ["a", "b", "w", "y"], zeros.tolist())
    with pytest.raises(InputError, match=r"weighted.csv: every weight in .w. is 0"):
        _ = FileDataModule(str(path), weights="w").description
    np.savez(tmp_path / "arrays.npz", X=table[:, :2], y=table[:, 3])
    with pytest.raises(InputError, match=r"weights: .*arrays.npz is a .npz file"):
        _ = FileDataModule(str(tmp_path / "arrays.npz"), weights="w").description
    with pytest.raises(InputError, match=r"weights must have shape \(3,\)"):
        ArraysDataModule(np.ones((3, 1)), np.ones(3), weights=np.ones(4))
    with pytest.raises(InputError, match=r"the arrays, row 1, column .weights.: weight -2.0"):
        ArraysDataModule(np.ones((3, 1)), np.ones(3), weights=np.array([1.0, -2.0, 1.0]))


def test_training_rows_of_weight_zero_only_are_refused_at_fit(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", ["x", "y", "w"], [[float(i), 2.0 * i, 0.0] for i in range(6)])
    val = write_csv(tmp_path / "val.csv", ["x", "y", "w"], [[float(i), 2.0 * i, 1.0] for i in range(3)])
    data = FileDataModule(str(train), val_path=str(val), weights="w")
    assert data.weighted  # the files together have positive weights
    with pytest.raises(InputError, match=r"train.csv: every training row has weight 0 \(all rows of the file\)"):
        data.setup("fit")
    validation = write_csv(tmp_path / "val0.csv", ["x", "y", "w"], [[float(i), 2.0 * i, 0.0] for i in range(3)])
    zero_val = FileDataModule(str(val), val_path=str(validation), weights="w")
    with pytest.raises(InputError, match=r"every validation row has weight 0"):
        zero_val.setup("fit")  # fit validates every epoch: refused before it starts
