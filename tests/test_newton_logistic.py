"""The streaming Newton solver of L2-penalized logistic regression against scikit-learn's newton-cholesky.

scikit-learn (>= 1.5, 1.9 here) fits multinomial models with C rows of coefficients and the full softmax, like
ours. Its penalized optimum has unique weights (the penalty picks the class sums W^T 1 = 0) and intercepts unique
up to a common shift, which it removes by centring them (its "symmetric parametrization"); without penalty it
centres the weights too. Our minimum-norm Newton steps from zero keep every class sum at zero, the same
representative, so coefficients and intercepts compare directly, besides the probabilities.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine, make_classification
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from lr_lightning.errors import InputError
from lr_lightning.penalties import sklearn_logistic_c
from lr_lightning.streaming.newton_logistic import (
    MAX_PARAMETERS,
    Layout,
    LineSearchSums,
    NewtonSums,
    check_separable,
    choose_step,
    newton_fit,
    newton_step,
)


def chunked(features, labels, size):
    return lambda: ((features[i : i + size], labels[i : i + size]) for i in range(0, len(labels), size))


def fit(features, labels, l2_strength=0.0, fit_intercept=True, chunk=64, **kwargs):
    num_classes = int(labels.max()) + 1
    return newton_fit(
        chunked(features, labels, chunk),
        features.shape[1],
        num_classes,
        mean=features.mean(axis=0),
        scale=features.std(axis=0),
        l2_strength=l2_strength,
        fit_intercept=fit_intercept,
        **kwargs,
    )


def sklearn_fit(features, labels, l2_strength=0.0, fit_intercept=True):
    standardized = (features - features.mean(axis=0)) / features.std(axis=0)  # StandardScaler's
    c = sklearn_logistic_c(l2_strength, len(labels)) if l2_strength else np.inf
    model = SkLogisticRegression(solver="newton-cholesky", C=c, tol=1e-12, max_iter=100, fit_intercept=fit_intercept)
    return model.fit(standardized, labels), standardized


def probabilities(standardized, weight, bias):
    logits = standardized @ weight.T + (0.0 if bias is None else bias)
    if weight.shape[0] == 1:
        positive = 1 / (1 + np.exp(-logits[:, 0]))
        return np.stack([1 - positive, positive], axis=1)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def assert_matches_sklearn(features, labels, l2_strength, fit_intercept=True):
    ours = fit(features, labels, l2_strength, fit_intercept)
    reference, standardized = sklearn_fit(features, labels, l2_strength, fit_intercept)
    assert ours.converged
    scale = np.abs(reference.coef_).max()
    np.testing.assert_allclose(ours.weight, reference.coef_, rtol=1e-6, atol=1e-9 * scale)
    if fit_intercept:
        np.testing.assert_allclose(ours.bias, reference.intercept_, rtol=1e-6, atol=1e-9 * scale)
    else:
        assert ours.bias is None
    np.testing.assert_allclose(
        probabilities(standardized, ours.weight, ours.bias), reference.predict_proba(standardized), atol=1e-9
    )
    return ours


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("l2_strength", [1e-3, 1e-1])
def test_binary_matches_sklearn(l2_strength, fit_intercept):
    features, labels = load_breast_cancer(return_X_y=True)
    assert_matches_sklearn(features, labels, l2_strength, fit_intercept)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_multiclass_matches_sklearn(fit_intercept):
    features, labels = load_wine(return_X_y=True)
    ours = assert_matches_sklearn(features, labels, 1e-3, fit_intercept)
    np.testing.assert_allclose(ours.weight.sum(axis=0), 0.0, atol=1e-12)  # the penalty's class sums
    features, labels = make_classification(400, 6, n_informative=4, n_redundant=0, n_classes=4, random_state=1)
    assert_matches_sklearn(features, labels, 1e-4, fit_intercept)


def test_unpenalized_matches_sklearn():
    features, labels = make_classification(500, 5, n_redundant=0, flip_y=0.2, random_state=0)
    assert_matches_sklearn(features, labels, 0.0)
    assert_matches_sklearn(features, labels, 0.0, fit_intercept=False)
    features, labels = make_classification(600, 5, n_informative=4, n_redundant=0, n_classes=3, random_state=2)
    ours = assert_matches_sklearn(features, labels, 0.0)  # not identifiable: the minimum-norm representative
    np.testing.assert_allclose(ours.weight.sum(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ours.bias.sum(), 0.0, atol=1e-12)


def test_unpenalized_multiclass_from_any_start_reaches_the_same_probabilities():
    features, labels = make_classification(300, 4, n_informative=4, n_redundant=0, n_classes=3, random_state=3)
    start = np.random.default_rng(0).normal(size=3 * 5)
    ours = fit(features, labels, theta=start)
    reference, standardized = sklearn_fit(features, labels)
    np.testing.assert_allclose(
        probabilities(standardized, ours.weight, ours.bias), reference.predict_proba(standardized), atol=1e-9
    )
    # Minimum-norm steps keep the class sums of the start; centring gives scikit-learn's coefficients.
    np.testing.assert_allclose(ours.weight.sum(axis=0), start.reshape(3, 5)[:, :4].sum(axis=0), atol=1e-12)
    np.testing.assert_allclose(ours.weight - ours.weight.mean(axis=0), reference.coef_, rtol=1e-6, atol=1e-9)


def test_collinear_unpenalized_features_take_the_minimum_norm_solution():
    features, labels = make_classification(400, 3, n_redundant=0, flip_y=0.2, random_state=4)
    doubled = np.column_stack([features, features[:, 0]])
    single, twice = fit(features, labels), fit(doubled, labels)
    assert twice.converged
    np.testing.assert_allclose(twice.weight[0, [0, 3]], single.weight[0, 0] / 2, rtol=1e-9)
    np.testing.assert_allclose(twice.weight[0, 1:3], single.weight[0, 1:], rtol=1e-9)
    np.testing.assert_allclose(twice.bias, single.bias, rtol=1e-9)


@pytest.mark.parametrize("num_classes", [2, 4])
def test_chunks_and_merge_orders_do_not_matter(num_classes):
    features, labels = make_classification(
        1000, 6, n_informative=4, n_redundant=0, n_classes=num_classes, random_state=5
    )
    features = features * 10 + 50  # raw units: the standardization is the accumulator's
    mean, scale = features.mean(axis=0), features.std(axis=0)
    layout = Layout.for_classes(num_classes, 6)
    rng = np.random.default_rng(1)
    theta, direction = rng.normal(size=layout.size), rng.normal(size=layout.size)

    def passes(size):
        newton, search = [], []
        for chunk_features, chunk_labels in chunked(features, labels, size)():
            newton.append(NewtonSums(layout))
            newton[-1].add(chunk_features, chunk_labels, theta, mean, scale)
            search.append(LineSearchSums(layout))
            search[-1].add(chunk_features, chunk_labels, theta, direction, mean, scale)
        return newton, search

    (whole,), (whole_search,) = passes(len(labels))
    expected, expected_search = whole.to_vector(), whole_search.to_vector()
    for size in (3, 7, 128, 333):
        newton, search = passes(size)
        sequential = newton[0]
        for sums in newton[1:]:
            sequential = sequential.merge(sums)
        reversed_sum = sum(sums.to_vector() for sums in reversed(newton))  # as an all-reduce SUM would
        for merged in (sequential, NewtonSums.from_vector(layout, reversed_sum)):
            np.testing.assert_allclose(merged.to_vector(), expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
        merged_search = sum(sums.to_vector() for sums in search[::-1])
        np.testing.assert_allclose(merged_search, expected_search, rtol=1e-12)
    assert whole.count == 1000 and whole_search.count == 1000
    fits = [fit(features, labels, 1e-3, chunk=size) for size in (1000, 97)]
    np.testing.assert_allclose(fits[0].weight, fits[1].weight, rtol=1e-12, atol=1e-14)


def test_vector_round_trip_and_layout():
    layout = Layout(3, 4)
    weight, bias = np.arange(12.0).reshape(3, 4), np.array([-1.0, -2.0, -3.0])
    theta = layout.pack(weight, bias)
    assert theta.shape == (15,) and theta[4] == -1.0
    unpacked = layout.unpack(theta)
    np.testing.assert_array_equal(unpacked[0], weight)
    np.testing.assert_array_equal(unpacked[1], bias)
    assert Layout(3, 4, fit_intercept=False).unpack(weight.reshape(-1))[1] is None
    sums = NewtonSums(layout)
    sums.add(np.ones((5, 4)), np.array([0, 1, 2, 1, 0]), theta)
    again = NewtonSums.from_vector(layout, sums.to_vector())
    np.testing.assert_array_equal(again.to_vector(), sums.to_vector())
    assert again.to_vector().shape == (4 + 15 + 15 * 15,)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_separable_rows_are_refused(num_classes):
    rng = np.random.default_rng(0)
    centres = np.array([[6.0, 0.0], [-6.0, 0.0], [0.0, 8.0]])[:num_classes]
    labels = np.repeat(np.arange(num_classes), 60)
    features = centres[labels] + rng.normal(size=(len(labels), 2))
    with pytest.raises(InputError, match=r"linearly separable.*no minimum.*l2_strength > 0"):
        fit(features, labels)
    assert fit(features, labels, l2_strength=1e-3).converged  # the penalty makes a minimum


def test_check_separable():
    check_separable(nonpositive=1, count=10, l2_strength=0.0)
    check_separable(nonpositive=0, count=10, l2_strength=1e-3)
    check_separable(nonpositive=0, count=0, l2_strength=0.0)
    with pytest.raises(InputError, match="linearly separable"):
        check_separable(nonpositive=0, count=10, l2_strength=0.0)


def test_quasi_complete_separation_is_not_refused():
    # Separable but for two identical rows with both labels: no minimum, no strictly separating iterate either.
    rng = np.random.default_rng(1)
    features = np.r_[rng.normal(size=(50, 2)) + 5, rng.normal(size=(50, 2)) - 5, np.zeros((2, 2))]
    labels = np.r_[np.ones(50, int), np.zeros(50, int), [0, 1]]
    result = newton_fit(lambda: [(features, labels)], 2, max_iter=60)
    assert result.objectives[-1] == pytest.approx(2 * np.log(2) / 102, rel=1e-6)  # the infimum: the two rows
    assert np.abs(result.weight).max() > 3  # and growing


def test_converges_quadratically():
    features, labels = load_breast_cancer(return_X_y=True)
    result = fit(features, labels, 1e-4, tol=1e-20)
    assert result.converged and len(result.decrements) < 15
    assert result.decrements[-1] < 1e-20 * result.objectives[-1]
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(result.objectives))
    # The decrement's half estimates the gap to the optimum.
    final = result.objectives[-1]
    for objective, decrement in zip(result.objectives[-4:-1], result.decrements[-4:-1], strict=True):
        assert objective - final == pytest.approx(decrement / 2, rel=0.1)


def test_line_search_backtracks_on_a_long_step():
    features, labels = load_breast_cancer(return_X_y=True)
    mean, scale = features.mean(axis=0), features.std(axis=0)
    layout = Layout(1, features.shape[1])
    theta = np.zeros(layout.size)
    sums = NewtonSums(layout)
    sums.add(features, labels, theta, mean, scale)
    step = newton_step(sums, theta, 1e-3)
    step.direction *= 100  # too long: Armijo must shrink it
    search = LineSearchSums(layout)
    search.add(features, labels, theta, step.direction, mean, scale)
    size = choose_step(search, step, theta, 1e-3)
    assert 0 < size <= 1 / 8
    moved = NewtonSums(layout)
    moved.add(features, labels, theta + size * step.direction, mean, scale)
    assert newton_step(moved, theta + size * step.direction, 1e-3).objective < step.objective
    step.direction *= -1  # an ascent direction: no step
    search = LineSearchSums(layout)
    search.add(features, labels, theta, step.direction, mean, scale)
    assert choose_step(search, step, theta, 1e-3) == 0.0


def test_bad_input_is_refused():
    with pytest.raises(InputError, match=f"above {MAX_PARAMETERS}"):
        Layout(1, MAX_PARAMETERS)
    with pytest.raises(InputError, match="above"):
        Layout.for_classes(3, MAX_PARAMETERS // 3)
    assert Layout(1, MAX_PARAMETERS - 1).size == MAX_PARAMETERS
    sums = NewtonSums(Layout(1, 2))
    with pytest.raises(InputError, match=r"labels must be integers in \[0, 1\]"):
        sums.add(np.zeros((3, 2)), np.array([0, 1, 2]), np.zeros(3))
    with pytest.raises(InputError, match="at least one"):
        newton_step(sums, np.zeros(3), 0.0)


def test_no_warnings_from_the_solver():
    features, labels = load_wine(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit(features, labels, 1e-2).converged
