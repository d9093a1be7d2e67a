"""Row weights in the streaming Newton solver and logistic inference, against scikit-learn and statsmodels.

The objective with row weights w is the weighted mean log-loss plus the penalty, so scikit-learn's
``LogisticRegression(C=1 / (2 sum(w) l2_strength)).fit(X, y, sample_weight=w)`` has our minimizer (C infinite
without penalty). Class weights are row weights ``class_weight[y]`` (times the sample weights): scikit-learn's
``class_weight="balanced"`` is ``sum(s) / (C * weighted_bincount(y, s))[y]``, s the sample weights (all 1 without
them). Inference follows statsmodels' ``GLM(family=Binomial(), freq_weights=w)`` (``var_weights`` gives the same
params, bse and llf); multi-class, with no weighted ``MNLogit``, integer weights are checked against ``MNLogit`` on
the rows repeated that many times.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.datasets import load_wine, make_classification
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.metrics import log_loss

from lr_lightning.errors import InputError
from lr_lightning.inference.logistic import class_counts, logistic_inference
from lr_lightning.penalties import sklearn_logistic_c
from lr_lightning.streaming.newton_logistic import (
    SEPARABLE_MESSAGE,
    Layout,
    LineSearchSums,
    NewtonSums,
    newton_fit,
    newton_step,
)

SCALARS = ["llf", "llnull", "prsquared", "llr", "llr_pvalue", "aic", "bic", "df_model", "df_resid", "nobs"]
ARRAYS = ["params", "bse", "tvalues", "pvalues"]


def classification(num_classes, rows=300, seed=0):
    """Overlapping classes (10% of the labels random), so the unpenalized maximum exists."""
    features, labels = make_classification(
        n_samples=rows,
        n_features=4,
        n_informative=3,
        n_redundant=0,
        n_classes=num_classes,
        flip_y=0.1,
        class_sep=0.8,
        random_state=seed,
    )
    return features * [1.0, 10.0, 0.1, 3.0] + [0.0, 5.0, -1.0, 2.0], labels.astype(np.int64)


def positive_weights(rows, seed=1):
    return np.random.default_rng(seed).uniform(0.2, 3.0, rows)


def integer_weights(rows, seed=2):
    """Weights 0 to 3: some rows dropped, some counted twice or three times."""
    return np.random.default_rng(seed).integers(0, 4, rows).astype(np.float64)


def chunked(features, labels, weights=None, size=64):
    if weights is None:
        return lambda: ((features[i : i + size], labels[i : i + size]) for i in range(0, len(labels), size))
    return lambda: (
        (features[i : i + size], labels[i : i + size], weights[i : i + size]) for i in range(0, len(labels), size)
    )


def fit(features, labels, weights=None, l2_strength=0.0, mean=None, scale=None, **kwargs):
    mean = features.mean(axis=0) if mean is None else mean
    scale = features.std(axis=0) if scale is None else scale
    return newton_fit(
        chunked(features, labels, weights),
        features.shape[1],
        int(labels.max()) + 1,
        mean=mean,
        scale=scale,
        l2_strength=l2_strength,
        **kwargs,
    )


def sklearn_fit(features, labels, sample_weight=None, l2_strength=0.0, weight_sum=None, **options):
    standardized = (features - features.mean(axis=0)) / features.std(axis=0)
    c = sklearn_logistic_c(l2_strength, weight_sum) if l2_strength else np.inf
    model = SkLogisticRegression(solver="newton-cholesky", C=c, tol=1e-12, max_iter=200, **options)
    return model.fit(standardized, labels, sample_weight=sample_weight), standardized


def probabilities(standardized, weight, bias):
    logits = standardized @ weight.T + bias
    if weight.shape[0] == 1:
        positive = 1 / (1 + np.exp(-logits[:, 0]))
        return np.stack([1 - positive, positive], axis=1)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def assert_same_fit(ours, reference, standardized):
    assert ours.converged
    scale = np.abs(reference.coef_).max()
    np.testing.assert_allclose(ours.weight, reference.coef_, rtol=1e-6, atol=1e-9 * scale)
    np.testing.assert_allclose(ours.bias, reference.intercept_, rtol=1e-6, atol=1e-9 * scale)
    np.testing.assert_allclose(
        probabilities(standardized, ours.weight, ours.bias), reference.predict_proba(standardized), atol=1e-9
    )


@pytest.mark.parametrize("l2_strength", [0.0, 0.01])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_sample_weights_match_sklearn(num_classes, l2_strength):
    features, labels = classification(num_classes)
    weights = positive_weights(len(labels))
    ours = fit(features, labels, weights, l2_strength)
    reference, standardized = sklearn_fit(features, labels, weights, l2_strength, weights.sum())
    assert_same_fit(ours, reference, standardized)


@pytest.mark.parametrize("with_sample_weights", [False, True])
@pytest.mark.parametrize("l2_strength", [0.0, 0.01])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_balanced_class_weights_are_row_weights(num_classes, l2_strength, with_sample_weights):
    features, labels = classification(num_classes, seed=3)
    labels = np.where(np.arange(len(labels)) % 3 == 0, 0, labels)  # make class 0 the frequent one
    sample = positive_weights(len(labels)) if with_sample_weights else np.ones(len(labels))
    per_class = sample.sum() / (num_classes * np.bincount(labels, weights=sample))
    weights = sample * per_class[labels]
    ours = fit(features, labels, weights, l2_strength)
    reference, standardized = sklearn_fit(
        features,
        labels,
        sample if with_sample_weights else None,
        l2_strength,
        weights.sum(),
        class_weight="balanced",
    )
    assert_same_fit(ours, reference, standardized)


@pytest.mark.parametrize("l2_strength", [0.0, 0.01])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_integer_weights_equal_repeated_rows(num_classes, l2_strength):
    features, labels = classification(num_classes, seed=4)
    weights = integer_weights(len(labels))
    repeats = weights.astype(np.int64)
    repeated_features, repeated_labels = np.repeat(features, repeats, axis=0), np.repeat(labels, repeats)
    mean, scale = repeated_features.mean(axis=0), repeated_features.std(axis=0)
    weighted = fit(features, labels, weights, l2_strength, mean, scale)
    repeated = fit(repeated_features, repeated_labels, None, l2_strength, mean, scale)
    assert weighted.converged and repeated.converged
    np.testing.assert_allclose(weighted.weight, repeated.weight, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.bias, repeated.bias, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.objectives[-1], repeated.objectives[-1], rtol=1e-12)

    layout = Layout.for_classes(num_classes, features.shape[1])
    theta = np.random.default_rng(0).normal(size=layout.size)  # away from the optimum, where the gradient is 0
    sums, expected = NewtonSums(layout), NewtonSums(layout)
    sums.add(features, labels, theta, mean, scale, weights)
    expected.add(repeated_features, repeated_labels, theta, mean, scale)
    assert sums.weight == expected.weight == expected.count == len(repeated_labels)
    assert sums.count == np.count_nonzero(weights)  # rows, not their weight
    np.testing.assert_allclose(sums.loss, expected.loss, rtol=1e-12)
    np.testing.assert_allclose(sums.gradient, expected.gradient, rtol=0, atol=1e-10 * np.abs(expected.gradient).max())
    np.testing.assert_allclose(sums.hessian, expected.hessian, rtol=1e-12, atol=1e-12 * np.abs(expected.hessian).max())


@pytest.mark.parametrize("num_classes", [2, 3])
def test_unit_weights_are_the_unweighted_computation_exactly(num_classes):
    features, labels = classification(num_classes, seed=5)
    ones = np.ones(len(labels))
    weighted_fit, unweighted_fit = fit(features, labels, ones), fit(features, labels)
    np.testing.assert_array_equal(weighted_fit.weight, unweighted_fit.weight)
    np.testing.assert_array_equal(weighted_fit.bias, unweighted_fit.bias)
    np.testing.assert_array_equal(weighted_fit.objectives, unweighted_fit.objectives)
    layout = Layout.for_classes(num_classes, features.shape[1])
    theta = np.random.default_rng(0).normal(size=layout.size)
    direction = np.random.default_rng(1).normal(size=layout.size)
    weighted, unweighted = NewtonSums(layout), NewtonSums(layout)
    weighted.add(features, labels, theta, weights=ones)
    unweighted.add(features, labels, theta)
    np.testing.assert_array_equal(weighted.to_vector(), unweighted.to_vector())
    assert unweighted.weight == unweighted.count == len(labels)
    search, plain = LineSearchSums(layout), LineSearchSums(layout)
    search.add(features, labels, theta, direction, weights=ones)
    plain.add(features, labels, theta, direction)
    np.testing.assert_array_equal(search.to_vector(), plain.to_vector())


@pytest.mark.parametrize("num_classes", [2, 3])
def test_zero_weight_rows_are_dropped_rows(num_classes):
    features, labels = classification(num_classes, seed=6)
    weights = positive_weights(len(labels))
    weights[::4] = 0.0
    keep = weights > 0

    def dropped(size=64):  # the same chunks, without their zero-weight rows
        for i in range(0, len(labels), size):
            rows = keep[i : i + size]
            yield features[i : i + size][rows], labels[i : i + size][rows], weights[i : i + size][rows]

    mean, scale = features.mean(axis=0), features.std(axis=0)
    with_zeros = fit(features, labels, weights, 0.0, mean, scale)
    without = newton_fit(dropped, features.shape[1], num_classes, mean=mean, scale=scale)
    np.testing.assert_array_equal(with_zeros.weight, without.weight)
    np.testing.assert_array_equal(with_zeros.bias, without.bias)
    np.testing.assert_array_equal(with_zeros.objectives, without.objectives)


def test_a_zero_weight_row_does_not_prevent_separation():
    features = np.array([[-2.0], [-1.0], [1.0], [2.0], [3.0]])
    labels = np.array([0, 0, 1, 1, 0])  # the last row is on the wrong side, but weighs nothing
    weights = np.array([1.0, 2.0, 1.0, 0.5, 0.0])
    with pytest.raises(InputError, match="linearly separable"):
        newton_fit(lambda: [(features, labels, weights)], 1, mean=[0.0], scale=[1.0])
    with pytest.raises(InputError) as error:
        newton_fit(lambda: [(features[:4], labels[:4])], 1, mean=[0.0], scale=[1.0])
    assert str(error.value) == SEPARABLE_MESSAGE
    weights[-1] = 1e-3  # any positive weight makes the rows overlap: a maximum exists
    assert newton_fit(lambda: [(features, labels, weights)], 1, mean=[0.0], scale=[1.0]).converged


@pytest.mark.parametrize("num_classes", [2, 3])
def test_objective_is_the_weighted_mean_log_loss_plus_penalty(num_classes):
    features, labels = classification(num_classes, rows=120, seed=7)
    weights = positive_weights(len(labels))
    layout = Layout.for_classes(num_classes, features.shape[1])
    weight = np.random.default_rng(0).normal(size=(layout.num_outputs, features.shape[1]))
    bias = np.random.default_rng(1).normal(size=layout.num_outputs)
    mean, scale = features.mean(axis=0), features.std(axis=0)
    sums = NewtonSums(layout)
    for x, y, w in chunked(features, labels, weights, size=50)():
        sums.add(x, y, layout.pack(weight, bias), mean, scale, w)
    step = newton_step(sums, layout.pack(weight, bias), l2_strength=0.3)
    proba = probabilities((features - mean) / scale, weight, bias)
    expected = log_loss(labels, proba, sample_weight=weights) + 0.3 * np.sum(weight**2)
    np.testing.assert_allclose(step.objective, expected, rtol=1e-12)
    np.testing.assert_allclose(sums.weight, weights.sum(), rtol=1e-14)


def test_vectors_carry_the_weight_last_and_merge():
    features, labels = classification(3, rows=100, seed=8)
    weights = integer_weights(len(labels)) * 0.5
    layout = Layout.for_classes(3, features.shape[1])
    theta, direction = np.full(layout.size, 0.1), np.full(layout.size, -0.05)
    whole, parts = NewtonSums(layout), []
    whole.add(features, labels, theta, weights=weights)
    whole_search, search_parts = LineSearchSums(layout), []
    whole_search.add(features, labels, theta, direction, weights=weights)
    for start in range(0, len(labels), 30):
        rows = slice(start, start + 30)
        parts.append(NewtonSums(layout))
        parts[-1].add(features[rows], labels[rows], theta, weights=weights[rows])
        search_parts.append(LineSearchSums(layout))
        search_parts[-1].add(features[rows], labels[rows], theta, direction, weights=weights[rows])
    vector = whole.to_vector()
    assert vector.shape == (4 + layout.size + layout.size**2,)
    assert vector[0] == whole.count == np.count_nonzero(weights) and vector[-1] == whole.weight == weights.sum()
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    np.testing.assert_allclose(merged.to_vector(), vector, rtol=1e-12, atol=1e-12 * np.abs(vector).max())
    summed = LineSearchSums.from_vector(layout, whole_search.steps, sum(part.to_vector() for part in search_parts))
    assert whole_search.to_vector().shape == (2 + 2 * len(whole_search.steps),)
    assert summed.weight == whole_search.weight == weights.sum() and summed.count == whole_search.count
    np.testing.assert_allclose(summed.losses, whole_search.losses, rtol=1e-12)
    np.testing.assert_array_equal(summed.nonpositive, whole_search.nonpositive)
    with pytest.raises(ValueError, match="entries"):
        NewtonSums.from_vector(layout, vector[:-1])


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0, -0.5, 1.0], "row 1 of a chunk has weight -0.5"),
        ([1.0, 1.0, np.nan], "row 2 of a chunk has weight nan"),
        ([np.inf, 1.0, 1.0], "row 0 of a chunk has weight inf"),
        ([1.0, 1.0], "3 rows but 2 row weights"),
    ],
)
def test_invalid_weights_are_refused(weights, message):
    layout = Layout.for_classes(2, 1)
    features, labels = np.array([[0.0], [1.0], [2.0]]), np.array([0, 1, 0])
    with pytest.raises(InputError, match=message):
        NewtonSums(layout).add(features, labels, np.zeros(2), weights=weights)
    with pytest.raises(InputError, match=message):
        LineSearchSums(layout).add(features, labels, np.zeros(2), np.ones(2), weights=weights)


# Inference


def spector():
    data = sm.datasets.spector.load()
    return np.asarray(data.exog, dtype=np.float64), np.asarray(data.endog).astype(np.int64), 2


def wine():
    features, labels = load_wine(return_X_y=True)
    return features[:, [1, 2, 3]], labels.astype(np.int64), 3


def anes96():
    data = sm.datasets.anes96.load()
    return np.asarray(data.exog, dtype=np.float64), np.asarray(data.endog).astype(np.int64), 7


def infer(features, labels, num_classes, weights):
    """Weighted Newton fit to tol 1e-15, one more weighted pass, and the inference from its sums."""
    mean, scale = features.mean(axis=0), features.std(axis=0)
    chunks = chunked(features, labels, weights, size=16)
    result = newton_fit(chunks, features.shape[1], num_classes, mean=mean, scale=scale, tol=1e-15)
    layout = Layout.for_classes(num_classes, features.shape[1])
    theta = layout.pack(result.weight, result.bias)
    sums, counts = NewtonSums(layout), np.zeros(num_classes)
    for x, y, w in chunks():
        sums.add(x, y, theta, mean, scale, w)
        counts += class_counts(y, num_classes, w)
    return logistic_inference(sums, theta, counts, mean=mean, scale=scale)


def glm(features, labels, **weights):
    model = sm.GLM(labels, sm.add_constant(features), family=sm.families.Binomial(), **weights)
    result = model.fit(method="newton", tol=1e-12, maxiter=100)
    assert result.mle_retvals["converged"]
    return result


def test_binary_inference_matches_weighted_glm():
    features, labels, _ = spector()
    weights = positive_weights(len(labels), seed=9)
    ours = infer(features, labels, 2, weights)
    variance, frequency = glm(features, labels, var_weights=weights), glm(features, labels, freq_weights=weights)
    assert ours.check.valid
    for name, theirs in [("params", variance.params), ("bse", variance.bse), ("tvalues", variance.tvalues)]:
        np.testing.assert_allclose(getattr(ours, name), theirs, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(getattr(ours, name), getattr(frequency, name), rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(ours.pvalues, variance.pvalues, rtol=1e-6)
    np.testing.assert_allclose(ours.cov_params(), variance.cov_params(), rtol=1e-6)
    np.testing.assert_allclose(ours.conf_int(0.1), variance.conf_int(0.1), rtol=1e-6)
    for name in ("llf", "llnull", "aic"):
        np.testing.assert_allclose(getattr(ours, name), getattr(variance, name), rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(getattr(ours, name), getattr(frequency, name), rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(ours.prsquared, frequency.pseudo_rsquared(kind="mcf"), rtol=1e-6)
    # freq_weights' counting: nobs = sum(w), so bic's log(nobs) and df_resid are in weight, not rows
    np.testing.assert_allclose(ours.nobs, frequency.model.wnobs, rtol=1e-12)
    np.testing.assert_allclose(ours.bic, frequency.bic_llf, rtol=1e-6)
    assert ours.df_model == frequency.df_model
    np.testing.assert_allclose(ours.df_resid, frequency.df_resid, rtol=1e-12)
    llr = 2 * (frequency.llf - frequency.llnull)
    np.testing.assert_allclose(ours.llr, llr, rtol=1e-6)
    np.testing.assert_allclose(ours.llr_pvalue, stats.chi2.sf(llr, frequency.df_model), rtol=1e-6)


@pytest.mark.parametrize("data", [spector, wine, anes96])
def test_integer_weights_match_statsmodels_on_repeated_rows(data):
    features, labels, num_classes = data()
    weights = integer_weights(len(labels), seed=10)
    repeats = weights.astype(np.int64)
    model = sm.Logit if num_classes == 2 else sm.MNLogit
    repeated = sm.add_constant(np.repeat(features, repeats, axis=0))
    theirs = model(np.repeat(labels, repeats), repeated).fit(method="newton", tol=1e-12, maxiter=100, disp=0)
    assert theirs.mle_retvals["converged"]
    theirs.set_null_options(method="newton", tol=1e-12, maxiter=100)
    ours = infer(features, labels, num_classes, weights)
    assert ours.check.valid
    for name in ARRAYS:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6, err_msg=name)
    for name in SCALARS:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6, err_msg=name)
    scale = np.abs(theirs.cov_params()).max()
    np.testing.assert_allclose(ours.cov_params(), theirs.cov_params(), rtol=0, atol=1e-6 * scale)


def test_weighted_class_counts():
    labels, weights = np.array([0, 2, 2, 1, 0, 2]), np.array([0.5, 1.0, 2.0, 0.0, 1.5, 0.25])
    np.testing.assert_array_equal(class_counts(labels, 4, weights), [2.0, 0.0, 3.25, 0.0])
    np.testing.assert_array_equal(class_counts(labels, 3), [2.0, 1.0, 3.0])
    features, labels, _ = spector()
    weights = positive_weights(len(labels), seed=11)
    layout = Layout.for_classes(2, features.shape[1])
    sums = NewtonSums(layout)
    sums.add(features, labels, np.zeros(layout.size), weights=weights)
    with pytest.raises(InputError, match="class counts"):  # unweighted counts for weighted sums
        logistic_inference(sums, np.zeros(layout.size), class_counts(labels, 2), refuse=False)
