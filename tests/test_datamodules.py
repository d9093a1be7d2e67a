"""DataModules: shapes, seeded splits and batches, scaling fitted on train only, float64, true coefficients."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from lr_lightning import least_squares
from lr_lightning.cli import cli
from lr_lightning.data import (
    Data2DDataModule,
    InMemoryDataModule,
    SourdoughDataModule,
    SyntheticClassificationDataModule,
    SyntheticRegressionDataModule,
)
from tests.helpers import CONFIGS


def _small_modules() -> list[InMemoryDataModule]:
    return [
        SyntheticRegressionDataModule(n_samples=300, n_features=5, n_targets=2, seed=1, batch_size=32),
        SyntheticClassificationDataModule(n_samples=300, n_features=5, n_classes=3, n_informative=3, seed=1),
        Data2DDataModule(n_samples=50, in_dim=3, out_dim=2, val_fraction=0.2, test_fraction=0.2, seed=1),
        SourdoughDataModule(val_fraction=0.2, test_fraction=0.2, seed=1),
    ]


def _batches(module: InMemoryDataModule, split: str) -> list[torch.Tensor]:
    loader = getattr(module, f"{split}_dataloader")()
    return [torch.cat([t.reshape(len(t), -1).double() for t in batch], dim=1) for batch in loader]


@pytest.mark.parametrize("index", range(4))
def test_same_seed_gives_identical_splits_and_batches(index: int) -> None:
    first, second = _small_modules()[index], _small_modules()[index]
    for split in ("train", "val", "test"):
        for a, b in zip(_batches(first, split), _batches(second, split), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("index", range(4))
def test_splits_are_disjoint_and_cover_all_rows(index: int) -> None:
    module = _small_modules()[index]
    raw = module.data.features.copy()  # before setup releases the source arrays
    parts = [module.split_tensors(split)[0].double().numpy() for split in ("train", "val", "test")]
    sizes = [len(p) for p in parts]
    assert sum(sizes) == len(raw) and min(sizes) >= 1
    stacked = np.concatenate(parts)
    # Same multiset of rows as the source (sorted lexicographically), so the splits are a partition.
    key = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
    np.testing.assert_allclose(key(stacked), key(raw.astype(np.float32).astype(np.float64)))


def test_scaling_is_fitted_on_training_rows_only() -> None:
    module = SyntheticRegressionDataModule(n_samples=400, n_features=4, val_fraction=0.25, test_fraction=0.25)
    module.setup("fit")
    x_train, _ = module.split_tensors("train")
    x_all = torch.cat([module.split_tensors(s)[0] for s in ("train", "val", "test")])
    stats = module.scaling_statistics()
    torch.testing.assert_close(stats.feature_mean, x_train.double().mean(0).float())
    torch.testing.assert_close(stats.feature_scale, x_train.double().std(0, correction=0).float())
    assert not torch.allclose(stats.feature_mean, x_all.mean(0))


def test_regression_and_classification_expose_their_own_shape() -> None:
    regression = SyntheticRegressionDataModule(n_samples=50, n_features=3, n_targets=2)
    assert (regression.num_features, regression.num_targets) == (3, 2)
    assert regression.target_names == ["y0", "y1"] and not hasattr(regression, "num_classes")
    classification = SyntheticClassificationDataModule(n_samples=60, n_classes=3, n_informative=3)
    assert classification.num_classes == 3 and classification.class_names == ["0", "1", "2"]
    assert not hasattr(classification, "num_targets")
    _, labels = classification.split_tensors("train")
    assert labels.dtype == torch.int64 and labels.ndim == 1 and set(labels.tolist()) == {0, 1, 2}


@pytest.mark.parametrize(("in_dim", "out_dim"), [(1, 1), (2, 2), (3, 1), (1, 4), (5, 3)])
def test_data2d_targets_are_the_plane_plus_noise(in_dim: int, out_dim: int) -> None:
    module = Data2DDataModule(n_samples=41, in_dim=in_dim, out_dim=out_dim, noise=0.1, xlim=2.0)
    data = module.data
    assert data.features.shape == (41, in_dim) and data.targets.shape == (41, out_dim)
    np.testing.assert_allclose(data.features[:, 0], np.linspace(-2, 2, 41))
    plane = data.features @ module.true_weight + module.true_bias
    residual = data.targets - plane
    assert abs(residual.std() - 0.1) < 0.03  # f(x) + noise, not x + noise as in the notebook
    signs = (-1.0) ** np.arange(out_dim)
    np.testing.assert_allclose(plane[:, 0] * signs[0], 1 + in_dim * data.features[:, 0])


def test_float64_trainer_keeps_float64_values() -> None:
    module = SyntheticRegressionDataModule(n_samples=100, n_features=3, val_fraction=0, test_fraction=0)
    source = module.data.features.copy()
    module.trainer = pl.Trainer(precision="64-true", logger=False, enable_checkpointing=False)
    module.setup("fit")
    features, targets = module.split_tensors("train")
    assert features.dtype == targets.dtype == module.scaling_statistics().feature_mean.dtype == torch.float64
    np.testing.assert_array_equal(features.numpy(), source)  # not rounded through float32


def test_constant_feature_is_centred_not_divided_by_zero() -> None:
    class Constant(SyntheticRegressionDataModule):
        def load_arrays(self):
            data = super().load_arrays()
            data.features[:, 1] = 7.0
            return data

    module = Constant(n_samples=100, n_features=3, val_fraction=0, test_fraction=0)
    with pytest.warns(UserWarning, match="'x1' is constant"):
        stats = module.scaling_statistics()
    assert stats.feature_scale[1] == 1.0 and stats.feature_mean[1] == 7.0


def test_synthetic_config_recovers_true_coefficients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped synthetic config: coef_ within 0.02 of make_regression's truth (noise 1, 16,000 train rows).

    The least-squares solution itself differs from the truth by about noise / sqrt(N) ~ 0.008 per coefficient,
    and the coefficients are of order 10 to 100, so 0.02 is a relative error below 1e-3.
    """
    monkeypatch.chdir(tmp_path)
    run = cli(["fit", "--config", str(CONFIGS / "synthetic.yaml"), "--trainer.logger=false"])
    model, data = run.model, run.datamodule
    x_train, y_train = data.split_tensors("train")
    optimum = least_squares(x_train.double().numpy(), y_train.double().numpy())
    np.testing.assert_allclose(model.coef_, data.true_coef, atol=0.02)
    np.testing.assert_allclose(model.intercept_, data.true_intercept, atol=0.02)
    np.testing.assert_allclose(model.coef_, optimum.coef_, atol=5e-3)


def test_data2d_config_fits_the_plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = cli(["fit", "--config", str(CONFIGS / "data2d.yaml"), "--trainer.logger=false"])
    coef, intercept = run.model.coef_, run.model.intercept_
    # Identical input columns: only each output's weight sum (in_dim * (-1)^j = +-2) is identifiable.
    np.testing.assert_allclose(coef.sum(axis=1), [2.0, -2.0], atol=0.05)
    np.testing.assert_allclose(intercept, [1.0, -1.0], atol=0.05)


@pytest.mark.parametrize("index", range(4))
def test_predict_rows_come_back_in_source_order(index: int) -> None:
    module = _small_modules()[index]
    source = module.data.features.astype(np.float32)
    np.testing.assert_array_equal(module.predict_features().numpy(), source)
