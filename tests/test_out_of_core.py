"""Out-of-core mode: a memmapped ``.npy`` trains without its features ever being loaded whole.

The package's own ArraysDataModule given ``np.load(path, mmap_mode="r")`` is what a file-backed DataModule does:
the base chooses the memory-mapped store for it (``in_memory=None``) and keeps the rows on disk.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from lr_lightning import least_squares
from lr_lightning.data import ArraysDataModule
from lr_lightning.data.contract import ArrayData
from lr_lightning.data.loader import DiskBatchLoader
from lr_lightning.data.rows import RowBlocks
from lr_lightning.data.scaling import ColumnMoments, split_moments
from lr_lightning.data.stores import MemmapStore, MemoryStore
from lr_lightning.models import LinearRegression
from tests.helpers import fit, lbfgs


def memmapped(path: str, targets: np.ndarray, **options: Any) -> ArraysDataModule:
    """The package's DataModule over features memory-mapped from ``path`` (only the header is read here)."""
    return ArraysDataModule(np.load(path, mmap_mode="r"), targets, **options)


def _problem(n_rows: int = 3000, n_features: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features far from zero on mixed scales, and a noisy linear target (N, 1)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_rows, n_features)) * np.linspace(0.5, 4.0, n_features) + 50.0
    targets = features @ np.linspace(-1.0, 2.0, n_features) + 3.0 + 0.3 * rng.normal(size=n_rows)
    return features, targets[:, None]


@pytest.fixture
def on_disk(tmp_path: Path) -> tuple[str, np.ndarray, np.ndarray]:
    """A float64 ``.npy`` of features in tmp_path, with the arrays it holds."""
    features, targets = _problem()
    path = tmp_path / "features.npy"
    np.save(path, features)
    return str(path), features, targets


def test_memmap_stays_on_disk_and_splits_are_disjoint(on_disk: tuple[str, np.ndarray, np.ndarray]) -> None:
    path, features, targets = on_disk
    module = memmapped(path, targets, val_fraction=0.2, test_fraction=0.1, block_rows=64)
    assert module.out_of_core
    module.setup("fit")
    assert isinstance(module.store, MemmapStore) and isinstance(module.store.features, np.memmap)  # no copy
    rows = {split: module.split.source_rows(split) for split in ("train", "val", "test")}
    assert [len(rows[s]) for s in ("train", "val", "test")] == [2100, 600, 300]  # the fractions, exactly
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(len(features)))
    # Rows read back are the file's rows, the targets aligned with them.
    x_val, y_val = module.split_tensors("val")
    np.testing.assert_array_equal(x_val.double().numpy(), features[rows["val"]].astype(np.float32))
    np.testing.assert_array_equal(y_val.double().numpy(), targets[rows["val"]].astype(np.float32))
    # The same seed gives the same split; another seed another one.
    again = memmapped(path, targets, val_fraction=0.2, test_fraction=0.1, block_rows=64)
    again.setup("fit")
    np.testing.assert_array_equal(again.split.source_rows("train"), rows["train"])
    other = memmapped(path, targets, val_fraction=0.2, test_fraction=0.1, block_rows=64, seed=1)
    other.setup("fit")
    assert not np.array_equal(other.split.source_rows("train"), rows["train"])


def test_in_memory_flag_overrides_the_default(on_disk: tuple[str, np.ndarray, np.ndarray]) -> None:
    path, features, targets = on_disk
    copied = memmapped(path, targets, in_memory=True)
    assert not copied.out_of_core
    copied.setup("fit")
    assert isinstance(copied.store, MemoryStore) and copied.store.features.shape == features.shape
    streamed = ArraysDataModule(features, targets, in_memory=False)
    assert streamed.out_of_core
    torch.testing.assert_close(streamed.split_tensors("train")[0], torch.from_numpy(features).float())


def test_in_memory_fit_loads_the_data_once() -> None:
    """Choosing between the two modes never reloads a source that the in-memory setup released."""
    features, targets = _problem(n_rows=400)

    class Counting(ArraysDataModule):
        loads = 0

        def load_arrays(self) -> ArrayData:
            Counting.loads += 1
            return super().load_arrays()

    module = Counting(features, targets, batch_size=100, val_fraction=0.25)
    fit(LinearRegression(in_features=features.shape[1], optimizer=lbfgs), module, epochs=1)
    assert not module.out_of_core and not module.source_loaded and Counting.loads == 1


