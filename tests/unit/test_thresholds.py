import numpy as np
import pytest

from memae import MemAEDetector
from memae.thresholds import ecdf_score, learn_threshold, percentile_threshold, test_percentile_labels

FAST = {"epochs": 1, "batch_size": 32, "random_state": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(100, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def default(data: np.ndarray) -> MemAEDetector:
    return MemAEDetector(**FAST).fit(data)


# --- the pure functions ----------------------------------------------------------------


def test_test_percentile_flags_the_top_share_of_its_own_scores(rng: np.random.Generator) -> None:
    scores = rng.permutation(100).astype(float)
    labels = test_percentile_labels(scores, 80.0)
    assert labels.sum() == 20
    np.testing.assert_array_equal(labels, (scores >= 80).astype(int))


def test_ecdf_is_the_share_of_reference_scores_at_or_below(rng: np.random.Generator) -> None:
    reference = rng.normal(size=50)
    scores = np.concatenate([rng.normal(size=20), [reference.min() - 1, reference.max() + 1]])
    expected = [(reference <= s).mean() for s in scores]
    np.testing.assert_allclose(ecdf_score(reference, scores), expected)
    assert ecdf_score(reference, scores)[-2:].tolist() == [0.0, 1.0]


def test_learn_threshold_modes(rng: np.random.Generator) -> None:
    train, val = rng.normal(size=200), rng.normal(loc=5.0, size=40)
    assert learn_threshold("percentile", train_scores=train, val_scores=val, percentile=90) == (
        np.percentile(val, 90),
        "validation",
    )
    assert learn_threshold("percentile", train_scores=train, val_scores=np.zeros(0), percentile=90) == (
        np.percentile(train, 90),
        "training",
    )
    assert learn_threshold("contamination", train_scores=train, val_scores=val, contamination=0.2) == (
        np.percentile(train, 80),
        "training",
    )
    assert learn_threshold("fixed", train_scores=train, value=1.5) == (1.5, "given")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "median"}, "threshold must be one of"),
        ({"mode": "fixed"}, "needs a finite threshold_value"),
        ({"mode": "fixed", "value": float("nan")}, "needs a finite threshold_value"),
        ({"mode": "percentile", "percentile": 100.0}, r"threshold_percentile must lie in \(0, 100\)"),
        ({"mode": "contamination", "contamination": 0.0}, "contamination must lie"),
    ],
)
def test_bad_threshold_settings_are_named(kwargs: dict, message: str) -> None:
    mode = kwargs.pop("mode")
    with pytest.raises(ValueError, match=message):
        learn_threshold(mode, train_scores=np.arange(5.0), **kwargs)


def test_empty_or_non_finite_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile_threshold(np.zeros(0), 50)
    with pytest.raises(ValueError, match="NaN or infinite"):
        ecdf_score(np.array([0.0, np.nan]), np.zeros(2))


# --- the detector ----------------------------------------------------------------------


def test_default_threshold_is_a_percentile_of_the_validation_scores(default: MemAEDetector) -> None:
    assert default.threshold == "percentile" and default.threshold_source_ == "validation"
    assert len(default.validation_scores_) == 10  # validation_fraction 0.1 of 100 samples
    assert default.threshold_ == pytest.approx(np.percentile(default.validation_scores_, 95))
    np.testing.assert_array_equal(
        default.labels_, (default.decision_scores_ > default.threshold_).astype(int)
    )


def test_held_out_normal_data_sets_the_threshold(data: np.ndarray) -> None:
    det = MemAEDetector(threshold_percentile=90, **FAST).fit(data[:70], X_val=data[70:])
    np.testing.assert_allclose(det.validation_scores_, det.decision_function(data[70:]), rtol=1e-6)
    assert det.threshold_ == pytest.approx(np.percentile(det.decision_function(data[70:]), 90))


def test_without_validation_the_training_scores_are_used(data: np.ndarray) -> None:
    det = MemAEDetector(validation_fraction=0.0, **FAST).fit(data)
    assert det.threshold_source_ == "training" and len(det.validation_scores_) == 0
    assert det.threshold_ == pytest.approx(np.percentile(det.decision_scores_, 95))
    calibrated = det.calibrated_score(data)
    np.testing.assert_allclose(calibrated, ecdf_score(det.decision_scores_, det.decision_scores_))


def test_fixed_threshold(data: np.ndarray, default: MemAEDetector) -> None:
    value = float(np.median(default.decision_scores_))
    det = MemAEDetector(threshold="fixed", threshold_value=value, **FAST).fit(data)
    assert det.threshold_ == value and det.threshold_source_ == "given"
    np.testing.assert_array_equal(det.predict(data), (det.decision_function(data) > value).astype(int))


def test_fixed_threshold_without_a_value_is_refused_at_fit(data: np.ndarray) -> None:
    with pytest.raises(ValueError, match="needs a finite threshold_value"):
        MemAEDetector(threshold="fixed", **FAST).fit(data)


def test_test_percentile_mode_thresholds_each_batch_by_its_own_scores(data: np.ndarray) -> None:
    det = MemAEDetector(threshold="test-percentile", threshold_percentile=80, **FAST).fit(data)
    for batch in (data[:50], data[50:]):
        np.testing.assert_array_equal(
            det.predict(batch), test_percentile_labels(det.decision_function(batch), 80)
        )
    assert det.predict(data[:50]).sum() == 10
    assert det.labels_.sum() == 20


def test_calibrated_score_is_the_ecdf_of_the_validation_scores(
    default: MemAEDetector, data: np.ndarray
) -> None:
    calibrated = default.calibrated_score(data)
    assert ((calibrated >= 0) & (calibrated <= 1)).all()
    scores = default.decision_function(data)
    np.testing.assert_allclose(calibrated, ecdf_score(default.validation_scores_, scores))
    order = np.argsort(scores)
    assert (np.diff(calibrated[order]) >= 0).all()  # monotone in the raw score
    proba = default.predict_proba(data, method="ecdf")
    np.testing.assert_allclose(proba[:, 1], calibrated)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="method must be"):
        default.predict_proba(data, method="sigmoid")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "params",
    [{}, {"threshold": "test-percentile", "threshold_percentile": 80}, {"threshold": "contamination"}],
)
def test_threshold_and_calibration_survive_save_load(data: np.ndarray, params: dict, tmp_path) -> None:
    det = MemAEDetector(**FAST, **params).fit(data)
    loaded = MemAEDetector.load(det.save(tmp_path / "m.memae"))
    assert (loaded.threshold, loaded.threshold_, loaded.threshold_source_) == (
        det.threshold,
        det.threshold_,
        det.threshold_source_,
    )
    np.testing.assert_array_equal(loaded.validation_scores_, det.validation_scores_)
    np.testing.assert_array_equal(loaded.labels_, det.labels_)
    np.testing.assert_array_equal(loaded.predict(data[:30]), det.predict(data[:30]))
    np.testing.assert_array_equal(loaded.calibrated_score(data), det.calibrated_score(data))
