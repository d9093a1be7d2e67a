"""Sample weights in the streamed least squares: scikit-learn's and statsmodels' weighted fits, row by row.

A row of weight w counts w times (integer weights are repeated rows), a row of weight 0 is as if absent, and
weights all 1 are no weights at all. References: scikit-learn's ``sample_weight``, statsmodels' ``WLS`` (fitted on
the rows of positive weight: ours, like R's ``lm``, does not count the others as observations) and numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.preprocessing import StandardScaler

from lr_lightning.inference import COV_TYPES, HCAccumulator, OLSFit, fit_ols, ols_results, prediction_intervals
from lr_lightning.penalties import sklearn_ridge_alpha
from lr_lightning.streaming import LeastSquaresState, mean_squared_error, merge_all, optimality_gap_per_target, solve
from tests.helpers import REGRESSION_STATISTICS

RTOL = 1e-9  # against scikit-learn's solutions
STATSMODELS_RTOL = 1e-8  # against statsmodels' summaries (we see 1e-12 and below)


def _diabetes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Diabetes features (442, 10), two targets (the progression and its log) and weights in [0.2, 3), 15 zeros."""
    features, target = load_diabetes(return_X_y=True)
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.2, 3.0, target.shape[0])
    weights[rng.choice(target.shape[0], 15, replace=False)] = 0.0
    return features, np.stack([target, np.log(target)], axis=1), weights


def _chunks(
    features: np.ndarray, targets: np.ndarray, weights: np.ndarray, rows: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [
        (features[i : i + rows], targets[i : i + rows], weights[i : i + rows]) for i in range(0, len(weights), rows)
    ]


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_weighted_state_solves_to_scikit_learns_weighted_least_squares_and_ridge(fit_intercept: bool) -> None:
    features, targets, weights = _diabetes()
    state = LeastSquaresState.from_chunks(_chunks(features, targets, weights, 50))
    assert state.n_rows == 427 and state.weight_sum == pytest.approx(np.sum(weights), rel=1e-14)

    ours = solve(state, fit_intercept)
    reference = LinearRegression(fit_intercept=fit_intercept).fit(features, targets, sample_weight=weights)
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=RTOL)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=RTOL, atol=1e-12)
    residuals = targets - reference.predict(features)
    np.testing.assert_allclose(ours.rss_, weights @ residuals**2, rtol=RTOL)
    np.testing.assert_allclose(ours.mse_, np.mean(np.average(residuals**2, axis=0, weights=weights)), rtol=RTOL)

    scale = state.feature_std()
    np.testing.assert_allclose(scale, StandardScaler().fit(features, sample_weight=weights).scale_, rtol=1e-12)
    l2_strength = 0.01
    ridge = solve(state, fit_intercept, l2_strength, feature_scale=scale)
    alpha = sklearn_ridge_alpha(l2_strength, np.sum(weights))  # N is the weight sum
    reference_ridge = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(
        features / scale, targets, sample_weight=weights
    )
    np.testing.assert_allclose(ridge.coef_ * scale, reference_ridge.coef_, rtol=RTOL)
    np.testing.assert_allclose(ridge.intercept_, reference_ridge.intercept_, rtol=RTOL, atol=1e-12)


def test_chunks_and_ranks_merged_in_any_order_give_the_one_pass_state() -> None:
    features, targets, weights = _diabetes()
    whole = LeastSquaresState.from_chunk(features, targets, weights)
    first = LeastSquaresState.from_chunks(_chunks(features[:200], targets[:200], weights[:200], 37))
    second = LeastSquaresState.from_chunks(_chunks(features[200:], targets[200:], weights[200:], 64))
    # The second rank's state travels as all-gather's flat vector.
    second = LeastSquaresState.from_vector(second.to_vector(), 10, 2)
    scale = np.abs(whole.r_factor).max()
    for merged in (first.merge(second), second.merge(first), merge_all([first, second])):
        assert merged.n_rows == whole.n_rows == 427
        assert merged.weight_sum == pytest.approx(whole.weight_sum, rel=1e-14)
        assert merged.log_weight_sum == pytest.approx(whole.log_weight_sum, rel=1e-13)
        np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-13)
        np.testing.assert_allclose(merged.r_factor, whole.r_factor, rtol=1e-10, atol=1e-12 * scale)
        np.testing.assert_allclose(solve(merged).coef_, solve(whole).coef_, rtol=1e-10)
    np.testing.assert_allclose(whole.mean, np.average(np.hstack([features, targets]), axis=0, weights=weights))
    positive = weights > 0
    assert whole.log_weight_sum == pytest.approx(np.sum(np.log(weights[positive])), rel=1e-13)


