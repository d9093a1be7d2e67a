"""The streamed OLS summary (lr_lightning.inference) against statsmodels' OLS on its own and scikit-learn's datasets."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.datasets import load_diabetes

from lr_lightning.inference import (
    COV_TYPES,
    HCAccumulator,
    OLSFit,
    OLSResults,
    fit_ols,
    ols_results,
    prediction_intervals,
)
from lr_lightning.streaming import LeastSquaresState, merge_all, solve
from tests.helpers import REGRESSION_STATISTICS

RTOL = 1e-6  # against statsmodels
MERGE_RTOL = 1e-10  # the same numbers from another split of the rows


def _longley() -> tuple[np.ndarray, np.ndarray]:
    data = sm.datasets.longley.load_pandas()
    return data.exog.to_numpy(dtype=np.float64), data.endog.to_numpy(dtype=np.float64)


def _stackloss() -> tuple[np.ndarray, np.ndarray]:
    data = sm.datasets.stackloss.load_pandas()
    return data.exog.to_numpy(dtype=np.float64), data.endog.to_numpy(dtype=np.float64)


def _diabetes() -> tuple[np.ndarray, np.ndarray]:
    """Diabetes features (442, 10) and two targets: the progression and its logarithm."""
    features, target = load_diabetes(return_X_y=True)
    return features, np.stack([target, np.log(target)], axis=1)


DATASETS = {"longley": _longley, "stackloss": _stackloss}


def _statsmodels(features: np.ndarray, target: np.ndarray, fit_intercept: bool, cov_type: str) -> Any:
    design = sm.add_constant(features, has_constant="add") if fit_intercept else features
    return sm.OLS(target, design, hasconst=None if fit_intercept else False).fit(cov_type=cov_type)


def _robust_pass(fit: OLSFit, features: np.ndarray, targets: np.ndarray) -> HCAccumulator:
    accumulator = HCAccumulator(fit)
    accumulator.update(features, targets)
    return accumulator


def _assert_matches(ours: OLSResults, k: int, reference: Any, columns: np.ndarray | None = None) -> None:
    """Every number of target k against statsmodels' results; ``columns`` (p,) bool limits the per-parameter ones."""
    keep = np.ones(ours.params.shape[1], dtype=bool) if columns is None else columns
    for name in ("params", "bse", "tvalues", "pvalues"):
        np.testing.assert_allclose(
            getattr(ours, name)[k][keep], np.asarray(getattr(reference, name))[keep], rtol=RTOL, err_msg=name
        )
    for alpha in (0.05, 0.1):
        np.testing.assert_allclose(
            ours.conf_int(alpha)[k][keep], np.asarray(reference.conf_int(alpha))[keep], rtol=RTOL, err_msg=f"CI {alpha}"
        )
    np.testing.assert_allclose(ours.conf_int()[k][keep], np.asarray(reference.conf_int())[keep], rtol=RTOL)
    for name in REGRESSION_STATISTICS:
        np.testing.assert_allclose(getattr(ours, name)[k], getattr(reference, name), rtol=RTOL, err_msg=name)
    np.testing.assert_allclose(ours.resid_std_err[k], np.sqrt(reference.scale), rtol=RTOL)
    assert ours.nobs == reference.nobs
    assert ours.df_model == reference.df_model
    assert ours.df_resid == reference.df_resid
    assert ours.k_constant == reference.k_constant
    assert ours.use_t == reference.use_t
    if columns is None:
        # As correlations: a covariance that is 0 in exact arithmetic (diabetes is centred) is rounding on both sides.
        scales = np.outer(ours.bse[k], ours.bse[k])
        np.testing.assert_allclose(
            ours.cov_params()[k] / scales, np.asarray(reference.cov_params()) / scales, rtol=RTOL, atol=RTOL
        )


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_single_target_matches_statsmodels(dataset: str, fit_intercept: bool) -> None:
    features, target = DATASETS[dataset]()
    fit = fit_ols(LeastSquaresState.from_chunk(features, target), fit_intercept)
    robust = _robust_pass(fit, features, target)
    for cov_type in COV_TYPES:
        ours = ols_results(fit, cov_type, None if cov_type == "nonrobust" else robust)
        assert ours.cov_type == cov_type
        _assert_matches(ours, 0, _statsmodels(features, target, fit_intercept, cov_type))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_two_targets_are_two_statsmodels_fits(fit_intercept: bool) -> None:
    features, targets = _diabetes()
    fit = fit_ols(LeastSquaresState.from_chunk(features, targets), fit_intercept)
    robust = _robust_pass(fit, features, targets)
    for cov_type in COV_TYPES:
        ours = ols_results(fit, cov_type, None if cov_type == "nonrobust" else robust)
        for k in range(2):
            _assert_matches(ours, k, _statsmodels(features, targets[:, k], fit_intercept, cov_type))


