"""The one-pass streaming QR least squares against numpy.linalg.lstsq, NIST certified values and scikit-learn."""

from __future__ import annotations

import io
import itertools
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge, RidgeCV

from lr_lightning.closed_form import RankDeficiencyWarning, least_squares
from lr_lightning.data.loader import shard_bounds
from lr_lightning.penalties import sklearn_ridge_alpha
from lr_lightning.streaming import (
    LeastSquaresState,
    LeaveOneOut,
    generalized_cross_validation,
    leave_one_out,
    merge_all,
    ridge_path,
    solve,
)
from tests.helpers import LONGLEY_COEF, LONGLEY_INTERCEPT, LONGLEY_RESIDUAL_SD, longley


def _design(rng: np.random.Generator, n_rows: int, n_features: int, n_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """Features with unequal scales and far-from-zero means, and noisy linear targets (n, K)."""
    scales = 10.0 ** rng.uniform(-1, 2, size=n_features)
    offsets = rng.normal(scale=100.0, size=n_features)
    features = rng.normal(size=(n_rows, n_features)) * scales + offsets
    targets = features @ rng.normal(size=(n_features, n_targets)) + 5.0 + rng.normal(size=(n_rows, n_targets))
    return features, targets


def _random_chunks(rng: np.random.Generator, n_rows: int) -> list[slice]:
    """Contiguous chunks of random sizes (some of one row) covering 0..n_rows."""
    cuts = np.sort(rng.choice(np.arange(1, n_rows), size=min(12, n_rows - 1), replace=False))
    edges = [0, *cuts.tolist(), n_rows]
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


def _random_tree_state(rng: np.random.Generator, features: np.ndarray, targets: np.ndarray) -> LeastSquaresState:
    """Stream random chunks, some by update and some as their own states, then merge them in a random tree."""
    states: list[LeastSquaresState] = []
    for piece in _random_chunks(rng, features.shape[0]):
        if states and rng.random() < 0.4:
            states[-1].update(features[piece], targets[piece])
        else:
            states.append(LeastSquaresState.from_chunk(features[piece], targets[piece]))
    while len(states) > 1:
        i, j = sorted(rng.choice(len(states), size=2, replace=False).tolist())
        merged = states[i].merge(states[j])
        states = [s for k, s in enumerate(states) if k not in (i, j)] + [merged]
    return states[0]


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_chunked_and_merged_equals_lstsq_on_the_whole_matrix(fit_intercept: bool, n_targets: int) -> None:
    rng = np.random.default_rng(10 + n_targets + 2 * fit_intercept)
    features, targets = _design(rng, 300, 6, n_targets)
    state = _random_tree_state(rng, features, targets)
    assert state.n_rows == 300

    design = np.hstack([features, np.ones((300, 1))]) if fit_intercept else features
    expected, rss, _, _ = np.linalg.lstsq(design, targets, rcond=None)
    solution = solve(state, fit_intercept=fit_intercept)
    assert solution.coef_.shape == (n_targets, 6)
    assert solution.intercept_.shape == (n_targets,)
    assert _relative_error(solution.coef_, expected[:6].T) < 1e-10
    if fit_intercept:
        assert _relative_error(solution.intercept_, expected[6]) < 1e-10
    else:
        np.testing.assert_array_equal(solution.intercept_, np.zeros(n_targets))
    np.testing.assert_allclose(solution.rss_, rss, rtol=1e-10)
    np.testing.assert_allclose(
        solution.singular_values_,
        np.linalg.svd(design[:, :6] - (features.mean(0) if fit_intercept else 0), compute_uv=False),
        rtol=1e-10,
    )
    reference = least_squares(features, targets, fit_intercept=fit_intercept)
    assert solution.mse_ == pytest.approx(reference.mse_, rel=1e-10)
    assert solution.rank_ == 6
    np.testing.assert_allclose(solution.predict(features), reference.predict(features), rtol=1e-9, atol=1e-9)


def test_ranks_streaming_their_shards_merge_to_the_whole_answer() -> None:
    rng = np.random.default_rng(4)
    features, targets = _design(rng, 101, 4, 2)
    gathered = []
    for rank in range(4):
        offset, rows = shard_bounds(101, rank, 4, equal_shards=False)
        state = LeastSquaresState(4, 2)
        for first in range(offset, offset + rows, 7):
            last = min(first + 7, offset + rows)
            state.update(features[first:last], targets[first:last])
        gathered.append({name: torch.from_numpy(np.asarray(value)) for name, value in state.to_arrays().items()})
    merged = merge_all([LeastSquaresState.from_arrays(arrays) for arrays in gathered])
    whole = LeastSquaresState.from_chunk(features, targets)
    assert merged.n_rows == 101
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(merged.r_factor, whole.r_factor, rtol=1e-10, atol=1e-10 * np.abs(whole.r_factor).max())
    np.testing.assert_allclose(solve(merged).coef_, solve(whole).coef_, rtol=1e-10)


def test_longley_certified_values_where_the_normal_equations_lose_digits() -> None:
    features, targets = longley()
    certified = np.concatenate([[LONGLEY_INTERCEPT], LONGLEY_COEF])
    state = LeastSquaresState(6, 1)
    for piece in (slice(0, 3), slice(3, 4), slice(4, 11), slice(11, 16)):
        state.update(features[piece], targets[piece])
    solution = solve(state)
    estimate = np.concatenate([solution.intercept_, solution.coef_[0]])
    qr_error = np.max(np.abs(estimate - certified) / np.abs(certified))
    assert qr_error < 1e-11
    assert solution.rss_[0] == pytest.approx(LONGLEY_RESIDUAL_SD**2 * (16 - 7), rel=1e-10)

    # The normal equations on the same design with its column of ones, in float64.
    design = np.hstack([np.ones((16, 1)), features])
    normal = np.linalg.solve(design.T @ design, design.T @ targets)
    normal_error = np.max(np.abs(normal - certified) / np.abs(certified))
    assert normal_error > 1e-10
    assert normal_error > 1000 * qr_error


def test_near_collinear_columns_match_lstsq_where_the_normal_equations_fail() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    features = np.column_stack([x, x + 1e-7 * rng.normal(size=500), rng.normal(size=500)])  # condition ~2e7
    true_coef = np.array([1.0, 2.0, -1.0])
    targets = features @ true_coef + 3.0  # a zero residual: only the method's own error is left
    state = LeastSquaresState(3, 1)
    for first in range(0, 500, 64):
        state.update(features[first : first + 64], targets[first : first + 64])
    coef = solve(state).coef_[0]

    expected, *_ = np.linalg.lstsq(np.column_stack([features, np.ones(500)]), targets, rcond=None)
    centred = features - features.mean(axis=0)
    normal = np.linalg.solve(centred.T @ centred, centred.T @ (targets - targets.mean()))
    qr_error, lstsq_error = np.max(np.abs(coef - true_coef)), np.max(np.abs(expected[:3] - true_coef))
    normal_error = np.max(np.abs(normal - true_coef))
    assert qr_error < 1e-7  # about machine epsilon times the condition number
    assert qr_error < 10 * lstsq_error + 1e-12
    assert normal_error > 1e-4
    assert normal_error > 1e4 * qr_error


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_rank_deficient_design_gives_lstsq_minimum_norm_solution_and_warns(fit_intercept: bool) -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(60, 3))
    features = np.column_stack([base, base[:, 0] - 2 * base[:, 1]])  # rank 3 of 4
    targets = base @ np.array([[1.0, 0.5], [-2.0, 1.0], [0.5, 0.0]]) + rng.normal(size=(60, 2))
    state = _random_tree_state(rng, features, targets)
    with pytest.warns(RankDeficiencyWarning, match=r"\(singular\): rank 3 < 4"):
        solution = solve(state, fit_intercept=fit_intercept)
    if fit_intercept:  # minimum norm over the weights of the centred problem, as closed_form
        expected, *_ = np.linalg.lstsq(features - features.mean(0), targets - targets.mean(0), rcond=None)
    else:
        expected, *_ = np.linalg.lstsq(features, targets, rcond=None)
    assert solution.rank_ == 3
    assert _relative_error(solution.coef_, expected.T) < 1e-10
    with pytest.warns(RankDeficiencyWarning):
        reference = least_squares(features, targets, fit_intercept=fit_intercept)
    np.testing.assert_allclose(solution.intercept_, reference.intercept_, rtol=1e-10, atol=1e-12)
    assert solution.mse_ == pytest.approx(reference.mse_, rel=1e-10)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_underdetermined_design_gives_lstsq_minimum_norm_solution_and_warns(fit_intercept: bool) -> None:
    rng = np.random.default_rng(6)
    features, targets = rng.normal(size=(5, 8)), rng.normal(size=(5, 3))
    state = LeastSquaresState(8, 3)
    for piece in (slice(0, 2), slice(2, 3), slice(3, 5)):
        state.update(features[piece], targets[piece])
    rank = 4 if fit_intercept else 5
    with pytest.warns(RankDeficiencyWarning, match=rf"\(underdetermined\): rank {rank} < 8"):
        solution = solve(state, fit_intercept=fit_intercept)
    if fit_intercept:
        expected, *_ = np.linalg.lstsq(features - features.mean(0), targets - targets.mean(0), rcond=None)
    else:
        expected, *_ = np.linalg.lstsq(features, targets, rcond=None)
    assert solution.rank_ == rank
    assert _relative_error(solution.coef_, expected.T) < 1e-10
    np.testing.assert_allclose(solution.predict(features), targets, atol=1e-10)  # it interpolates
    assert solution.mse_ == pytest.approx(0.0, abs=1e-20)


