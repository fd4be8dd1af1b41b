"""scikit-learn's estimator checks: every one passes but the two that assume scikit-learn's
+1/-1 outlier labels, where memae deliberately follows PyOD (docs/ROBUSTNESS.md)."""

import warnings

import pytest
from sklearn.utils.estimator_checks import check_estimator

from memae import MemAEDetector

#: check -> why memae departs from it on purpose
DEPARTURES = {
    "check_outliers_train": "predict gives PyOD's 0 (normal) / 1 (anomaly), not scikit-learn's +1 / -1",
    "check_outliers_fit_predict": "fit_predict gives PyOD's 0 (normal) / 1 (anomaly), not +1 / -1",
}


@pytest.mark.slow
def test_scikit_learn_estimator_checks_pass_but_the_documented_departures() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(
            MemAEDetector(epochs=2, random_state=0, device="cpu"),
            on_fail=None,
            expected_failed_checks=DEPARTURES,
        )
    failed = {
        r["check_name"]: str(r["exception"]).splitlines()[:1] for r in results if r["status"] == "failed"
    }
    assert failed == {}
    departed = {r["check_name"] for r in results if r["status"] == "xfail"}
    assert departed == set(DEPARTURES)
    assert sum(r["status"] == "passed" for r in results) >= 40