def test_coefficients_agree_with_the_streaming_solver() -> None:
    features, targets = _diabetes()
    state = LeastSquaresState.from_chunk(features, targets)
    for fit_intercept in (True, False):
        fit, solution = fit_ols(state, fit_intercept), solve(state, fit_intercept)
        np.testing.assert_allclose(fit.coef, solution.coef_, rtol=1e-10)
        np.testing.assert_allclose(fit.intercept, solution.intercept_, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(fit.ssr, solution.rss_, rtol=1e-10)


def _summaries(fit: OLSFit, robust: HCAccumulator) -> dict[str, OLSResults]:
    return {cov_type: ols_results(fit, cov_type, None if cov_type == "nonrobust" else robust) for cov_type in COV_TYPES}


def _assert_same(first: dict[str, OLSResults], second: dict[str, OLSResults]) -> None:
    """Every field to MERGE_RTOL, with two exceptions inherent in the numbers, not in the merge.

    A p-value p in a distribution's tail moves by about |log p| times the relative change of its statistic (the
    log-density's slope: t²/2 for t), so p-values are compared to MERGE_RTOL (1 + |log p|). Covariances are
    compared as correlations (divided by the standard errors' products) to MERGE_RTOL absolute: diabetes is
    centred, so the intercept's covariances with the slopes are 0 in exact arithmetic and rounding on both sides.
    """
    for cov_type, ours in first.items():
        other = second[cov_type]
        for name, value in ours.to_arrays().items():
            expected = other.to_arrays()[name]
            message = f"{cov_type} {name}"
            if name in ("pvalues", "f_pvalue"):
                with np.errstate(divide="ignore", invalid="ignore"):
                    bound = MERGE_RTOL * (1.0 + np.abs(np.log(expected))) * expected
                fails = ~((value == expected) | (np.abs(value - expected) <= bound))
                assert not np.any(fails), f"{message}: {value[fails]} != {expected[fails]}"
            elif name == "cov_params_default":
                scales = np.einsum("ki,kj->kij", other.bse, other.bse)
                np.testing.assert_allclose(value / scales, expected / scales, rtol=0, atol=MERGE_RTOL, err_msg=message)
            else:
                np.testing.assert_allclose(value, expected, rtol=MERGE_RTOL, atol=0, err_msg=message)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_chunks_and_shards_merge_to_the_one_chunk_answer(fit_intercept: bool) -> None:
    features, targets = _diabetes()
    whole = fit_ols(LeastSquaresState.from_chunk(features, targets), fit_intercept)
    reference = _summaries(whole, _robust_pass(whole, features, targets))

    rng = np.random.default_rng(0)
    cuts = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 442), size=9, replace=False)), [442]])
    chunks = [slice(start, stop) for start, stop in itertools.pairwise(cuts)]
    states = [LeastSquaresState.from_chunk(features[rows], targets[rows]) for rows in chunks]
    fit = fit_ols(merge_all(states[::-1]), fit_intercept)
    # The robust pass on shards in another order, merged by merge() and by summing flat vectors (an all-reduce).
    order = rng.permutation(len(chunks))
    shards = [HCAccumulator(fit) for _ in range(3)]
    for position, index in enumerate(order):
        shards[position % 3].update(features[chunks[index]], targets[chunks[index]])
    merged = shards[2].merge(shards[0]).merge(shards[1])
    summed = HCAccumulator.from_vector(fit, sum(shard.to_vector() for shard in shards))
    rebuilt = HCAccumulator.from_arrays(OLSFit.from_arrays(fit.to_arrays()), merged.to_arrays())

    np.testing.assert_allclose(fit.r_design, whole.r_design, rtol=MERGE_RTOL, atol=1e-12)
    for robust in (merged, summed, rebuilt):
        _assert_same(_summaries(fit, robust), reference)