def test_the_closed_form_singular_example_warns_like_closed_form() -> None:
    features = np.array([[13.0, 13.0], [13.0, 13.0], [5.0, 5.0]])
    targets = np.array([36.0, 54.0, 15.0])
    with pytest.warns(RankDeficiencyWarning, match=r"rank 1 < 2 features after centring for the intercept"):
        solution = solve(LeastSquaresState.from_chunk(features, targets))
    with pytest.warns(RankDeficiencyWarning):
        reference = least_squares(features, targets)
    np.testing.assert_allclose(solution.coef_, reference.coef_, rtol=1e-10)
    np.testing.assert_allclose(solution.intercept_, reference.intercept_, rtol=1e-10)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_ridge_equals_scikit_learn_ridge_with_the_penalty_mapping(fit_intercept: bool, n_targets: int) -> None:
    rng = np.random.default_rng(7)
    features, targets = _design(rng, 120, 5, n_targets)
    state = _random_tree_state(rng, features, targets)
    l2_strength = 0.3
    reference = Ridge(alpha=sklearn_ridge_alpha(l2_strength, 120), fit_intercept=fit_intercept)
    reference.fit(features, targets)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ridge solve never warns about rank
        solution = solve(state, fit_intercept=fit_intercept, l2_strength=l2_strength)
    expected_coef = np.reshape(reference.coef_, (n_targets, 5))
    expected_intercept = np.broadcast_to(reference.intercept_, (n_targets,))
    np.testing.assert_allclose(solution.coef_, expected_coef, rtol=1e-8, atol=1e-8 * np.abs(expected_coef).max())
    np.testing.assert_allclose(solution.intercept_, expected_intercept, rtol=1e-8, atol=1e-8)
    residuals = targets - reference.predict(features).reshape(-1, n_targets)
    np.testing.assert_allclose(solution.rss_, np.sum(residuals**2, axis=0), rtol=1e-8)


