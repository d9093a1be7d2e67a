"""Sample weights and class weights in the models: the loss, its optimum, the logged losses and the metrics.

References are scikit-learn's estimators and metrics with ``sample_weight`` (and ``class_weight``) and
torchmetrics' unweighted metrics; the fits are full-batch L-BFGS in float64 (``64-true``).
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import Ridge
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from torchmetrics import Accuracy, MeanAbsoluteError, MeanSquaredError, R2Score

from lr_lightning.data import ArraysDataModule
from lr_lightning.errors import InputError
from lr_lightning.models import LinearRegression, LogisticRegression, MultiOutputRegression
from lr_lightning.models.weighted_metrics import (
    WeightedAccuracy,
    WeightedMeanAbsoluteError,
    WeightedMeanSquaredError,
    WeightedR2Score,
)
from lr_lightning.penalties import sklearn_logistic_c, sklearn_ridge_alpha


def lbfgs(params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """Full-batch L-BFGS that solves a float64 problem to about 1e-10."""
    return torch.optim.LBFGS(
        params, lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=0, line_search_fn="strong_wolfe"
    )


def trainer(epochs: int = 3) -> pl.Trainer:
    return pl.Trainer(
        precision="64-true",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def fit(model: pl.LightningModule, data: ArraysDataModule, epochs: int = 3) -> pl.Trainer:
    run = trainer(epochs)
    run.fit(model, datamodule=data)
    return run


def regression_rows(targets: int = 1, rows: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (N, 3), targets (N, K) and weights in [0, 3) with some exact zeros."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, 3)) * [1.0, 3.0, 0.5] + [0.0, 5.0, -1.0]
    y = x @ rng.normal(size=(3, targets)) + rng.normal(size=targets) + rng.normal(size=(rows, targets))
    w = rng.uniform(0, 3, size=rows)
    w[::9] = 0.0
    return x, y, w


def classification_rows(classes: int, rows: int = 150) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (N, 3), labels of unequal class sizes that no plane separates (a fifth are random), weights (0, 2)."""
    rng = np.random.default_rng(classes)
    x = rng.normal(size=(rows, 3)) * [1.0, 2.0, 0.5] + [1.0, 0.0, 3.0]
    logits = x @ rng.normal(size=(3, classes)) + np.linspace(1.5, -1.0, classes)
    y = logits.argmax(axis=1)
    noisy = rng.random(rows) < 0.2
    y[noisy] = rng.integers(0, classes, size=int(noisy.sum()))
    y[:classes] = np.arange(classes)  # every class present
    return x, y, rng.uniform(0.05, 2.0, size=rows)


def standardized(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The features as the model trains on them: standardized with the weighted training moments."""
    return StandardScaler().fit(x, sample_weight=w).transform(x)


def layer(model: LinearRegression | LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
    return model.linear.weight.detach().numpy(), model.linear.bias.detach().numpy()


def assert_same_intercepts(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Intercepts to rtol 1e-6; softmax's (C >= 3) up to a common shift, which no loss sees.

    Centred, an intercept may be near 0: each entry is held to 1e-6 of the largest too.
    """
    if len(ours) >= 3:
        ours, theirs = ours - ours.mean(), theirs - theirs.mean()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6 * np.abs(theirs).max())


# -- the optimum ---------------------------------------------------------------------------------------------------


def test_weighted_linear_regression_matches_sklearn_sample_weight() -> None:
    x, y, w = regression_rows()
    model = LinearRegression(in_features=3, optimizer=lbfgs)
    fit(model, ArraysDataModule(x, y, weights=w, batch_size=len(x), shuffle=False))
    reference = SkLinearRegression().fit(x, y[:, 0], sample_weight=w)
    np.testing.assert_allclose(model.coef_[0], reference.coef_, rtol=1e-6)
    np.testing.assert_allclose(model.intercept_[0], reference.intercept_, rtol=1e-6)


def test_weighted_multi_output_ridge_matches_sklearn_ridge_sample_weight() -> None:
    """Ridge's alpha is the penalties' mapping with N read as the sum of the weights."""
    x, y, w = regression_rows(targets=2)
    l2 = 0.05
    model = MultiOutputRegression(in_features=3, out_features=2, l2_strength=l2, optimizer=lbfgs)
    fit(model, ArraysDataModule(x, y, weights=w, batch_size=len(x), shuffle=False))
    reference = Ridge(alpha=sklearn_ridge_alpha(l2, w.sum())).fit(standardized(x, w), y, sample_weight=w)
    weight, bias = layer(model)
    np.testing.assert_allclose(weight, reference.coef_, rtol=1e-6)
    np.testing.assert_allclose(bias, reference.intercept_, rtol=1e-6)