def test_integer_weights_are_repeated_rows() -> None:
    rng = np.random.default_rng(1)
    features, targets = rng.normal(size=(60, 4)) + 3.0, rng.normal(size=(60, 2))
    counts = rng.integers(1, 5, 60)
    weighted = LeastSquaresState.from_chunks(_chunks(features, targets, counts.astype(np.float64), 25))
    repeated = LeastSquaresState.from_chunk(np.repeat(features, counts, axis=0), np.repeat(targets, counts, axis=0))
    assert weighted.weight_sum == repeated.n_rows == np.sum(counts)
    assert weighted.n_rows == 60  # the degrees of freedom count rows, not weight
    np.testing.assert_allclose(weighted.mean, repeated.mean, rtol=1e-14)
    scatter = repeated.r_factor.T @ repeated.r_factor
    np.testing.assert_allclose(weighted.r_factor.T @ weighted.r_factor, scatter, rtol=1e-12, atol=1e-12)
    for fit_intercept in (True, False):
        np.testing.assert_allclose(solve(weighted, fit_intercept).coef_, solve(repeated, fit_intercept).coef_, 1e-12)
        np.testing.assert_allclose(solve(weighted, fit_intercept, 0.1).coef_, solve(repeated, fit_intercept, 0.1).coef_)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zero_weights_drop_rows_and_unit_weights_are_no_weights_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(2)
    features = (rng.normal(size=(300, 5)) * [1.0, 10.0, 100.0, 0.1, 3.0] + 5.0).astype(dtype)
    targets = rng.normal(size=(300, 2)).astype(dtype)
    bounds = range(0, 300, 70)
    plain = LeastSquaresState.from_chunks((features[i : i + 70], targets[i : i + 70]) for i in bounds)
    ones = LeastSquaresState.from_chunks(_chunks(features, targets, np.ones(300), 70))
    assert not ones.weighted and (ones.n_rows, ones.weight_sum, ones.log_weight_sum) == (300, 300.0, 0.0)
    np.testing.assert_array_equal(ones.mean, plain.mean)
    np.testing.assert_array_equal(ones.r_factor, plain.r_factor)

    weights = np.ones(300)
    weights[::7] = 0.0
    kept = weights > 0
    with_zeros = LeastSquaresState.from_chunks(_chunks(features, targets, weights, 70))
    dropped = LeastSquaresState.from_chunks(
        (features[i : i + 70][kept[i : i + 70]], targets[i : i + 70][kept[i : i + 70]]) for i in bounds
    )
    assert (with_zeros.n_rows, with_zeros.weight_sum) == (dropped.n_rows, dropped.weight_sum) == (257, 257.0)
    np.testing.assert_array_equal(with_zeros.mean, dropped.mean)
    np.testing.assert_array_equal(with_zeros.r_factor, dropped.r_factor)
    all_zero = LeastSquaresState(5, 2)
    all_zero.update(features[:10], targets[:10], np.zeros(10))
    assert all_zero.n_rows == 0 and all_zero.weight_sum == 0.0


def _statsmodels_wls(features: np.ndarray, target: np.ndarray, weights: np.ndarray, fit_intercept: bool) -> Any:
    """statsmodels' WLS of one target on the rows of positive weight."""
    kept = weights > 0
    design = sm.add_constant(features[kept], has_constant="add") if fit_intercept else features[kept]
    return sm.WLS(target[kept], design, weights=weights[kept], hasconst=None if fit_intercept else False)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("n_targets", [1, 2])
def test_inference_of_a_weighted_state_is_statsmodels_wls(fit_intercept: bool, cov_type: str, n_targets: int) -> None:
    features, both_targets, weights = _diabetes()
    targets = both_targets[:, 0] if n_targets == 1 else both_targets  # (N,) or (N, 2)
    state = LeastSquaresState.from_chunks(_chunks(features, targets, weights, 100))
    fit = fit_ols(state, fit_intercept)
    ranks = [HCAccumulator(fit), HCAccumulator(fit)]  # the robust pass split over two processes, then merged
    for index, (chunk_features, chunk_targets, chunk_weights) in enumerate(_chunks(features, targets, weights, 60)):
        ranks[index % 2].update(chunk_features, chunk_targets, chunk_weights)
    ours = ols_results(fit, cov_type, ranks[0].merge(ranks[1]))
    assert (ours.nobs, ours.df_resid) == (427, 427 - 10 - int(fit_intercept))
    for k in range(n_targets):
        reference = _statsmodels_wls(features, both_targets[:, k], weights, fit_intercept).fit(cov_type=cov_type)
        for name in ("params", "bse", "tvalues", "pvalues"):
            np.testing.assert_allclose(getattr(ours, name)[k], getattr(reference, name), rtol=STATSMODELS_RTOL)
        np.testing.assert_allclose(ours.conf_int(0.1)[k], reference.conf_int(0.1), rtol=STATSMODELS_RTOL)
        np.testing.assert_allclose(ours.cov_params()[k], reference.cov_params(), rtol=1e-7, atol=1e-12)
        for name in REGRESSION_STATISTICS:
            assert getattr(ours, name)[k] == pytest.approx(float(getattr(reference, name)), rel=STATSMODELS_RTOL), name
        assert (ours.nobs, ours.df_model, ours.df_resid) == (reference.nobs, reference.df_model, reference.df_resid)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_prediction_intervals_of_a_weighted_fit_are_statsmodels_with_new_rows_of_weight_one(
    fit_intercept: bool,
) -> None:
    features, targets, weights = _diabetes()
    fit = fit_ols(LeastSquaresState.from_chunk(features, targets, weights), fit_intercept)
    new_rows = features[:7] * 1.3
    ours = prediction_intervals(fit, new_rows, alpha=0.1)
    design = sm.add_constant(new_rows, has_constant="add") if fit_intercept else new_rows
    for k in range(2):
        reference = _statsmodels_wls(features, targets[:, k], weights, fit_intercept).fit()
        frame = reference.get_prediction(design).summary_frame(alpha=0.1)
        for column in ("mean", "mean_se", "mean_ci_lower", "mean_ci_upper", "obs_ci_lower", "obs_ci_upper"):
            np.testing.assert_allclose(getattr(ours, column)[:, k], frame[column].to_numpy(), STATSMODELS_RTOL)