@pytest.mark.parametrize("in_memory", [False, True])
def test_streaming_statistics_match_numpy(in_memory: bool) -> None:
    """Chan's merge over 37-row chunks of either store's training rows gives numpy's mean and std to 1e-10."""
    features, targets = _problem(n_rows=1001)
    features[:, 0] += 1e6  # a column far from zero, where E[x^2] - E[x]^2 would lose every digit
    module = ArraysDataModule(features, targets, in_memory=in_memory, block_rows=16, val_fraction=0.3)
    module.trainer = pl.Trainer(precision="64-true", logger=False)  # keep float64 rows: compare to 1e-10
    module.setup("fit")
    feature_moments, target_moments = split_moments(module.store, "train", chunk_rows=37)
    mean, std = feature_moments.mean_and_std()
    rows = features[module.split.source_rows("train")]
    np.testing.assert_allclose(target_moments.mean, targets[module.split.source_rows("train")].mean(axis=0))
    np.testing.assert_allclose(mean.numpy(), rows.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(std.numpy(), rows.std(axis=0), rtol=1e-10)
    # Merging is order-independent up to rounding: two halves merged either way.
    first, second = ColumnMoments.of(rows[:300]), ColumnMoments.of(rows[300:])
    np.testing.assert_allclose(first.merge(second).mean, second.merge(first).mean, rtol=1e-14)


def test_datamodule_statistics_are_the_training_rows(on_disk: tuple[str, np.ndarray, np.ndarray]) -> None:
    path, features, targets = on_disk
    module = memmapped(path, targets, val_fraction=0.25, standardize_targets=True, batch_size=len(features))
    model = LinearRegression(in_features=features.shape[1], optimizer=lbfgs)
    fit(model, module, epochs=1)  # precision 64-true: the statistics are kept in float64
    train = module.split.source_rows("train")
    scaling = module.scaling_statistics()
    assert scaling.feature_mean.dtype == torch.float64
    np.testing.assert_allclose(scaling.feature_mean.numpy(), features[train].mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(scaling.feature_scale.numpy(), features[train].std(axis=0), rtol=1e-10)
    np.testing.assert_allclose(scaling.target_scale.numpy(), targets[train].std(axis=0), rtol=1e-10)
    torch.testing.assert_close(model.feature_mean, scaling.feature_mean.to(model.feature_mean.dtype))  # handed over


def test_full_batch_fit_reaches_least_squares_like_in_memory(on_disk: tuple[str, np.ndarray, np.ndarray]) -> None:
    """L-BFGS in float64 on the memmap and on the same arrays in memory: both at float64 least squares."""
    path, features, targets = on_disk
    reference = least_squares(features, targets)
    sources = {
        True: memmapped(path, targets, batch_size=len(features), shuffle=False),
        False: ArraysDataModule(features, targets, batch_size=len(features), shuffle=False),
    }
    for out_of_core, data in sources.items():
        model = LinearRegression(in_features=features.shape[1], optimizer=lbfgs)
        fit(model, data, epochs=3)
        assert data.out_of_core is out_of_core
        np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6)
        np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-6)


def test_minibatch_fit_on_shuffled_blocks_reaches_least_squares(on_disk: tuple[str, np.ndarray, np.ndarray]) -> None:
    """SGD on 64-row batches of shuffled 16-row blocks, float32, decaying steps: within 1e-3 of least squares."""
    path, features, targets = on_disk
    data = memmapped(path, targets, batch_size=64, block_rows=16, val_fraction=0.2, standardize_targets=True)

    class DecayingSGD(LinearRegression):
        def configure_optimizers(self) -> dict:
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.7)}

    model = DecayingSGD(in_features=features.shape[1])
    fit(model, data, epochs=15, precision="32-true")
    train = data.split.source_rows("train")
    reference = least_squares(features[train], targets[train])
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-3, atol=1e-3)
    # The intercept carries the coefficients' errors times the feature means (about 50): 5 x 50 x 1e-4.
    np.testing.assert_allclose(model.intercept_, reference.intercept_, atol=0.025)
    predictions = features[train] @ model.coef_.T + model.intercept_
    assert np.mean((predictions - targets[train]) ** 2) <= reference.mse_ * (1 + 1e-4)


def _loader_rows(loader: DiskBatchLoader) -> list[int]:
    """Row numbers of what the loader yields, from a features column that holds the row number."""
    return [int(v) for batch in loader for v in batch[0][:, 0]]


