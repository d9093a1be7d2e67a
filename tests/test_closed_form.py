import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from lr_lightning.closed_form import RankDeficiencyWarning, least_squares, ridge, through_point
from lr_lightning.data.sourdough import SOURDOUGH_FEATURES, SOURDOUGH_TARGETS


def test_sourdough_optimum_matches_numpy_lstsq() -> None:
    design = np.hstack([SOURDOUGH_FEATURES, np.ones((10, 1))])
    expected, *_ = np.linalg.lstsq(design, SOURDOUGH_TARGETS, rcond=None)
    solution = least_squares(SOURDOUGH_FEATURES, SOURDOUGH_TARGETS)
    np.testing.assert_allclose(solution.coef_, expected[:3].T, rtol=1e-10)
    np.testing.assert_allclose(solution.intercept_, expected[3], rtol=1e-10)
    # The figure the README and the acceptance criteria quote.
    assert solution.mse_ == pytest.approx(6.0605, abs=5e-5)
    assert solution.rank_ == 3


def test_single_target_shapes_and_prediction() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 4))
    true_coef = np.array([1.0, -2.0, 0.5, 3.0])
    targets = features @ true_coef + 7.0
    solution = least_squares(features, targets)
    assert solution.coef_.shape == (1, 4)
    assert solution.intercept_.shape == (1,)
    np.testing.assert_allclose(solution.coef_[0], true_coef, atol=1e-10)
    np.testing.assert_allclose(solution.intercept_, [7.0], atol=1e-10)
    np.testing.assert_allclose(solution.predict(features)[:, 0], targets, atol=1e-9)


def test_ridge_matches_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 5))
    targets = features @ rng.normal(size=(5, 2)) + rng.normal(size=(40, 2))
    solution = ridge(features, targets, alpha=3.0)
    reference = Ridge(alpha=3.0).fit(features, targets)
    np.testing.assert_allclose(solution.coef_, reference.coef_, rtol=1e-9)
    np.testing.assert_allclose(solution.intercept_, reference.intercept_, rtol=1e-9)


def test_singular_system_warns_with_rank() -> None:
    # The notebook's singular system: two identical columns.
    features = np.array([[13.0, 13.0], [13.0, 13.0], [5.0, 5.0]])
    targets = np.array([36.0, 54.0, 15.0])
    with pytest.warns(RankDeficiencyWarning, match=r"rank 1 < 2"):
        solution = least_squares(features, targets)
    assert solution.rank_ == 1
    assert np.all(np.isfinite(solution.coef_))


def test_underdetermined_system_warns() -> None:
    features = np.array([[5.0, 7.0, 1.0], [7.0, 10.0, 2.0]])
    with pytest.warns(RankDeficiencyWarning, match="underdetermined"):
        least_squares(features, np.array([4.0, 5.0]))


def test_full_rank_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        least_squares(SOURDOUGH_FEATURES, SOURDOUGH_TARGETS)


def test_bad_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="10 rows but targets have 9"):
        least_squares(SOURDOUGH_FEATURES, SOURDOUGH_TARGETS[:9])
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        ridge(SOURDOUGH_FEATURES, SOURDOUGH_TARGETS, alpha=-1.0)


def test_through_point_is_least_squares_without_intercept_on_centred_features() -> None:
    """y = t + W (x - mean(x)): scikit-learn's fit without intercept of y - t on the centred features."""
    rng = np.random.default_rng(3)
    features = rng.normal(size=(80, 3)) + np.array([4.0, -1.0, 0.5])
    targets = features @ rng.normal(size=(3, 2)) + [2.0, -3.0] + rng.normal(size=(80, 2))
    mean, shift = features.mean(axis=0), np.array([0.5, 0.0])
    solution = through_point(least_squares(features, targets), mean, shift)
    reference = LinearRegression(fit_intercept=False).fit(features - mean, targets - shift)
    np.testing.assert_allclose(solution.coef_, reference.coef_, rtol=1e-10)
    np.testing.assert_allclose(solution.intercept_, shift - reference.coef_ @ mean, rtol=1e-10)
    predictions = shift + reference.predict(features - mean)
    assert solution.mse_ == pytest.approx(float(np.mean((targets - predictions) ** 2)), rel=1e-12)
    np.testing.assert_allclose(solution.predict(features), predictions, rtol=1e-10, atol=1e-12)
