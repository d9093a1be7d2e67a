"""Logistic inference from streamed sums against statsmodels' Logit and MNLogit (newton, tol 1e-12).

statsmodels fits its null model (llnull) by Nelder-Mead then BFGS unless told otherwise, to about 1e-10 relative;
the references here refit it by Newton (``set_null_options``), so llnull, prsquared, llr and llr_pvalue compare at
1e-6 against our closed form :math:`\\sum_c n_c \\log(n_c / N)`.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.datasets import load_wine

from lr_lightning.errors import InputError
from lr_lightning.inference.logistic import check_inference, class_counts, logistic_inference
from lr_lightning.streaming.newton_logistic import Layout, NewtonSums, newton_fit

SCALARS = ["llf", "llnull", "prsquared", "llr", "llr_pvalue", "aic", "bic", "df_model", "df_resid", "nobs"]
ARRAYS = ["params", "bse", "tvalues", "pvalues"]


def spector():
    data = sm.datasets.spector.load()
    return np.asarray(data.exog, dtype=np.float64), np.asarray(data.endog).astype(np.int64), 2


def anes96():
    data = sm.datasets.anes96.load()
    return np.asarray(data.exog, dtype=np.float64), np.asarray(data.endog).astype(np.int64), 7


def wine():
    features, labels = load_wine(return_X_y=True)
    return features[:, [1, 2, 3]], labels.astype(np.int64), 3


def chunks_of(features, labels, size):
    return lambda: ((features[i : i + size], labels[i : i + size]) for i in range(0, len(labels), size))


def fit(features, labels, num_classes, chunk=16, **kwargs):
    """Newton fit, then one more pass at the final parameters: (sums, theta, mean, scale)."""
    mean, scale = features.mean(axis=0), features.std(axis=0)
    chunks = chunks_of(features, labels, chunk)
    result = newton_fit(chunks, features.shape[1], num_classes, mean=mean, scale=scale, **kwargs)
    layout = Layout.for_classes(num_classes, features.shape[1])
    theta = layout.pack(result.weight, result.bias)
    sums = NewtonSums(layout)
    for x, y in chunks():
        sums.add(x, y, theta, mean, scale)
    return sums, theta, mean, scale


def infer(features, labels, num_classes, **kwargs):
    sums, theta, mean, scale = fit(features, labels, num_classes, tol=1e-15)
    counts = class_counts(labels, num_classes)
    return logistic_inference(sums, theta, counts, mean=mean, scale=scale, **kwargs)


def reference(features, labels, num_classes):
    model = sm.Logit if num_classes == 2 else sm.MNLogit
    result = model(labels, sm.add_constant(features)).fit(method="newton", tol=1e-12, maxiter=100, disp=0)
    assert result.mle_retvals["converged"]
    result.set_null_options(method="newton", tol=1e-12, maxiter=100)
    return result


@pytest.mark.parametrize("data", [spector, wine, anes96])
def test_matches_statsmodels(data):
    features, labels, num_classes = data()
    ours, theirs = infer(features, labels, num_classes), reference(features, labels, num_classes)
    assert ours.check.valid and ours.check.reason == ""
    for name in ARRAYS:
        assert getattr(ours, name).shape == np.shape(getattr(theirs, name)), name
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6, err_msg=name)
    for name in SCALARS:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(ours.zvalues, theirs.tvalues, rtol=1e-6)
    scale = np.abs(theirs.cov_params()).max()
    np.testing.assert_allclose(ours.cov_params(), theirs.cov_params(), rtol=0, atol=1e-6 * scale)
    for alpha in (0.05, 0.1, 0.01):
        np.testing.assert_allclose(ours.conf_int(alpha), theirs.conf_int(alpha), rtol=1e-6)
        np.testing.assert_allclose(ours.odds_ratio_conf_int(alpha), np.exp(theirs.conf_int(alpha)), rtol=1e-6)
    np.testing.assert_allclose(ours.odds_ratios(), np.exp(theirs.params), rtol=1e-6)
    assert ours.term_names == ["const", *[f"x{j + 1}" for j in range(features.shape[1])]]


@pytest.mark.parametrize("data", [spector, wine])
def test_merge_order_does_not_matter(data):
    features, labels, num_classes = data()
    sums, theta, mean, scale = fit(features, labels, num_classes, tol=1e-15)
    counts = class_counts(labels, num_classes)
    parts = []
    for start in range(0, len(labels), 7):
        part = NewtonSums(sums.layout)
        part.add(features[start : start + 7], labels[start : start + 7], theta, mean, scale)
        parts.append(part)
    orders = [parts, parts[::-1], [parts[i] for i in np.random.default_rng(0).permutation(len(parts))]]
    results = []
    for order in orders:
        merged = order[0]
        for part in order[1:]:
            merged = merged.merge(part)
        results.append(logistic_inference(merged, theta, counts, mean=mean, scale=scale))
    for other in results[1:]:
        for name in ARRAYS + SCALARS:
            np.testing.assert_allclose(getattr(other, name), getattr(results[0], name), rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(other.conf_int(), results[0].conf_int(), rtol=1e-10)


def test_refuses_a_penalized_fit():
    features, labels, _ = spector()
    sums, theta, mean, scale = fit(features, labels, 2, l2_strength=0.01, tol=1e-15)
    check = check_inference(sums, theta, l2_strength=0.01)
    assert not check.valid and check.penalized and check.refused
    assert "penalized" in check.reason and "l2_strength=0.01" in check.reason
    with pytest.raises(InputError, match="penalized"):
        logistic_inference(sums, theta, class_counts(labels, 2), mean=mean, scale=scale, l2_strength=0.01)


@pytest.mark.parametrize("data", [spector, wine])
def test_refuses_an_unconverged_fit(data):
    features, labels, num_classes = data()
    sums, theta, mean, scale = fit(features, labels, num_classes, max_iter=1)
    check = check_inference(sums, theta)
    assert not check.valid and not check.converged and not check.penalized and check.relative_gap > 1e-8
    assert "relative gap estimate" in check.reason
    counts = class_counts(labels, num_classes)
    with pytest.raises(InputError, match="not at the unpenalized maximum"):
        logistic_inference(sums, theta, counts, mean=mean, scale=scale)
    loose = logistic_inference(sums, theta, counts, mean=mean, scale=scale, refuse=False)
    assert not loose.check.valid and np.isfinite(loose.bse).all()
    assert check_inference(sums, theta, tol=1.0).converged


def test_flags_separable_rows():
    layout = Layout.for_classes(2, 1)
    sums = NewtonSums(layout)
    sums.add(np.array([[-2.0], [-1.0], [1.0], [2.0]]), np.array([0, 0, 1, 1]), layout.pack(np.array([[3.0]])))
    check = check_inference(sums, layout.pack(np.array([[3.0]])))
    assert check.separable and "separable" in check.reason


@pytest.mark.parametrize("data", [spector, wine])
def test_aliased_terms_get_nan_and_the_others_the_fit_without_them(data):
    features, labels, num_classes = data()
    combination = 2.0 * features[:, 0] - features[:, 1] + 1.0
    aliased = np.column_stack([features[:, :2], combination, features[:, 2:]])
    names = ["a", "b", "combo", *[f"c{j}" for j in range(features.shape[1] - 2)]]
    ours = infer(aliased, labels, num_classes, feature_names=names)
    theirs = reference(features, labels, num_classes)
    assert ours.check.aliased == ("combo",) and not ours.check.valid and not ours.check.refused
    assert "aliased terms" in ours.check.reason and "combo" in ours.check.reason
    assert np.isnan(ours.params[3]).all() and np.isnan(ours.bse[3]).all() and np.isnan(ours.pvalues[3]).all()
    keep = [0, 1, 2, *range(4, len(ours.params))]
    for name in ARRAYS:
        np.testing.assert_allclose(getattr(ours, name)[keep], getattr(theirs, name), rtol=1e-6, err_msg=name)
    for name in SCALARS:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6, err_msg=name)


def test_input_errors():
    features, labels, _ = spector()
    sums, theta, mean, scale = fit(features, labels, 2, tol=1e-15)
    with pytest.raises(InputError, match="class counts"):
        logistic_inference(sums, theta, [10.0, 10.0], mean=mean, scale=scale)
    with pytest.raises(InputError, match="feature names"):
        logistic_inference(sums, theta, class_counts(labels, 2), feature_names=["a"])
    layout = Layout(1, 3, fit_intercept=False)
    no_bias = NewtonSums(layout)
    no_bias.add(features, labels, np.zeros(3))
    with pytest.raises(InputError, match="intercept"):
        check_inference(no_bias, np.zeros(3))