def test_disk_shards_are_disjoint_and_reproducible(tmp_path: Path) -> None:
    np.save(tmp_path / "rows.npy", np.arange(1003.0)[:, None].repeat(2, axis=1))
    rows = np.load(tmp_path / "rows.npy", mmap_mode="r")
    blocks = RowBlocks.cut(0, len(rows), 10)

    def loader(rank: int, world_size: int, training: bool, seed: int = 0) -> DiskBatchLoader:
        return DiskBatchLoader(
            [rows], [np.float64], blocks, 32, shuffle=training, seed=seed, rank=rank, world_size=world_size,
            equal_shards=training,
        )  # fmt: skip

    shards = [_loader_rows(loader(rank, 3, training=True)) for rank in range(3)]
    assert [len(s) for s in shards] == [334, 334, 334]  # equal: the same number of steps on every rank
    assert len(set().union(*map(set, shards))) == 1002  # disjoint; one row skipped this epoch
    assert [len(loader(rank, 3, training=True)) for rank in range(3)] == [11, 11, 11]
    evaluation = [_loader_rows(loader(rank, 3, training=False)) for rank in range(3)]
    assert [row for shard in evaluation for row in shard] == list(
        range(1003)
    )  # every row once, in order, rank after rank
    # Order depends on (seed, epoch) only: a resumed loader at epoch 1 sees the batches of epoch 1.
    first = loader(0, 1, training=True)
    epoch_0 = _loader_rows(first)
    first.set_epoch(1)
    epoch_1 = _loader_rows(first)
    resumed = loader(0, 1, training=True)
    resumed.set_epoch(1)
    assert _loader_rows(resumed) == epoch_1 != epoch_0 and sorted(epoch_1) == list(range(1003))
    assert _loader_rows(loader(0, 1, training=True, seed=5)) != epoch_0


def test_batches_never_hold_the_whole_file(tmp_path: Path) -> None:
    """Through a fit and an epoch of every loader, no array or tensor the size of the features is allocated.

    The file (1.2 MB) is large next to what numpy and torch allocate for their own bookkeeping (a few tens of KB),
    so the bound of a tenth of the file proves that batches, not the file, are what is read.
    """
    features, targets = _problem(n_rows=30000)
    path = str(tmp_path / "features.npy")
    np.save(path, features)
    module = memmapped(path, targets, batch_size=1000, val_fraction=0.2, test_fraction=0.1)
    model = LinearRegression(in_features=features.shape[1], optimizer=lambda params: torch.optim.SGD(params, lr=0.01))
    trainer = fit(model, module, epochs=1, precision="32-true")
    attributes = [*vars(module).values(), *vars(module.store).values()]
    held = [value for value in attributes if isinstance(value, torch.Tensor | np.ndarray)]
    full_size = [value for value in held if value.size >= features.size]  # targets (N, 1) are kept by design
    assert len(full_size) == 1 and isinstance(full_size[0], np.memmap), [type(v) for v in full_size]
    assert trainer.global_step == 21  # 21,000 training rows in batches of 1,000
    tracemalloc.start()  # numpy reports its array allocations to tracemalloc
    for loader in (module.train_dataloader(), module.val_dataloader(), module.predict_dataloader()):
        for batch in loader:
            assert len(batch[0]) <= 1000
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < features.nbytes / 10, peak


def test_predictions_come_in_file_order(on_disk: tuple[str, np.ndarray, np.ndarray]) -> None:
    path, features, targets = on_disk
    module = memmapped(path, targets, batch_size=256, val_fraction=0.2)
    model = LinearRegression(in_features=features.shape[1], optimizer=lambda params: torch.optim.SGD(params, lr=0.01))
    trainer = fit(model, module, epochs=1, precision="32-true")
    predicted = torch.cat(trainer.predict(model, datamodule=module))
    expected = model(torch.from_numpy(features).float())
    torch.testing.assert_close(predicted, expected)


def _mapped_kib(path: str) -> int:
    """Resident KiB of this process's mappings of ``path``, from /proc/self/smaps."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        first = line.split(" ", 1)[0]
        if "-" in first and set(first) <= set("0123456789abcdef-"):  # a mapping's header: address range ... path
            inside = line.endswith(path)
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/self/smaps")
def test_read_pages_are_released(tmp_path: Path) -> None:
    """An epoch over a 16 MB memmap leaves almost none of it resident; reading it without release leaves all."""
    path = str(tmp_path / "big.npy")
    np.save(path, np.ones((262144, 8)))  # 16 MiB of float64
    array = np.load(path, mmap_mode="r")
    loader = DiskBatchLoader([array], [np.float32], RowBlocks.cut(0, len(array), 256), 4096, shuffle=True)
    assert sum(float(batch[0].sum()) for batch in loader) == array.shape[0] * array.shape[1]
    assert _mapped_kib(path) < 1024
    assert float(np.asarray(array, dtype=np.float32).sum()) > 0  # plain numpy reading touches every page ...
    assert _mapped_kib(path) > 15 * 1024  # ... and they stay resident in this process
