"""The scikit-learn estimators against scikit-learn itself: fits, GridSearchCV choices, Pipelines, weights, pickling.

References are scikit-learn's estimators with the penalty mapping of lr_lightning.penalties: ``l2_strength`` on
N training rows is ``Ridge(alpha=N * l2_strength)`` and ``LogisticRegression(C=1 / (2 * N * l2_strength))``, both
on standardized features (a ``StandardScaler`` in front) or on raw ones with ``standardize=False``.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lr_lightning.errors import InputError
from lr_lightning.estimators import LightningLinearRegression, LightningLogisticRegression
from lr_lightning.penalties import sklearn_logistic_c, sklearn_ridge_alpha

FOLDS = KFold(5, shuffle=True, random_state=0)


def _diabetes(rows: int = 442) -> tuple[np.ndarray, np.ndarray]:
    features, targets = load_diabetes(return_X_y=True)
    return features[:rows], targets[:rows]


def _iris_names() -> tuple[np.ndarray, np.ndarray]:
    features, labels = load_iris(return_X_y=True)
    return features, np.array(["setosa", "versicolor", "virginica"])[labels]


def _sklearn_logistic(c: float) -> LogisticRegression:
    """scikit-learn's Newton solver, run to machine precision: a reference as exact as ours."""
    return LogisticRegression(C=c, solver="newton-cholesky", tol=1e-12, max_iter=1000)


# -- fits ------------------------------------------------------------------------------------------------------


def test_exact_fit_is_ridge_on_standardized_features_with_sklearn_shapes() -> None:
    features, targets = _diabetes()
    two_targets = np.column_stack([targets, targets**0.5])
    for y in (targets, two_targets):
        ours = LightningLinearRegression(l2_strength=0.01).fit(features, y)
        reference = make_pipeline(StandardScaler(), Ridge(alpha=sklearn_ridge_alpha(0.01, len(features)))).fit(
            features, y
        )
        ridge, scale = reference[-1], reference[0].scale_
        assert np.shape(ours.coef_) == np.shape(ridge.coef_) and np.shape(ours.intercept_) == np.shape(ridge.intercept_)
        np.testing.assert_allclose(ours.coef_, ridge.coef_ / scale, rtol=1e-9)
        np.testing.assert_allclose(ours.predict(features), reference.predict(features), rtol=1e-9)
        assert ours.predict(features).dtype == np.float64 and ours.n_features_in_ == 10
    assert isinstance(LightningLinearRegression().fit(features, targets).intercept_, float)


def test_fit_without_intercept_goes_through_the_origin_like_sklearn() -> None:
    features, targets = _diabetes()
    ours = LightningLinearRegression(fit_intercept=False).fit(features, targets)
    reference = LinearRegression(fit_intercept=False).fit(features, targets)
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-8)
    assert ours.intercept_ == 0.0
    with pytest.raises(InputError, match="standardize=True needs fit_intercept=True"):
        LightningLinearRegression(fit_intercept=False, standardize=True).fit(features, targets)


def test_logistic_matches_sklearn_with_string_labels() -> None:
    features, names = _iris_names()
    ours = LightningLogisticRegression(l2_strength=0.01).fit(features, names)
    reference = make_pipeline(StandardScaler(), _sklearn_logistic(sklearn_logistic_c(0.01, len(features))))
    reference.fit(features, names)
    np.testing.assert_array_equal(ours.classes_, reference.classes_)
    assert ours.coef_.shape == reference[-1].coef_.shape == (3, 4)
    np.testing.assert_allclose(ours.coef_, reference[-1].coef_ / reference[0].scale_, rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(features), reference.predict_proba(features), atol=1e-12)
    np.testing.assert_allclose(ours.decision_function(features), reference.decision_function(features), atol=1e-9)
    np.testing.assert_array_equal(ours.predict(features), reference.predict(features))
    assert ours.score(features, names) == reference.score(features, names)


def test_binary_logistic_has_sklearn_shapes_and_integer_labels() -> None:
    features, labels = load_breast_cancer(return_X_y=True)
    labels = np.where(labels == 1, 7, -3)  # any integers: classes_ holds them, sorted
    ours = LightningLogisticRegression(l2_strength=1e-3).fit(features, labels)
    reference = make_pipeline(StandardScaler(), _sklearn_logistic(sklearn_logistic_c(1e-3, len(features))))
    reference.fit(features, labels)
    np.testing.assert_array_equal(ours.classes_, [-3, 7])
    assert ours.coef_.shape == (1, 30) and ours.intercept_.shape == (1,)
    assert ours.decision_function(features).shape == (len(features),)
    np.testing.assert_allclose(ours.decision_function(features), reference.decision_function(features), atol=1e-9)
    np.testing.assert_array_equal(ours.predict(features), reference.predict(features))