def test_shifted_data_with_its_shift_gives_the_original_units() -> None:
    features, targets = _diabetes()
    features, targets = features * 10.0 + 1e3, targets + 5e3  # far from zero, as raw data often are
    feature_shift, target_shift = features[0].copy(), targets[0].copy()
    shifted_x, shifted_y = features - feature_shift, targets - target_shift
    for fit_intercept in (True, False):
        plain = fit_ols(LeastSquaresState.from_chunk(features, targets), fit_intercept)
        shifted = fit_ols(
            LeastSquaresState.from_chunk(shifted_x, shifted_y),
            fit_intercept,
            feature_shift=feature_shift,
            target_shift=target_shift,
        )
        reference = _summaries(plain, _robust_pass(plain, features, targets))
        _assert_same(_summaries(shifted, _robust_pass(shifted, shifted_x, shifted_y)), reference)
        _assert_matches(reference["HC3"], 1, _statsmodels(features, targets[:, 1], fit_intercept, "HC3"))
        new_rows = features[:5] + 3.0
        for name, value in vars(prediction_intervals(shifted, new_rows)).items():
            np.testing.assert_allclose(value, getattr(prediction_intervals(plain, new_rows), name), rtol=1e-9)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_prediction_intervals_match_get_prediction(fit_intercept: bool, alpha: float) -> None:
    features, targets = _diabetes()
    fit = fit_ols(LeastSquaresState.from_chunk(features, targets), fit_intercept)
    new_rows = np.random.default_rng(1).normal(scale=0.05, size=(7, 10))
    ours = prediction_intervals(fit, new_rows, alpha)
    exog = sm.add_constant(new_rows, has_constant="add") if fit_intercept else new_rows
    for k in range(2):
        frame = (
            _statsmodels(features, targets[:, k], fit_intercept, "nonrobust").get_prediction(exog).summary_frame(alpha)
        )
        for column in frame.columns:
            np.testing.assert_allclose(getattr(ours, column)[:, k], frame[column].to_numpy(), rtol=RTOL, err_msg=column)
    longley_x, longley_y = _longley()
    fit = fit_ols(LeastSquaresState.from_chunk(longley_x, longley_y), fit_intercept)
    ours = prediction_intervals(fit, longley_x[::3] * 1.01, alpha)
    exog = longley_x[::3] * 1.01
    frame = (
        _statsmodels(longley_x, longley_y, fit_intercept, "nonrobust")
        .get_prediction(sm.add_constant(exog, has_constant="add") if fit_intercept else exog)
        .summary_frame(alpha)
    )
    for column in frame.columns:
        np.testing.assert_allclose(getattr(ours, column)[:, 0], frame[column].to_numpy(), rtol=RTOL, err_msg=column)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_rank_deficient_design_names_the_aliased_columns(fit_intercept: bool) -> None:
    features, targets = _diabetes()
    # Column 3 duplicates column 1; column 12 is 2 x column 0 - column 5 + column 1 (a combination of earlier ones).
    combination = 2.0 * features[:, 0] - features[:, 4] + features[:, 1]
    design = np.column_stack([features[:, :3], features[:, 1], features[:, 3:], features[:, 5], combination])
    fit = fit_ols(LeastSquaresState.from_chunk(design, targets), fit_intercept)
    aliased = np.zeros(13, dtype=bool)
    aliased[[3, 11, 12]] = True  # the copy of column 1, the copy of feature 5 (column 6) and the combination
    np.testing.assert_array_equal(fit.aliased, aliased)
    assert fit.rank == 10 + int(fit_intercept)

    robust = _robust_pass(fit, design, targets)
    # Comparable with statsmodels' minimum-norm fit: the coefficients of columns in no dependency (and the constant).
    involved = np.zeros(13, dtype=bool)
    involved[[0, 1, 3, 5, 6, 11, 12]] = True
    columns = np.concatenate([[True], ~involved]) if fit_intercept else ~involved
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns of the rank deficiency
        for cov_type in COV_TYPES:
            ours = ols_results(fit, cov_type, None if cov_type == "nonrobust" else robust)
            kept = fit.param_kept
            np.testing.assert_array_equal(ours.aliased, ~kept)
            assert np.all(ours.params[:, ~kept] == 0.0)
            for name in ("bse", "tvalues", "pvalues"):
                assert np.all(np.isnan(getattr(ours, name)[:, ~kept])) and np.all(
                    np.isfinite(getattr(ours, name)[:, kept])
                )
            for k in range(2):
                reference = _statsmodels(design, targets[:, k], fit_intercept, cov_type)
                _assert_matches(ours, k, reference, columns)
            # The same fit as the full-rank design without the aliased columns.
            reduced = fit_ols(LeastSquaresState.from_chunk(design[:, ~aliased], targets), fit_intercept)
            expected = ols_results(
                reduced,
                cov_type,
                None if cov_type == "nonrobust" else _robust_pass(reduced, design[:, ~aliased], targets),
            )
            np.testing.assert_allclose(ours.params[:, kept], expected.params, rtol=1e-9)
            np.testing.assert_allclose(ours.bse[:, kept], expected.bse, rtol=1e-9)
            np.testing.assert_allclose(ours.fvalue, expected.fvalue, rtol=1e-9)
        frame = (
            _statsmodels(design, targets[:, 0], fit_intercept, "nonrobust")
            .get_prediction(sm.add_constant(design[:4], has_constant="add") if fit_intercept else design[:4])
            .summary_frame()
        )
    intervals = prediction_intervals(fit, design[:4])
    for column in frame.columns:
        np.testing.assert_allclose(
            getattr(intervals, column)[:, 0], frame[column].to_numpy(), rtol=RTOL, err_msg=column
        )