@pytest.mark.parametrize("classes", [2, 3])
def test_weighted_logistic_regression_matches_sklearn_sample_weight(classes: int) -> None:
    x, y, w = classification_rows(classes)
    l2 = 0.01
    model = LogisticRegression(in_features=3, num_classes=classes, l2_strength=l2, optimizer=lbfgs)
    fit(model, ArraysDataModule(x, y, task="classification", weights=w, batch_size=len(x), shuffle=False))
    reference = SkLogisticRegression(C=sklearn_logistic_c(l2, w.sum()), solver="newton-cholesky", tol=1e-12)
    reference.fit(standardized(x, w), y, sample_weight=w)
    weight, bias = layer(model)
    np.testing.assert_allclose(weight, reference.coef_, rtol=1e-6)
    assert_same_intercepts(bias, reference.intercept_)


@pytest.mark.parametrize(
    ("classes", "class_weight", "sklearn_class_weight", "sample_weights"),
    [
        (2, "balanced", "balanced", False),  # n / (C n_k) from the class counts
        (2, "balanced", "balanced", True),  # from the classes' sums of sample weights, as scikit-learn
        (3, "balanced", "balanced", True),
        (3, {0: 2.5, "2": 0.5}, {0: 2.5, 2: 0.5}, True),  # class names as YAML may give them: ints or text
    ],
)
def test_class_weight_matches_sklearn(
    classes: int, class_weight: object, sklearn_class_weight: object, sample_weights: bool
) -> None:
    """Class weights times sample weights, as scikit-learn combines them; N in C's mapping is their sum."""
    x, y, w = classification_rows(classes)
    if not sample_weights:
        w = np.ones_like(w)
    l2 = 0.01
    model = LogisticRegression(
        in_features=3, num_classes=classes, l2_strength=l2, class_weight=class_weight, optimizer=lbfgs
    )
    data_weights = w if sample_weights else None
    fit(model, ArraysDataModule(x, y, task="classification", weights=data_weights, batch_size=len(x), shuffle=False))
    per_class = compute_class_weight(sklearn_class_weight, classes=np.arange(classes), y=y, sample_weight=data_weights)
    np.testing.assert_allclose(model.class_weights.numpy(), per_class, rtol=1e-15)
    row_weights = per_class[y] * w
    reference = SkLogisticRegression(
        C=sklearn_logistic_c(l2, row_weights.sum()),
        class_weight=sklearn_class_weight,
        solver="newton-cholesky",
        tol=1e-12,
    ).fit(standardized(x, w), y, sample_weight=data_weights)
    weight, bias = layer(model)
    np.testing.assert_allclose(weight, reference.coef_, rtol=1e-6)
    assert_same_intercepts(bias, reference.intercept_)


def test_newton_solver_weighs_rows_by_row_weights() -> None:
    """The Newton solver reads each row's weight from the model (class x sample weight): scikit-learn's optimum."""
    x, y, w = classification_rows(3)
    l2 = 0.01
    model = LogisticRegression(in_features=3, num_classes=3, l2_strength=l2, solver="newton", class_weight="balanced")
    fit(model, ArraysDataModule(x, y, task="classification", weights=w, batch_size=len(x)), epochs=8)
    per_class = compute_class_weight("balanced", classes=np.arange(3), y=y, sample_weight=w)
    reference = SkLogisticRegression(
        C=sklearn_logistic_c(l2, (per_class[y] * w).sum()), class_weight="balanced", solver="newton-cholesky", tol=1e-12
    ).fit(standardized(x, w), y, sample_weight=w)
    weight, bias = layer(model)
    np.testing.assert_allclose(weight, reference.coef_, rtol=1e-6)
    assert_same_intercepts(bias, reference.intercept_)