def test_class_weight_by_label_and_balanced_match_sklearn() -> None:
    features, names = _iris_names()
    scaled = StandardScaler().fit_transform(features)
    for class_weight in ({"virginica": 3.0, "setosa": 0.5}, "balanced"):
        ours = LightningLogisticRegression(l2_strength=0.01, class_weight=class_weight).fit(features, names)
        # N reads the class-weighted row total (lr_lightning.penalties): 150 for "balanced", 50 rows per class.
        total = len(features) if class_weight == "balanced" else 50 * (3.0 + 0.5 + 1.0)
        reference = _sklearn_logistic(sklearn_logistic_c(0.01, total)).set_params(class_weight=class_weight)
        reference.fit(scaled, names)
        np.testing.assert_allclose(ours.decision_function(features), reference.decision_function(scaled), atol=1e-9)
    with pytest.raises(InputError, match="class_weight names class 'rose', which is not in y \\(classes: 'setosa', "):
        LightningLogisticRegression(class_weight={"rose": 2.0}).fit(features, names)


def test_gradient_solver_reaches_the_exact_solution() -> None:
    features, targets = _diabetes()
    exact = LightningLinearRegression(l2_strength=0.01).fit(features, targets)
    gradient = LightningLinearRegression(l2_strength=0.01, solver="gradient", optimizer="lbfgs", max_epochs=5)
    gradient.fit(features, targets)
    np.testing.assert_allclose(gradient.predict(features), exact.predict(features), rtol=1e-6)
    assert gradient.n_iter_ == 5


# -- model selection -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("standardize", [True, False])
def test_grid_search_picks_the_ridge_grid_choice(standardize: bool) -> None:
    """440 rows: every training fold has 352, so one mapped alpha per grid value serves all five folds."""
    features, targets = _diabetes(440)
    grid = np.logspace(-4, 0, 20) if standardize else np.logspace(-5, -1, 20)
    ours = GridSearchCV(LightningLinearRegression(standardize=standardize), {"l2_strength": grid}, cv=FOLDS)
    ridge = make_pipeline(StandardScaler(), Ridge()) if standardize else make_pipeline(Ridge())
    alphas = [sklearn_ridge_alpha(strength, 352) for strength in grid]
    reference = GridSearchCV(ridge, {"ridge__alpha": alphas}, cv=FOLDS)
    ours.fit(features, targets)
    reference.fit(features, targets)
    assert ours.best_index_ == reference.best_index_
    assert 0 < ours.best_index_ < len(grid) - 1  # an interior choice: the grid decides something
    for split in range(5):
        key = f"split{split}_test_score"
        np.testing.assert_allclose(ours.cv_results_[key], reference.cv_results_[key], rtol=1e-6)
    # The refit on all 440 rows: the same l2_strength is Ridge's alpha for 440 rows, not the folds' 352.
    best = make_pipeline(StandardScaler() if standardize else "passthrough", Ridge()).set_params(
        ridge__alpha=sklearn_ridge_alpha(grid[ours.best_index_], 440)
    )
    np.testing.assert_allclose(ours.predict(features), best.fit(features, targets).predict(features), rtol=1e-9)


def test_grid_search_picks_the_logistic_grid_choice() -> None:
    """565 of the 569 rows: every training fold has 452; scored by log-loss, so the scores are continuous."""
    features, labels = load_breast_cancer(return_X_y=True)
    features, labels = features[:565], labels[:565]
    grid = np.logspace(-3.5, -1, 6)
    ours = GridSearchCV(LightningLogisticRegression(), {"l2_strength": grid}, cv=FOLDS, scoring="neg_log_loss")
    reference = GridSearchCV(
        make_pipeline(StandardScaler(), _sklearn_logistic(1.0)),
        {"logisticregression__C": [sklearn_logistic_c(strength, 452) for strength in grid]},
        cv=FOLDS,
        scoring="neg_log_loss",
    )
    ours.fit(features, labels)
    reference.fit(features, labels)
    assert ours.best_index_ == reference.best_index_
    assert 0 < ours.best_index_ < len(grid) - 1
    for split in range(5):
        key = f"split{split}_test_score"
        np.testing.assert_allclose(ours.cv_results_[key], reference.cv_results_[key], rtol=1e-6)


def test_in_a_pipeline_and_cross_val_score() -> None:
    features, targets = _diabetes()
    ours = make_pipeline(StandardScaler(), LightningLinearRegression()).fit(features, targets)
    reference = make_pipeline(StandardScaler(), LinearRegression()).fit(features, targets)
    np.testing.assert_allclose(ours.predict(features), reference.predict(features), rtol=1e-9)
    np.testing.assert_allclose(
        cross_val_score(LightningLinearRegression(), features, targets, cv=FOLDS),
        cross_val_score(LinearRegression(), features, targets, cv=FOLDS),
        rtol=1e-9,
    )
    iris, names = _iris_names()
    classifier = make_pipeline(StandardScaler(), LightningLogisticRegression(l2_strength=0.01)).fit(iris, names)
    sklearn_classifier = make_pipeline(StandardScaler(), _sklearn_logistic(sklearn_logistic_c(0.01, len(iris))))
    sklearn_classifier.fit(iris, names)
    np.testing.assert_allclose(classifier.predict_proba(iris), sklearn_classifier.predict_proba(iris), atol=1e-12)


# -- input, weights, pickling ---------------------------------------------------------------------------------


