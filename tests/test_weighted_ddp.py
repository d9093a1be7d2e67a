"""Sample weights under DDP: two gloo processes, each streaming its shard with its weights, merged sums.

The shipped rentals example (weights, a categorical column, imputed cells) solved exactly with HC3 standard errors:
the table equals statsmodels' WLS of all the rows. (The Newton sums carry their weight sum in the vector the ranks
add, tests/test_weighted_logistic.py; the unweighted Newton solver runs under DDP in tests/test_newton_solver.py.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder

from tests.helpers import CONFIGS, RENTALS_NUMERIC, REPO, rentals_term, run_cli

RTOL = 1e-6
DDP = ("--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2")


def _coefficients(table: dict) -> dict[str, tuple[float, float]]:
    """Each term's coefficient and standard error in a summary.json's first equation."""
    return {term["term"]: (term["coef"], term["std_err"]) for term in table["equations"][0]["terms"]}


def _rentals_reference() -> tuple[list[str], object]:
    """statsmodels' WLS with HC3 on scikit-learn's encoding of every rentals row with a rent."""
    rows = pd.read_csv(REPO / "data" / "rentals.csv").dropna(subset=["rent"])
    encode = ColumnTransformer(
        [
            ("cat", OneHotEncoder(drop="first", sparse_output=False), ["neighbourhood"]),
            ("num", SimpleImputer(strategy="mean", add_indicator=True), RENTALS_NUMERIC),
        ]
    )
    design = encode.fit_transform(rows)
    names = ["const", *(rentals_term(name) for name in encode.get_feature_names_out())]
    fit = sm.WLS(rows["rent"].to_numpy(), sm.add_constant(design), weights=rows["weight"].to_numpy())
    return names, fit.fit(cov_type="HC3")


@pytest.mark.slow
def test_weighted_ddp_tables_equal_statsmodels_of_all_rows(tmp_path: Path) -> None:
    rentals = tmp_path / "rentals"
    (rentals / "data").mkdir(parents=True)
    shutil.copy(REPO / "data" / "rentals.csv", rentals / "data" / "rentals.csv")
    options = [*DDP, "--trainer.precision", "64-true", "--summary.cov_type", "HC3", "--data.val_fraction", "0"]
    run_cli(["fit", "--config", str(CONFIGS / "rentals.yaml"), *options], cwd=rentals)
    table = json.loads((rentals / "runs" / "rentals" / "version_0" / "summary.json").read_text())
    assert table["valid"] and table["model"] == "WLS" and table["nobs"] == 58, table["reason"]
    names, reference = _rentals_reference()
    ours = _coefficients(table)
    assert set(ours) == set(names)
    for name, coef, bse in zip(names, reference.params, reference.bse, strict=True):  # type: ignore[attr-defined]
        assert ours[name][0] == pytest.approx(coef, rel=RTOL, abs=1e-8), name
        assert ours[name][1] == pytest.approx(bse, rel=RTOL), name