def test_integer_weights_fit_as_repeated_rows() -> None:
    x, y, _ = classification_rows(3, rows=60)
    counts = np.random.default_rng(0).integers(0, 4, size=len(y))
    weighted = LogisticRegression(in_features=3, num_classes=3, l2_strength=0.01, optimizer=lbfgs)
    fit(weighted, ArraysDataModule(x, y, task="classification", weights=counts, batch_size=len(x), shuffle=False))
    repeated = LogisticRegression(in_features=3, num_classes=3, l2_strength=0.01, optimizer=lbfgs)
    x_repeated, y_repeated = np.repeat(x, counts, axis=0), np.repeat(y, counts)
    fit(
        repeated,
        ArraysDataModule(x_repeated, y_repeated, task="classification", batch_size=len(x_repeated), shuffle=False),
    )
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-6)
    assert_same_intercepts(weighted.intercept_, repeated.intercept_)


# -- the logged losses and metrics -----------------------------------------------------------------------------------


def test_validation_logs_sklearns_weighted_regression_metrics_over_uneven_batches() -> None:
    """val_loss and the metrics are the weighted means over all rows, whatever the batches (7 rows each here)."""
    x, y, w = regression_rows(targets=2, rows=52)
    model = MultiOutputRegression(in_features=3, out_features=2, optimizer=lbfgs)
    data = ArraysDataModule(x, y, weights=w, batch_size=7, shuffle=False)
    fit(model, ArraysDataModule(x, y, weights=w, batch_size=len(x), shuffle=False), epochs=1)
    [logged] = trainer().validate(model, datamodule=data, verbose=False)
    with torch.no_grad():
        predicted = model(torch.as_tensor(x)).numpy()
    per_target = {
        "mse": mean_squared_error(y, predicted, sample_weight=w, multioutput="raw_values"),
        "mae": mean_absolute_error(y, predicted, sample_weight=w, multioutput="raw_values"),
        "r2": r2_score(y, predicted, sample_weight=w, multioutput="raw_values"),
    }
    for name, values in per_target.items():
        assert logged[f"val_{name}"] == pytest.approx(values.mean(), rel=1e-6), name
        for k, value in enumerate(values):
            assert logged[f"val_{name}/y{k}"] == pytest.approx(value, rel=1e-6), (name, k)
    assert logged["val_loss"] == pytest.approx(per_target["mse"].mean(), rel=1e-9)


def test_validation_logs_weighted_log_loss_and_accuracy_unweighted_auroc() -> None:
    """val_loss weighs rows by class x sample weight; accuracy by sample weight; AUROC by none."""
    x, y, w = classification_rows(2, rows=90)
    model = LogisticRegression(in_features=3, class_weight={"1": 3.0}, optimizer=lbfgs)
    fit(model, ArraysDataModule(x, y, task="classification", weights=w, batch_size=len(x), shuffle=False))
    data = ArraysDataModule(x, y, task="classification", weights=w, batch_size=13, shuffle=False)
    [logged] = trainer().validate(model, datamodule=data, verbose=False)
    with torch.no_grad():
        probabilities = model(torch.as_tensor(x)).numpy()  # (N, 2)
    row_weights = np.where(y == 1, 3.0, 1.0) * w
    assert logged["val_loss"] == pytest.approx(log_loss(y, probabilities, sample_weight=row_weights), rel=1e-9)
    accuracy = accuracy_score(y, probabilities.argmax(axis=1), sample_weight=w)
    assert logged["val_acc"] == pytest.approx(accuracy, rel=1e-6)
    assert accuracy != pytest.approx(accuracy_score(y, probabilities.argmax(axis=1)), rel=1e-6)  # weights matter
    assert logged["val_auroc"] == pytest.approx(roc_auc_score(y, probabilities[:, 1]), rel=1e-6)


def test_multiclass_validation_accuracy_is_sklearns_weighted_accuracy() -> None:
    x, y, w = classification_rows(3, rows=90)
    model = LogisticRegression(in_features=3, num_classes=3, optimizer=lbfgs)
    data = ArraysDataModule(x, y, task="classification", weights=w, batch_size=len(x), shuffle=False)
    fit(model, data)
    [logged] = trainer().validate(model, datamodule=data, verbose=False)
    with torch.no_grad():
        probabilities = model(torch.as_tensor(x)).numpy()
    assert logged["val_acc"] == pytest.approx(accuracy_score(y, probabilities.argmax(axis=1), sample_weight=w))
    assert logged["val_loss"] == pytest.approx(log_loss(y, probabilities, sample_weight=w), rel=1e-9)