def test_pandas_input_sets_feature_names() -> None:
    data = load_diabetes(as_frame=True)
    ours = LightningLinearRegression().fit(data.data, data.target)
    np.testing.assert_array_equal(ours.feature_names_in_, data.data.columns)
    assert ours.module_.feature_names == list(data.data.columns)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):  # scikit-learn's own warning
        np.testing.assert_allclose(ours.predict(data.data.to_numpy()), ours.predict(data.data), rtol=1e-12)
    renamed = data.data.rename(columns={"bmi": "mass"})
    with pytest.raises(InputError, match="feature names should match"):
        ours.predict(renamed)
    frame = pd.DataFrame(load_iris().data, columns=["a", "b", "c", "d"])
    assert list(LightningLogisticRegression().fit(frame, load_iris().target).feature_names_in_) == ["a", "b", "c", "d"]


def test_sample_weight_equals_repeated_rows() -> None:
    rng = np.random.default_rng(0)
    features, targets = _diabetes()
    counts = rng.integers(0, 4, size=len(features))  # 0 drops a row, 3 repeats it thrice
    weighted = LightningLinearRegression(l2_strength=0.01).fit(features, targets, sample_weight=counts)
    repeated = LightningLinearRegression(l2_strength=0.01).fit(
        np.repeat(features, counts, 0), np.repeat(targets, counts)
    )
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-9)
    iris, names = _iris_names()
    counts = rng.integers(0, 4, size=len(iris))
    weighted_classifier = LightningLogisticRegression(l2_strength=0.01).fit(iris, names, sample_weight=counts)
    repeated_classifier = LightningLogisticRegression(l2_strength=0.01).fit(
        np.repeat(iris, counts, 0), np.repeat(names, counts)
    )
    np.testing.assert_allclose(weighted_classifier.coef_, repeated_classifier.coef_, rtol=1e-8)
    with pytest.raises(InputError, match=r"row 3, column 'sample_weight': weight -1\.0 is not a number >= 0"):
        LightningLinearRegression().fit(features[:5], targets[:5], sample_weight=[1, 1, 1, -1, 1])


def test_pickled_estimators_predict_the_same() -> None:
    features, targets = _diabetes()
    iris, names = _iris_names()
    regressor = LightningLinearRegression(solver="gradient", optimizer="sgd", max_epochs=2).fit(features, targets)
    classifier = LightningLogisticRegression().fit(iris, names)
    for fitted, x, method in ((regressor, features, "predict"), (classifier, iris, "predict_proba")):
        restored = pickle.loads(pickle.dumps(fitted))
        np.testing.assert_array_equal(getattr(restored, method)(x), getattr(fitted, method)(x))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(classifier)).predict(iris), classifier.predict(iris))


def test_fit_prints_nothing_writes_nothing_and_restores_logging(
    in_tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    levels = {name: logging.getLogger(name).level for name in ("lightning.pytorch", "lightning.fabric")}
    features, targets = _diabetes()
    iris, names = _iris_names()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LightningLinearRegression().fit(features, targets)
        LightningLinearRegression(solver="gradient", max_epochs=1).fit(features, targets)
        LightningLogisticRegression().fit(iris, names)
    assert [str(warning.message) for warning in caught] == []
    assert capfd.readouterr() == ("", "")
    assert list(in_tmp_path.iterdir()) == []
    assert {name: logging.getLogger(name).level for name in levels} == levels


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (LightningLinearRegression(optimizer="rmsprop"), "optimizer must be one of sgd, adam, lbfgs, got 'rmsprop'"),
        (LightningLinearRegression(l1_strength=0.1), "solver 'exact' solves least squares and ridge in closed form"),
        (LightningLinearRegression(precision="16-mixed"), "precision must be one of 64-true, 32-true"),
        (LightningLinearRegression(max_epochs=0), "max_epochs must be an integer >= 1 or None, got 0"),
        (LightningLinearRegression(l2_strength=-1.0), "l2_strength must be >= 0 and finite, got -1.0"),
        (LightningLogisticRegression(tol=-1.0), "tol must be a number >= 0, got -1.0"),
        (LightningLogisticRegression(accelerator="tpux"), "accelerator 'tpux': You selected an invalid accelerator"),
        (LightningLogisticRegression(solver="lbfgs"), "solver must be one of gradient, newton, got 'lbfgs'"),
    ],
)
def test_bad_options_name_the_option(estimator: object, message: str) -> None:
    features, labels = load_iris(return_X_y=True)
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        estimator.fit(features, labels)  # type: ignore[attr-defined]


def test_newton_short_of_tol_warns_as_sklearn_does() -> None:
    features, labels = load_iris(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="Newton's method ran its max_epochs=2 passes"):
        LightningLogisticRegression(max_epochs=2).fit(features, labels)


def test_one_class_and_continuous_labels_are_refused() -> None:
    features, _ = load_iris(return_X_y=True)
    with pytest.raises(InputError, match="y has only one class of positive weight \\('a'\\)"):
        LightningLogisticRegression().fit(features, np.array(["a"] * len(features)))
    with pytest.raises(InputError, match="Unknown label type: continuous"):
        LightningLogisticRegression().fit(features, features[:, 0])
