"""The error of any affine model and its optimality gap from a streaming state, against the data themselves."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from lr_lightning.closed_form import RankDeficiencyWarning, through_point
from lr_lightning.streaming import (
    LeastSquaresState,
    mean_squared_error,
    optimality_gap,
    optimality_gap_per_target,
    solve,
)


def _design(rng: np.random.Generator, n_rows: int, n_features: int, n_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """Features with unequal scales and far-from-zero means, and noisy linear targets (n, K)."""
    scales = 10.0 ** rng.uniform(-1, 2, size=n_features)
    offsets = rng.normal(scale=100.0, size=n_features)
    features = rng.normal(size=(n_rows, n_features)) * scales + offsets
    targets = features @ rng.normal(size=(n_features, n_targets)) + 5.0 + rng.normal(size=(n_rows, n_targets))
    return features, targets


def _merged_state(rng: np.random.Generator, features: np.ndarray, targets: np.ndarray) -> LeastSquaresState:
    """Random chunks, some folded by update and some as their own states, merged in a random order."""
    cuts = np.sort(rng.choice(np.arange(1, features.shape[0]), size=9, replace=False))
    edges = [0, *cuts.tolist(), features.shape[0]]
    states: list[LeastSquaresState] = []
    for first, last in itertools.pairwise(edges):
        if states and rng.random() < 0.4:
            states[-1].update(features[first:last], targets[first:last])
        else:
            states.append(LeastSquaresState.from_chunk(features[first:last], targets[first:last]))
    while len(states) > 1:
        i, j = sorted(rng.choice(len(states), size=2, replace=False).tolist())
        states = [s for k, s in enumerate(states) if k not in (i, j)] + [states[i].merge(states[j])]
    return states[0]


def _direct_mse(features: np.ndarray, targets: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Per-target MSE (K,) on the data themselves."""
    return np.mean((targets - features @ coef.T - intercept) ** 2, axis=0)


