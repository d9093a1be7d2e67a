"""Logistic regression: label checks, MSE vs cross-entropy, and a checkpoint reused in a fresh process."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from lr_lightning.data import ArrayData, ArraysDataModule, SyntheticClassificationDataModule
from lr_lightning.errors import InputError
from lr_lightning.models import LogisticRegression
from tests.helpers import CONFIGS, run_cli


@pytest.mark.parametrize(
    ("labels", "class_names", "message"),
    [
        ([0.0, 0.5, 1.0, 1.0], None, r"look continuous \(row 1 holds 0.5\)"),
        ([0.0, np.nan, 1.0, 1.0], None, r"look continuous \(row 1 holds nan\)"),
        ([0, 1, 2, 1], ["a", "b"], r"row 2: label 2 outside 0..1"),
        ([0, -1, 1, 1], ["a", "b", "c"], r"row 1: label -1 outside 0..2"),
        ([1, 1, 1, 1], None, r"the training rows hold a single class \(1\)"),
        ([], None, r"no data"),
    ],
)
def test_bad_labels_are_named_once_by_the_data(labels: list, class_names: list | None, message: str) -> None:
    """The data layer checks labels when it loads them; a fit never starts on them."""
    features = np.arange(float(2 * len(labels))).reshape(len(labels), 2)
    data = ArraysDataModule(features, np.array(labels), task="classification", class_names=class_names)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(InputError, match=message):
        trainer.fit(LogisticRegression(in_features=2, num_classes=len(class_names or "ab")), datamodule=data)
    assert trainer.global_step == 0
    good = ArraysDataModule(np.eye(4, 2), np.array([0.0, 1.0, 1.0, 0.0]), task="classification")
    assert good.class_names == ["0", "1"] and good.data.targets.dtype == np.int64  # whole floats are classes


def test_a_model_with_other_classes_than_the_data_is_refused_before_the_first_step() -> None:
    data = SyntheticClassificationDataModule(n_samples=60, n_classes=3, n_informative=2)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(InputError, match=r"the data holds 3 classes \(0, 1, 2\) but the model has num_classes=2"):
        trainer.fit(LogisticRegression(in_features=4), datamodule=data)
    assert trainer.global_step == 0


def test_single_class_in_training_split_stops_fit_before_the_first_step() -> None:
    class OnlyOnes(SyntheticClassificationDataModule):
        def load_arrays(self) -> ArrayData:
            data = super().load_arrays()
            data.targets[:] = 1
            return data

    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(InputError, match=r"a single class \(1\)"):
        trainer.fit(LogisticRegression(in_features=4), datamodule=OnlyOnes(n_samples=20))
    assert trainer.global_step == 0


def _fit(loss: str, epochs: int) -> float:
    """Train from zero weights with full-batch SGD and return the training log-loss."""
    pl.seed_everything(0)
    data = SyntheticClassificationDataModule(n_samples=500, class_sep=2.0, batch_size=500, val_fraction=0.0)
    model = LogisticRegression(in_features=4, loss=loss, optimizer=lambda params: torch.optim.SGD(params, lr=0.5))
    torch.nn.init.zeros_(model.linear.weight)
    torch.nn.init.zeros_(model.linear.bias)
    trainer = pl.Trainer(
        max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0
    )
    trainer.fit(model, datamodule=data)
    features, labels = data.split_tensors("train")
    with torch.no_grad():
        probabilities = model(features)
    return float(torch.nn.functional.nll_loss(probabilities.clamp_min(1e-12).log(), labels))


def test_mse_on_probabilities_learns_slower_than_cross_entropy() -> None:
    """The notebook's lesson: with equal steps, the log-loss gradient gets further than MSE on the sigmoid."""
    cross_entropy, mse = _fit("cross_entropy", 30), _fit("mse", 30)
    assert cross_entropy < 0.8 * mse, (cross_entropy, mse)


def _read_predictions(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    with path.open() as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    columns = [j for j, name in enumerate(header) if name.startswith("p_")]
    probabilities = np.array([[float(row[j]) for j in columns] for row in body])
    return header, probabilities, [row[header.index("label")] for row in body]


@pytest.mark.slow
def test_checkpoint_predicts_the_same_in_a_fresh_process(tmp_path: Path) -> None:
    config = str(CONFIGS / "logistic_multiclass.yaml")
    small = ["--trainer.max_epochs", "3", "--data.init_args.n_samples", "600"]
    run_cli(["fit", "--config", config, *small], cwd=tmp_path)
    checkpoint = tmp_path / "runs/logistic_multiclass/version_0/checkpoints/latest.ckpt"
    run_cli(["predict", "--config", config, *small, "--ckpt_path", str(checkpoint)], cwd=tmp_path)
    written = tmp_path / "runs/logistic_multiclass/version_0/predict_0/predictions.csv"  # beside the fit
    header, probabilities, labels = _read_predictions(written)
    # The generated rows have their labels: the actual class and whether the prediction was right follow.
    assert header == ["p_0", "p_1", "p_2", "p_3", "label", "label_actual", "correct"]
    assert len(labels) == 600
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)

    model = LogisticRegression.load_from_checkpoint(checkpoint, weights_only=True)
    data = SyntheticClassificationDataModule(n_samples=600, n_features=6, n_informative=3, n_classes=4, class_sep=1.5)
    features = data.predict_features()  # all rows in the generator's order, as predict writes them
    with torch.no_grad():
        expected = model(features).double().numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6, atol=1e-7)
    assert labels == [model.class_names[j] for j in expected.argmax(axis=1)]