def test_ridge_on_standardized_features_equals_scikit_learn_on_standardized_data() -> None:
    rng = np.random.default_rng(8)
    features, targets = _design(rng, 90, 4, 2)
    state = _random_tree_state(rng, features, targets)
    std = state.feature_std()
    np.testing.assert_allclose(std, features.std(axis=0), rtol=1e-12)
    standardized = (features - features.mean(0)) / features.std(axis=0)
    reference = Ridge(alpha=sklearn_ridge_alpha(0.05, 90)).fit(standardized, targets)
    solution = solve(state, l2_strength=0.05, feature_scale=std)
    np.testing.assert_allclose(solution.coef_ * std, reference.coef_, rtol=1e-8)  # weights on standardized features
    np.testing.assert_allclose(solution.predict(features), reference.predict(standardized), rtol=1e-9)


def test_ridge_path_equals_separate_solves() -> None:
    rng = np.random.default_rng(9)
    features, targets = _design(rng, 80, 5, 3)
    state = _random_tree_state(rng, features, targets)
    strengths = [0.0, 1e-4, 0.01, 1.0, 100.0]
    path = ridge_path(state, strengths)
    assert len(path) == len(strengths)
    for strength, solution in zip(strengths, path, strict=True):
        single = solve(state, l2_strength=strength)
        np.testing.assert_allclose(solution.coef_, single.coef_, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(solution.intercept_, single.intercept_, rtol=1e-13)
        assert solution.mse_ == pytest.approx(single.mse_, rel=1e-13)
    norms = [np.linalg.norm(solution.coef_) for solution in path]
    assert norms == sorted(norms, reverse=True)  # more penalty, smaller weights


def _leave_one_out_in_two_ranks(
    state: LeastSquaresState, features: np.ndarray, targets: np.ndarray, strengths: list[float], fit_intercept: bool
) -> tuple[LeaveOneOut, np.ndarray]:
    """The second pass split over two ranks (merged through to_arrays), and the per-row errors."""
    half = features.shape[0] // 2
    first = LeaveOneOut(state, strengths, fit_intercept=fit_intercept)
    second = LeaveOneOut(state, strengths, fit_intercept=fit_intercept)
    for start in range(0, half, 9):
        first.update(features[start : min(start + 9, half)], targets[start : min(start + 9, half)])
    second.update(features[half:], targets[half:])
    merged = first.merge_arrays(second.to_arrays())
    assert merged.merge(LeaveOneOut(state, strengths, fit_intercept=fit_intercept)).n_rows == merged.n_rows
    return merged, first.errors(features, targets)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_leave_one_out_equals_scikit_learn_ridgecv(fit_intercept: bool, n_targets: int) -> None:
    rng = np.random.default_rng(11 + n_targets)
    features, targets = _design(rng, 70, 6, n_targets)
    targets_for_sklearn = targets[:, 0] if n_targets == 1 else targets  # 1-D y: cv_results_ is (n, A)
    state = _random_tree_state(rng, features, targets)
    strengths = [1e-5, 1e-3, 0.03, 0.3, 3.0]
    alphas = [sklearn_ridge_alpha(strength, 70) for strength in strengths]
    reference = RidgeCV(alphas=alphas, fit_intercept=fit_intercept, store_cv_results=True)
    reference.fit(features, targets_for_sklearn)

    accumulator, errors = _leave_one_out_in_two_ranks(state, features, targets, strengths, fit_intercept)
    selection = accumulator.result()
    squared = errors**2 if n_targets > 1 else errors[:, 0, :] ** 2
    np.testing.assert_allclose(squared, reference.cv_results_, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(selection.scores_.min(), -reference.best_score_, rtol=1e-6)
    assert selection.alpha_ == pytest.approx(reference.alpha_, rel=1e-12)
    assert selection.l2_strength_ == strengths[selection.best_index_]
    np.testing.assert_allclose(selection.alphas_, alphas, rtol=1e-15)
    chosen = solve(state, fit_intercept=fit_intercept, l2_strength=selection.l2_strength_)
    np.testing.assert_allclose(chosen.coef_.squeeze(), reference.coef_, rtol=1e-7, atol=1e-9)


def test_leave_one_out_equals_scikit_learn_ridgecv_on_a_wide_design() -> None:
    rng = np.random.default_rng(12)
    features, targets = rng.normal(size=(15, 20)), rng.normal(size=(15, 2))
    state = LeastSquaresState.from_chunks((features[i : i + 4], targets[i : i + 4]) for i in range(0, 15, 4))
    strengths = [0.01, 0.1, 1.0, 10.0]
    reference = RidgeCV(alphas=[15 * s for s in strengths], store_cv_results=True).fit(features, targets)
    selection = leave_one_out(state, ((features[i : i + 6], targets[i : i + 6]) for i in range(0, 15, 6)), strengths)
    errors = LeaveOneOut(state, strengths).errors(features, targets)
    np.testing.assert_allclose(errors**2, reference.cv_results_, rtol=1e-6)
    assert selection.alpha_ == pytest.approx(reference.alpha_)
    np.testing.assert_allclose(selection.scores_.min(), -reference.best_score_, rtol=1e-6)


def test_leave_one_out_is_exact_against_refitting_without_each_row() -> None:
    rng = np.random.default_rng(13)
    features, targets = _design(rng, 25, 3, 2)
    state = LeastSquaresState.from_chunk(features, targets)
    strength = 0.2
    errors = LeaveOneOut(state, [strength]).errors(features, targets)[:, :, 0]  # (n, K)
    for row in range(25):
        keep = np.arange(25) != row
        # The same scikit-learn alpha, N * l2_strength, on the other N - 1 rows (what RidgeCV does).
        refit = Ridge(alpha=sklearn_ridge_alpha(strength, 25)).fit(features[keep], targets[keep])
        np.testing.assert_allclose(errors[row], targets[row] - refit.predict(features[row : row + 1])[0], rtol=1e-8)


def test_generalized_cross_validation_equals_the_hat_matrix_formula() -> None:
    rng = np.random.default_rng(14)
    features, targets = _design(rng, 40, 4, 3)
    state = _random_tree_state(rng, features, targets)
    strengths = [1e-3, 0.1, 10.0]
    selection = generalized_cross_validation(state, strengths)
    design = np.hstack([features, np.ones((40, 1))])
    penalty = np.diag([1.0, 1.0, 1.0, 1.0, 0.0])  # the intercept is not penalized
    expected = []
    for strength in strengths:
        hat = design @ np.linalg.solve(design.T @ design + 40 * strength * penalty, design.T)  # (N, N)
        residuals = targets - hat @ targets
        expected.append(np.mean(residuals**2, axis=0) / (1 - np.trace(hat) / 40) ** 2)
    np.testing.assert_allclose(selection.scores_per_target_, np.array(expected), rtol=1e-9)
    assert selection.best_index_ == int(np.argmin(np.mean(expected, axis=1)))


def test_merge_is_associative_and_commutative() -> None:
    rng = np.random.default_rng(15)
    features, targets = _design(rng, 90, 5, 2)
    a, b, c = (
        LeastSquaresState.from_chunk(features[p], targets[p]) for p in (slice(0, 17), slice(17, 18), slice(18, 90))
    )
    left, right, swapped = a.merge(b).merge(c), a.merge(b.merge(c)), c.merge(a).merge(b)
    scale = np.abs(left.r_factor).max()
    for other in (right, swapped):
        assert other.n_rows == left.n_rows == 90
        np.testing.assert_allclose(other.mean, left.mean, rtol=1e-13)
        np.testing.assert_allclose(other.r_factor, left.r_factor, rtol=1e-11, atol=1e-13 * scale)
    assert a.n_rows == 17 and b.n_rows == 1  # merging leaves its operands alone
    empty = LeastSquaresState(5, 2)
    np.testing.assert_array_equal(empty.merge(a).r_factor, a.r_factor)
    np.testing.assert_array_equal(a.merge(empty).mean, a.mean)


def test_state_size_does_not_depend_on_the_number_of_rows() -> None:
    rng = np.random.default_rng(16)
    sizes = []
    for n_rows in (10, 10_000):
        features, targets = _design(rng, n_rows, 7, 2)
        state = LeastSquaresState.from_chunks(
            (features[i : i + 1000], targets[i : i + 1000]) for i in range(0, n_rows, 1000)
        )
        arrays = state.to_arrays()
        assert arrays["r_factor"].shape == (9, 9) and arrays["mean"].shape == (9,)
        sizes.append(sum(np.asarray(value).nbytes for value in arrays.values()))
    assert sizes[0] == sizes[1]


def test_state_round_trips_through_a_weights_only_torch_checkpoint() -> None:
    rng = np.random.default_rng(17)
    features, targets = _design(rng, 50, 3, 1)
    state = LeastSquaresState.from_chunk(features, targets)
    buffer = io.BytesIO()
    torch.save({name: torch.from_numpy(np.asarray(value)) for name, value in state.to_arrays().items()}, buffer)
    buffer.seek(0)
    restored = LeastSquaresState.from_arrays(torch.load(buffer, weights_only=True))
    assert restored.n_rows == 50 and (restored.n_features, restored.n_targets) == (3, 1)
    np.testing.assert_array_equal(restored.r_factor, state.r_factor)
    np.testing.assert_array_equal(solve(restored).coef_, solve(state).coef_)


def test_bad_input_is_refused_with_a_message() -> None:
    state = LeastSquaresState(2, 1)
    with pytest.raises(ValueError, match="no rows"):
        solve(state)
    with pytest.raises(ValueError, match="2 features and 1 targets, the chunk 3 and 1"):
        state.update(np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        state.update(np.array([[1.0, np.nan]]), np.zeros(1))
    with pytest.raises(ValueError, match="4 rows but targets have 3"):
        state.update(np.zeros((4, 2)), np.zeros(3))
    state.update(np.arange(8.0).reshape(4, 2) ** 2, np.arange(4.0))
    with pytest.raises(ValueError, match="l2_strength"):
        solve(state, l2_strength=-1.0)
    with pytest.raises(ValueError, match="feature_scale"):
        solve(state, feature_scale=np.array([1.0, 0.0]))
    accumulator = LeaveOneOut(state, [0.1])
    accumulator.update(np.ones((1, 2)), np.ones(1))
    with pytest.raises(ValueError, match="saw 1 rows but the state holds 4"):
        accumulator.result()
    with pytest.raises(ValueError, match="no chunks"):
        LeastSquaresState.from_chunks([])


def test_chunks_longer_than_a_sub_block_and_float32_chunks_give_the_same_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(18)
    features, targets = _design(rng, 300, 5, 2)
    features32, targets32 = features.astype(np.float32), targets.astype(np.float32)
    whole = LeastSquaresState.from_chunks([(features32[:130], targets32[:130]), (features32[130:], targets32[130:])])
    monkeypatch.setattr("lr_lightning.streaming.r_factor.SUB_BLOCK_ROWS", 7)  # many sub-blocks per chunk, a ragged last
    blocked = LeastSquaresState.from_chunks([(features32[:130], targets32[:130]), (features32[130:], targets32[130:])])
    converted = LeastSquaresState.from_chunk(features32.astype(np.float64), targets32.astype(np.float64))
    scale = np.abs(whole.r_factor).max()
    for other in (blocked, converted):
        np.testing.assert_allclose(other.mean, whole.mean, rtol=1e-14)
        np.testing.assert_allclose(other.r_factor, whole.r_factor, rtol=1e-11, atol=1e-13 * scale)
    assert np.all(np.diag(blocked.r_factor) >= 0) and np.array_equal(blocked.r_factor, np.triu(blocked.r_factor))
    centred = np.hstack([features32, targets32]).astype(np.float64)
    centred -= centred.mean(axis=0)
    np.testing.assert_allclose(
        blocked.r_factor.T @ blocked.r_factor, centred.T @ centred, rtol=1e-11, atol=1e-11 * scale**2
    )


def test_non_finite_and_overflowing_chunks_are_refused() -> None:
    state = LeastSquaresState(2, 1)
    with pytest.raises(ValueError, match="targets must be finite"):
        state.update(np.zeros((3, 2), dtype=np.float32), np.array([0.0, np.inf, 1.0]))
    with pytest.raises(ValueError, match="overflow"):
        state.update(np.full((3, 2), 1e308), np.zeros(3))
    assert state.n_rows == 0
