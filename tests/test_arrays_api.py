"""A trained model from Python: ``predict``, ``predict_proba`` and ``score`` on arrays, as scikit-learn's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.metrics import accuracy_score, r2_score

from lr_lightning.data import ArraysDataModule
from lr_lightning.errors import InputError
from lr_lightning.models import LinearRegression, LogisticRegression, MultiOutputRegression
from tests.helpers import fit, lbfgs


@pytest.fixture(scope="module")
def regression() -> tuple[LinearRegression, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3)) * [1.0, 10.0, 100.0] + 5.0
    targets = features @ np.array([2.0, -0.5, 0.01]) + 3.0 + 0.1 * rng.normal(size=200)
    model = LinearRegression(in_features=3, optimizer=lbfgs)
    fit(model, ArraysDataModule(features, targets, batch_size=200, shuffle=False), epochs=3)
    return model, features, targets


def test_predict_takes_any_numeric_array_and_returns_numpy_in_raw_units(
    regression: tuple[LinearRegression, np.ndarray, np.ndarray],
) -> None:
    model, features, targets = regression
    reference = SkLinearRegression().fit(features, targets)
    predicted = model.predict(features)  # float64 numpy, as the README's snippet
    assert isinstance(predicted, np.ndarray) and predicted.shape == (200,)
    np.testing.assert_allclose(predicted, reference.predict(features), rtol=1e-6)
    for same in (features.astype(np.float32), torch.from_numpy(features), features.tolist()):
        np.testing.assert_allclose(model.predict(same), predicted, rtol=1e-5)
    np.testing.assert_allclose(model.predict(np.rint(features).astype(np.int64)), model.predict(np.rint(features)))
    assert model.score(features, targets) == pytest.approx(r2_score(targets, reference.predict(features)), rel=1e-9)


def test_a_wrong_number_of_columns_is_one_line(regression: tuple[LinearRegression, np.ndarray, np.ndarray]) -> None:
    model = regression[0]
    with pytest.raises(
        InputError, match=r"^the features have shape \(4, 2\) but the model takes 3 columns \(x0, x1, x2\)$"
    ):
        model.predict(np.zeros((4, 2)))


def test_several_targets_come_back_as_columns() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(50, 2))
    targets = np.column_stack([features @ [1.0, 2.0], features @ [-1.0, 0.5]])
    model = MultiOutputRegression(in_features=2, out_features=2, optimizer=lbfgs)
    fit(model, ArraysDataModule(features, targets, batch_size=50, shuffle=False), epochs=3)
    assert model.predict(features).shape == (50, 2)
    assert model.score(features, targets) == pytest.approx(1.0, abs=1e-9)


def test_a_classifier_predicts_class_names_and_probabilities() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(300, 2))
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    model = LogisticRegression(in_features=2, class_names=["no", "yes"], optimizer=lbfgs)
    data = ArraysDataModule(features, labels, task="classification", class_names=["no", "yes"], batch_size=300)
    fit(model, data, epochs=5)
    probabilities = model.predict_proba(features)
    assert probabilities.shape == (300, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    names = model.predict(features)
    assert set(names) <= {"no", "yes"}
    np.testing.assert_array_equal(names == "yes", probabilities[:, 1] > 0.5)
    expected = accuracy_score(np.where(labels == 1, "yes", "no"), names)
    assert model.score(features, np.where(labels == 1, "yes", "no")) == expected > 0.95


def test_a_loaded_checkpoint_is_ready_to_predict(
    regression: tuple[LinearRegression, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model, features, _ = regression
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, tmp_path / "m.ckpt")
    loaded = LinearRegression.load_from_checkpoint(tmp_path / "m.ckpt")
    assert not loaded.training
    np.testing.assert_allclose(loaded.predict(features), model.predict(features), rtol=1e-5, atol=1e-5)  # float32