def _updated(metric: torch.nn.Module, preds: torch.Tensor, target: torch.Tensor, **weights: torch.Tensor) -> float:
    """Update ``metric`` in two halves and return its value (all entries) as float64 numbers."""
    half = len(target) // 2
    for rows in (slice(None, half), slice(half, None)):
        metric.update(preds[rows], target[rows], **{k: v[rows] for k, v in weights.items()})
    return metric.compute().double().numpy()


def test_unweighted_metrics_equal_torchmetrics() -> None:
    generator = torch.Generator().manual_seed(0)
    preds, target = torch.randn(101, 3, generator=generator), torch.randn(101, 3, generator=generator) + 2
    pairs = [
        (WeightedMeanSquaredError(num_outputs=3), MeanSquaredError(num_outputs=3)),
        (WeightedMeanAbsoluteError(num_outputs=3), MeanAbsoluteError(num_outputs=3)),
        (WeightedR2Score(num_outputs=3), R2Score(multioutput="raw_values")),
        (WeightedMeanSquaredError(), MeanSquaredError()),
    ]
    for ours, theirs in pairs:
        k = ours.num_outputs
        np.testing.assert_allclose(
            _updated(ours, preds[:, :k], target[:, :k]), _updated(theirs, preds[:, :k], target[:, :k]), rtol=1e-6
        )
    probabilities = torch.rand(101, generator=generator)
    labels = torch.randint(0, 2, (101,), generator=generator)
    binary = _updated(WeightedAccuracy(task="binary"), probabilities, labels)
    assert binary == pytest.approx(_updated(Accuracy(task="binary"), probabilities, labels))
    scores = torch.softmax(torch.randn(101, 4, generator=generator), dim=-1)
    classes = torch.randint(0, 4, (101,), generator=generator)
    multiclass = _updated(WeightedAccuracy(task="multiclass"), scores, classes)
    expected = _updated(Accuracy(task="multiclass", num_classes=4, average="micro"), scores, classes)
    assert multiclass == pytest.approx(expected)


def test_weighted_metrics_equal_sklearn_with_sample_weight() -> None:
    rng = np.random.default_rng(3)
    preds, target = rng.normal(size=(64, 2)), rng.normal(size=(64, 2)) + 1
    w = rng.uniform(0, 2, size=64)
    w[:5] = 0
    as_tensors = (torch.as_tensor(preds), torch.as_tensor(target))
    weights = {"weights": torch.as_tensor(w)}
    for metric, reference in [
        (WeightedMeanSquaredError(num_outputs=2), mean_squared_error),
        (WeightedMeanAbsoluteError(num_outputs=2), mean_absolute_error),
        (WeightedR2Score(num_outputs=2), r2_score),
    ]:
        expected = reference(target, preds, sample_weight=w, multioutput="raw_values")
        np.testing.assert_allclose(_updated(metric.set_dtype(torch.float64), *as_tensors, **weights), expected, 1e-12)
    labels = rng.integers(0, 3, size=64)
    scores = torch.as_tensor(rng.dirichlet(np.ones(3), size=64))
    accuracy = _updated(
        WeightedAccuracy(task="multiclass").set_dtype(torch.float64), scores, torch.as_tensor(labels), **weights
    )
    assert accuracy == pytest.approx(accuracy_score(labels, scores.argmax(dim=1).numpy(), sample_weight=w), rel=1e-12)


def test_r2_of_constant_targets_is_sklearns() -> None:
    """A target that does not vary scores 1 if predicted exactly, else 0 (scikit-learn's force_finite)."""
    target = torch.full((6, 2), 1e-3, dtype=torch.float64)
    preds = torch.stack([target[:, 0], target[:, 1] + 1e-4], dim=1)
    metric = WeightedR2Score(num_outputs=2).set_dtype(torch.float64)
    metric.update(preds, target)
    expected = r2_score(target.numpy(), preds.numpy(), multioutput="raw_values")
    np.testing.assert_array_equal(metric.compute().numpy(), expected)


