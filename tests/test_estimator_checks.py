"""scikit-learn's own conformance checks on both estimators, with each solver; every check passes.

No check is declared an expected failure: were one needed, it would go to ``expected_failed_checks`` below with a
one-line reason. The gradient solver runs few epochs (its tags then say its scores may be poor), so that the
checks stay fast; they test the estimator's contract, not convergence (tests/test_estimators.py does that).
"""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from lr_lightning.estimators import LightningLinearRegression, LightningLogisticRegression

# check_sample_weight_equivalence_on_dense_data fits 30 features on fewer rows: the minimum-norm least-squares
# solution, which lr_lightning announces with a RankDeficiencyWarning, is the one the check expects.
pytestmark = pytest.mark.filterwarnings("ignore::lr_lightning.closed_form.RankDeficiencyWarning")

ESTIMATORS = [
    LightningLinearRegression(),
    LightningLinearRegression(solver="gradient", optimizer="lbfgs", max_epochs=3),
    LightningLogisticRegression(),
    LightningLogisticRegression(solver="gradient", max_epochs=2),
]


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """Checks that may fail for ``estimator``, each with its reason: none."""
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator: Any, check: Any) -> None:
    check(estimator)