def test_a_weighted_fit_round_trips_its_arrays_and_old_arrays_read_as_unweighted() -> None:
    features, targets, weights = _diabetes()
    weighted = fit_ols(LeastSquaresState.from_chunk(features, targets, weights))
    again = OLSFit.from_arrays(weighted.to_arrays())
    assert again.weighted and (again.weight_sum, again.log_weight_sum) == (weighted.weight_sum, weighted.log_weight_sum)
    assert ols_results(again).llf == pytest.approx(ols_results(weighted).llf, rel=1e-15)

    unweighted = fit_ols(LeastSquaresState.from_chunk(features, targets))
    arrays = unweighted.to_arrays()
    assert "weight_sum" not in arrays and "log_weight_sum" not in arrays  # the layout stored before weights
    restored = OLSFit.from_arrays(arrays)
    assert not restored.weighted and restored.weight_sum == 442.0
    state_arrays = LeastSquaresState.from_chunk(features, targets, weights).to_arrays()
    old_state = LeastSquaresState.from_arrays({k: v for k, v in state_arrays.items() if "weight" not in k})
    assert (old_state.n_rows, old_state.weight_sum, old_state.log_weight_sum) == (427, 427.0, 0.0)


def test_weighted_mean_squared_error_and_gap_are_numpys_weighted_means() -> None:
    features, targets, weights = _diabetes()
    state = LeastSquaresState.from_chunks(_chunks(features, targets, weights, 90))
    rng = np.random.default_rng(3)
    coef, intercept = rng.normal(size=(2, 10)) * 100.0, np.array([150.0, 4.0])
    residuals = targets - features @ coef.T - intercept
    expected = np.average(residuals**2, axis=0, weights=weights)
    np.testing.assert_allclose(mean_squared_error(state, coef, intercept), expected, rtol=1e-12)

    optimum = solve(state)
    best = np.average((targets - optimum.predict(features)) ** 2, axis=0, weights=weights)
    gap = optimality_gap_per_target(state, coef, intercept, optimum)
    np.testing.assert_allclose(gap, expected - best, rtol=1e-9)
    scale = state.feature_std()
    ridge = solve(state, True, 0.05, scale)
    ridge_mse = np.average((targets - ridge.predict(features)) ** 2, axis=0, weights=weights)
    objective = expected + 0.05 * np.sum((coef * scale) ** 2, axis=1)
    best_objective = ridge_mse + 0.05 * np.sum((ridge.coef_ * scale) ** 2, axis=1)
    np.testing.assert_allclose(
        optimality_gap_per_target(state, coef, intercept, ridge, 0.05, scale), objective - best_objective, rtol=1e-9
    )


def test_bad_weights_are_refused_with_a_message() -> None:
    state = LeastSquaresState(2, 1)
    rows, target = np.ones((3, 2)), np.ones(3)
    with pytest.raises(ValueError, match="one number per row, 3"):
        state.update(rows, target, np.ones(4))
    for bad in (np.array([1.0, -1.0, 1.0]), np.array([1.0, np.nan, 1.0]), np.array([1.0, np.inf, 1.0])):
        with pytest.raises(ValueError, match="finite and >= 0"):
            state.update(rows, target, bad)
    with pytest.raises(ValueError, match="a chunk is"):
        LeastSquaresState.from_chunks([(rows,)])
    fit = fit_ols(LeastSquaresState.from_chunk(np.arange(12.0).reshape(6, 2) ** 2, np.arange(6.0), np.ones(6)))
    with pytest.raises(ValueError, match="one number per row"):
        HCAccumulator(fit).update(np.ones((2, 2)), np.ones(2), np.ones(3))
    assert state.n_rows == 0