# -- the loss itself -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("classes", "loss"), [(2, "cross_entropy"), (3, "cross_entropy"), (2, "mse"), (3, "mse")])
def test_weighted_loss_is_sklearns_weighted_mean(classes: int, loss: str) -> None:
    rng = np.random.default_rng(classes)
    logits = torch.as_tensor(rng.normal(size=(40, 1 if classes == 2 else classes)))
    labels = torch.as_tensor(rng.integers(0, classes, size=40))
    w = rng.uniform(0, 2, size=40)
    model = LogisticRegression(in_features=2, num_classes=classes, loss=loss)
    value = float(model.compute_loss(logits, labels, torch.as_tensor(w)))
    probabilities = model.probabilities(logits).numpy()
    if loss == "cross_entropy":
        expected = log_loss(labels.numpy(), probabilities, sample_weight=w)
    else:
        one_hot = np.eye(classes)[labels.numpy()]
        columns = slice(1, 2) if classes == 2 else slice(None)
        expected = mean_squared_error(one_hot[:, columns], probabilities[:, columns], sample_weight=w)
    assert value == pytest.approx(expected, rel=1e-12)


def test_rows_that_all_weigh_zero_give_a_zero_loss_without_gradient() -> None:
    model = LinearRegression(in_features=2, out_features=2).double()
    outputs = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    loss = model.compute_loss(outputs, torch.randn(5, 2, dtype=torch.float64), torch.zeros(5, dtype=torch.float64))
    loss.backward()
    assert loss.item() == 0.0
    assert outputs.grad is not None and torch.all(outputs.grad == 0)


# -- class weights: the option, the buffer ---------------------------------------------------------------------------


def test_row_weights_multiply_class_and_sample_weights() -> None:
    model = LogisticRegression(in_features=2, num_classes=3, class_names=["a", "b", "c"], class_weight={"c": 4.0})
    labels = torch.tensor([0, 2, 1, 2])
    assert model.row_weights(labels, None).tolist() == [1.0, 4.0, 1.0, 4.0]
    assert model.row_weights(labels, torch.tensor([0.5, 0.5, 2.0, 0.0])).tolist() == [0.5, 2.0, 2.0, 0.0]
    plain = LogisticRegression(in_features=2, num_classes=3)
    assert plain.row_weights(labels, None) is None
    assert "class_weights" not in plain.state_dict()  # so checkpoints of unweighted models stay as they were


def test_class_weights_travel_in_the_checkpoint(tmp_path: Path) -> None:
    x, y, w = classification_rows(3, rows=60)
    model = LogisticRegression(in_features=3, num_classes=3, class_weight="balanced", optimizer=lbfgs)
    run = fit(model, ArraysDataModule(x, y, task="classification", weights=w, batch_size=len(x)), epochs=1)
    run.save_checkpoint(tmp_path / "balanced.ckpt")
    loaded = LogisticRegression.load_from_checkpoint(tmp_path / "balanced.ckpt")
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y, sample_weight=w)
    np.testing.assert_allclose(loaded.class_weights.numpy(), expected, rtol=1e-6)  # loaded in float32
    assert loaded.hparams["class_weight"] == "balanced"


@pytest.mark.parametrize(
    ("class_weight", "message"),
    [
        ("Balanced", "class_weight must be 'balanced', a weight per class name or null, got 'Balanced'"),
        ({"virginica": 2.0}, "class_weight names class 'virginica', which is not one of the classes (a, b)"),
        ({"a": -1.0}, "class_weight['a'] must be a finite number > 0, got -1.0"),
        ({"b": 0}, "class_weight['b'] must be a finite number > 0, got 0"),
        ({"b": float("nan")}, "class_weight['b'] must be a finite number > 0, got nan"),
        ({"b": True}, "class_weight['b'] must be a finite number > 0, got True"),
    ],
)
def test_bad_class_weight_is_refused_in_one_line(class_weight: object, message: str) -> None:
    with pytest.raises(InputError) as error:
        LogisticRegression(in_features=2, class_names=["a", "b"], class_weight=class_weight)  # type: ignore[arg-type]
    assert str(error.value) == message


def test_dict_keys_are_stored_as_text_so_the_hyperparameters_stay_plain() -> None:
    model = LogisticRegression(in_features=2, num_classes=3, class_weight={0: 2, 2: 0.5})  # type: ignore[dict-item]
    assert model.hparams["class_weight"] == {"0": 2.0, "2": 0.5}
    assert model.class_weights.tolist() == [2.0, 1.0, 0.5]