def test_constant_feature_is_aliased_with_the_intercept() -> None:
    features, targets = _stackloss()
    design = np.column_stack([features, np.full(len(features), 3.0)])
    assert fit_ols(LeastSquaresState.from_chunk(design, targets)).aliased.tolist() == [False, False, False, True]
    assert not np.any(fit_ols(LeastSquaresState.from_chunk(design, targets), fit_intercept=False).aliased)


def test_results_round_trip_through_arrays() -> None:
    features, targets = _diabetes()
    fit = fit_ols(LeastSquaresState.from_chunk(features, targets))
    ours = ols_results(fit, "HC1", _robust_pass(fit, features, targets))
    rebuilt = OLSResults.from_arrays(ours.to_arrays())
    assert rebuilt.cov_type == "HC1" and rebuilt.use_t is False and rebuilt.df_resid == ours.df_resid
    np.testing.assert_array_equal(rebuilt.conf_int(0.1), ours.conf_int(0.1))
    assert all(isinstance(value, np.ndarray) for value in ours.to_arrays().values())
    again = OLSFit.from_arrays(fit.to_arrays())
    np.testing.assert_array_equal(ols_results(again).bse, ols_results(fit).bse)


def test_use_t_override_and_errors() -> None:
    features, target = _stackloss()
    fit = fit_ols(LeastSquaresState.from_chunk(features, target))
    robust = _robust_pass(fit, features, target)
    reference = sm.OLS(target, sm.add_constant(features)).fit(cov_type="HC2", use_t=True)
    _assert_matches(ols_results(fit, "HC2", robust, use_t=True), 0, reference)
    with pytest.raises(ValueError, match="robust pass"):
        ols_results(fit, "HC0")
    with pytest.raises(ValueError, match="cov_type"):
        ols_results(fit, "HAC", robust)
    partial = HCAccumulator(fit)
    partial.update(features[:10], target[:10])
    with pytest.raises(ValueError, match="rows"):
        ols_results(fit, "HC0", partial)
    only_hc3 = HCAccumulator(fit, ["HC3"])
    only_hc3.update(features, target)
    with pytest.raises(ValueError, match="not accumulated"):
        ols_results(fit, "HC0", only_hc3)
    with pytest.raises(ValueError, match="degree of freedom"):
        fit_ols(LeastSquaresState.from_chunk(features[:4], target[:4]))
    with pytest.warns(UserWarning, match="residual sums of squares"):
        wrong = HCAccumulator(fit)
        wrong.update(features, target[::-1])
        ols_results(fit, "HC0", wrong)