def _lstsq_mse(features: np.ndarray, targets: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """Per-target least-squares optimum MSE (K,) from numpy.linalg.lstsq on the whole matrix."""
    design = np.hstack([features, np.ones((features.shape[0], 1))]) if fit_intercept else features
    solution, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return np.mean((targets - design @ solution) ** 2, axis=0)


def _perturbed(
    rng: np.random.Generator, coef: np.ndarray, intercept: np.ndarray, features: np.ndarray, fit_intercept: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A model near the optimum: weights moved by about 5% of a feature's spread, intercepts by about 0.5."""
    coef = coef + 0.05 * rng.normal(size=coef.shape) / features.std(axis=0)
    intercept = intercept + 0.5 * rng.normal(size=intercept.shape) if fit_intercept else np.zeros_like(intercept)
    return coef, intercept


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_gap_equals_the_direct_mse_minus_the_lstsq_optimum(fit_intercept: bool, n_targets: int) -> None:
    rng = np.random.default_rng(20 + n_targets + 2 * fit_intercept)
    features, targets = _design(rng, 400, 6, n_targets)
    state = _merged_state(rng, features, targets)
    optimum = solve(state, fit_intercept=fit_intercept)
    coef, intercept = _perturbed(rng, optimum.coef_, optimum.intercept_, features, fit_intercept)

    direct = _direct_mse(features, targets, coef, intercept) - _lstsq_mse(features, targets, fit_intercept)
    per_target = optimality_gap_per_target(state, coef, intercept, optimum)
    assert per_target.shape == (n_targets,)
    assert np.all(per_target > 0)
    np.testing.assert_allclose(per_target, direct, rtol=1e-10)
    assert optimality_gap(state, coef, intercept, optimum) == pytest.approx(float(np.mean(direct)), rel=1e-10)
    np.testing.assert_allclose(
        mean_squared_error(state, coef, intercept), _direct_mse(features, targets, coef, intercept), rtol=1e-10
    )
    # At the optimum itself the gap is exactly 0 and the MSE is the solution's.
    assert optimality_gap(state, optimum.coef_, optimum.intercept_, optimum) == 0.0
    assert float(np.mean(mean_squared_error(state, optimum.coef_, optimum.intercept_))) == pytest.approx(
        optimum.mse_, rel=1e-10
    )
    if fit_intercept:  # optimum=None solves with an intercept
        assert optimality_gap(state, coef, intercept) == pytest.approx(float(np.mean(direct)), rel=1e-10)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_gap_on_a_rank_deficient_design(fit_intercept: bool, n_targets: int) -> None:
    rng = np.random.default_rng(30 + n_targets + 2 * fit_intercept)
    base = rng.normal(size=(200, 3)) * [1.0, 10.0, 0.1] + [3.0, -20.0, 1.0]
    features = np.column_stack([base, base[:, 0] - 2 * base[:, 1]])  # rank 3 of 4
    targets = base @ rng.normal(size=(3, n_targets)) + rng.normal(size=(200, n_targets))
    state = _merged_state(rng, features, targets)
    with pytest.warns(RankDeficiencyWarning):
        optimum = solve(state, fit_intercept=fit_intercept)
    # Weights moved in every direction, the design's null direction included (which changes nothing).
    coef, intercept = _perturbed(rng, optimum.coef_, optimum.intercept_, features, fit_intercept)

    direct = _direct_mse(features, targets, coef, intercept) - _lstsq_mse(features, targets, fit_intercept)
    np.testing.assert_allclose(optimality_gap_per_target(state, coef, intercept, optimum), direct, rtol=1e-10)
    null = np.array([1.0, -2.0, 0.0, -1.0])  # features @ null == 0
    moved = coef + np.outer(np.arange(1, n_targets + 1), null)
    np.testing.assert_allclose(
        optimality_gap_per_target(state, moved, intercept, optimum), direct, rtol=1e-9, atol=1e-12
    )


def test_a_tiny_gap_keeps_its_digits_where_the_difference_of_two_mses_has_none() -> None:
    rng = np.random.default_rng(40)
    features, targets = _design(rng, 500, 5, 2)
    state = _merged_state(rng, features, targets)
    optimum = solve(state)
    delta_coef = 1e-11 * rng.normal(size=optimum.coef_.shape) / features.std(axis=0)
    delta_intercept = 1e-11 * rng.normal(size=2)
    coef, intercept = optimum.coef_ + delta_coef, optimum.intercept_ + delta_intercept
    gap = optimality_gap_per_target(state, coef, intercept, optimum)
    # The exact gap is the mean squared change of the predictions (the optimum's residuals are orthogonal to it);
    # the model's own change, coef - optimum.coef_, is exact (Sterbenz) where delta_coef was rounded when added.
    change = features @ (coef - optimum.coef_).T + (intercept - optimum.intercept_)  # (N, K), no cancellation
    np.testing.assert_allclose(gap, np.mean(change**2, axis=0), rtol=1e-8)
    assert np.all(gap < np.spacing(optimum.mse_))  # below the last digit of the MSEs: their difference is 0 or noise


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_gap_equals_the_direct_difference_of_objectives(fit_intercept: bool) -> None:
    rng = np.random.default_rng(50 + fit_intercept)
    features, targets = _design(rng, 300, 4, 3)
    state = _merged_state(rng, features, targets)
    strength, scale = 0.05, state.feature_std()
    optimum = solve(state, fit_intercept=fit_intercept, l2_strength=strength, feature_scale=scale)
    coef, intercept = _perturbed(rng, optimum.coef_, optimum.intercept_, features, fit_intercept)

    def objective(w: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _direct_mse(features, targets, w, b) + strength * np.sum((w * scale) ** 2, axis=1)

    direct = objective(coef, intercept) - objective(optimum.coef_, optimum.intercept_)
    gap = optimality_gap_per_target(state, coef, intercept, optimum, l2_strength=strength, feature_scale=scale)
    np.testing.assert_allclose(gap, direct, rtol=1e-10)
    assert np.all(gap > 0)
    if fit_intercept:  # optimum=None solves the same ridge
        assert optimality_gap(state, coef, intercept, l2_strength=strength, feature_scale=scale) == pytest.approx(
            float(np.mean(direct)), rel=1e-10
        )
    # The data MSE of the ridge optimum is above the least-squares one: the penalty's price, not a gap.
    np.testing.assert_allclose(
        mean_squared_error(state, optimum.coef_, optimum.intercept_),
        _direct_mse(features, targets, optimum.coef_, optimum.intercept_),
        rtol=1e-10,
    )


def test_gap_among_models_through_a_point() -> None:
    rng = np.random.default_rng(60)
    features, targets = _design(rng, 300, 4, 2)
    state = _merged_state(rng, features, targets)
    point, shift = features.mean(axis=0), targets.mean(axis=0) + np.array([1.0, -2.0])
    optimum = through_point(solve(state), point, shift)
    coef = optimum.coef_ + 0.05 * rng.normal(size=optimum.coef_.shape) / features.std(axis=0)
    intercept = shift - coef @ point  # the model passes through (point, shift) too
    direct = _direct_mse(features, targets, coef, intercept) - _direct_mse(
        features, targets, optimum.coef_, optimum.intercept_
    )
    np.testing.assert_allclose(optimality_gap_per_target(state, coef, intercept, optimum), direct, rtol=1e-10)


def test_an_intercept_against_the_no_intercept_optimum_adds_the_documented_term() -> None:
    rng = np.random.default_rng(70)
    features, targets = _design(rng, 300, 3, 2)
    state = _merged_state(rng, features, targets)
    optimum = solve(state, fit_intercept=False)
    coef, intercept = optimum.coef_ + 0.01, np.array([0.3, -0.7])
    direct = _direct_mse(features, targets, coef, intercept) - _lstsq_mse(features, targets, fit_intercept=False)
    mean_residual = state.mean[3:] - optimum.coef_ @ state.mean[:3]  # r* (K,)
    formula = optimality_gap_per_target(state, coef, intercept, optimum) - 2 * mean_residual * intercept
    np.testing.assert_allclose(formula, direct, rtol=1e-10)
    np.testing.assert_allclose(
        mean_squared_error(state, coef, intercept), _direct_mse(features, targets, coef, intercept), rtol=1e-10
    )


def test_shapes_are_checked() -> None:
    rng = np.random.default_rng(80)
    features, targets = _design(rng, 50, 3, 1)
    state = LeastSquaresState.from_chunk(features, targets)
    optimum = solve(state)
    # K = 1 also takes the weights as (D,) and a scalar intercept.
    assert optimality_gap(state, optimum.coef_[0], float(optimum.intercept_[0]), optimum) == 0.0
    with pytest.raises(ValueError, match=r"coef must have shape \(1, 3\)"):
        optimality_gap(state, np.zeros((2, 3)), None, optimum)
    with pytest.raises(ValueError, match=r"intercept must have shape \(1,\)"):
        mean_squared_error(state, np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="no rows"), warnings.catch_warnings():
        warnings.simplefilter("error")
        mean_squared_error(LeastSquaresState(3, 1), np.zeros(3))
