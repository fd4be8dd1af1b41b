"""Bad input everywhere a user touches the detector: each case a clear, documented error
(docs/ROBUSTNESS.md), and property-based tests that accept only results or those errors."""

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from memae import MemAEDetector

FAST = {"epochs": 1, "batch_size": 4, "random_state": 0, "device": "cpu"}
PROPERTY = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

#: Every error message a user can get from fit / decision_function on arbitrary arrays.
DOCUMENTED = [
    r"^X must hold (real )?numbers, got dtype",
    r"^X must be 2-D \(N, features\)(, 4-D \(N, C, H, W\) or 5-D \(N, C, T, H, W\))?, got \d-D shape",
    r"^X is empty: got shape .*, expected at least one sample$",
    r"^X has a zero-sized sample dimension: shape",
    r"^X has 0 feature\(s\) \(shape=\(\d+, 0\)\) while a minimum of 1 is required\.$",
    r"^X contains \d+ NaN or infinite value\(s\); expected finite numbers$",
    r"^X has \d+ value\(s\) beyond the float32 range",
    r"^X has \d+ features, but MemAEDetector is expecting \d+ features as input",
    r"^column '\w+' has \d+ (missing|infinite) value",
    r"^expected X of shape \(N, [\d, ]+\), got \(",
    r"^backbone '\w+' encodes samples of shape .* to a 1x1 map, where batch norm needs at least 2",
    r"^training produced non-finite scores on the training data",
    r"^training diverged in epoch \d+: mean loss",
]


def _documented(err: Exception) -> bool:
    return isinstance(err, ValueError | TypeError) and any(re.search(p, str(err)) for p in DOCUMENTED)


#: Sample shapes: mostly the ranks the detector takes (tabular, images, clips), some anything.
_SHAPES = {
    "tabular": st.tuples(st.integers(1, 12), st.integers(1, 6)),
    "image": st.tuples(st.integers(1, 6), st.integers(1, 3), st.integers(1, 12), st.integers(1, 12)),
    "clip": st.tuples(
        st.integers(1, 3), st.just(1), st.integers(1, 6), st.integers(1, 10), st.integers(1, 10)
    ),
    "any": hnp.array_shapes(min_dims=0, max_dims=6, min_side=0, max_side=5),
}
_KINDS = st.sampled_from(["tabular", "tabular", "image", "image", "clip", "any"])
_DTYPES = st.sampled_from(
    [np.float32, np.float32, np.float64, np.float64, np.int64, np.uint8, np.bool_, np.complex64]
)


@st.composite
def arrays(draw) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Arrays of the ranks users pass, of every dtype, mostly finite values, sometimes NaN,
    infinities, huge values or a constant."""
    shape = draw(_SHAPES[draw(_KINDS)])
    dtype = np.dtype(draw(_DTYPES))
    if dtype.kind != "f":
        return draw(hnp.arrays(dtype, shape))
    values = draw(st.sampled_from(["finite", "finite", "finite", "constant", "anything"]))
    if values == "constant":
        return np.full(shape, draw(st.floats(-1e3, 1e3)), dtype)
    width = 8 * dtype.itemsize
    elements = (
        st.floats(-10, 10, width=width)
        if values == "finite"
        else st.floats(allow_nan=True, allow_infinity=True, width=width)
    )
    return draw(hnp.arrays(dtype, shape, elements=elements))


def _check_result(det: MemAEDetector, X: np.ndarray) -> None:
    scores = det.decision_scores_
    assert scores.shape == (len(X),) and not np.isnan(scores).any()
    assert set(np.unique(det.labels_)) <= {0, 1}
    np.testing.assert_array_equal(det.predict(X), det.labels_)


@PROPERTY
@given(X=arrays(), batch_size=st.integers(1, 6))
def test_fit_gives_a_result_or_a_documented_error(X: np.ndarray, batch_size: int) -> None:
    det = MemAEDetector(**{**FAST, "batch_size": batch_size, "memory_size": 5})
    try:
        det.fit(X)
    except Exception as err:
        assert _documented(err), f"undocumented {type(err).__name__}: {err}"
        return
    _check_result(det, X)


@pytest.fixture(scope="module")
def tabular() -> MemAEDetector:
    return MemAEDetector(**FAST).fit(np.random.default_rng(0).normal(size=(20, 3)))


@pytest.fixture(scope="module")
def images() -> MemAEDetector:
    return MemAEDetector(**FAST).fit(np.random.default_rng(0).random((8, 1, 8, 8)))


@PROPERTY
@given(data=st.data())
def test_scoring_gives_scores_or_a_documented_error(tabular, images, data) -> None:
    for det in (tabular, images):
        # arbitrary arrays, and arrays of the fitted shape with arbitrary values
        fitted_shape = st.tuples(st.integers(1, 4), *map(st.just, det.input_shape_))
        values = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.floats(-10, 10, width=32)
        X = data.draw(arrays() | hnp.arrays(np.float32, fitted_shape, elements=values))
        try:
            scores = det.decision_function(X)
        except Exception as err:
            assert _documented(err), f"undocumented {type(err).__name__}: {err}"
            continue
        assert scores.shape == (len(X),) and not np.isnan(scores).any()
        calibrated = det.calibrated_score(X)
        assert ((calibrated >= 0) & (calibrated <= 1)).all()


@PROPERTY
@given(
    X=hnp.arrays(
        np.float64, st.tuples(st.integers(1, 5), st.just(3)), elements=st.floats(-1e300, 1e300, width=64)
    )
)
def test_finite_inputs_never_score_nan(tabular, X: np.ndarray) -> None:
    # a table is scaled in float64 and clipped, so any finite value scores finite, never NaN
    scores = tabular.decision_function(X)
    assert np.isfinite(scores).all()
    far = (np.abs(X) > 1e10).any(axis=1)
    np.testing.assert_array_equal(tabular.predict(X)[far], 1)


# --- the cases of docs/ROBUSTNESS.md one by one -------------------------------------------


def test_nan_at_scoring_is_refused_naming_the_column(tabular) -> None:
    with pytest.raises(ValueError, match=r"column 'x0' has 1 missing value\(s\) \(NaN\)"):
        tabular.decision_function(np.array([[np.nan, 1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"column 'x2' has 1 infinite value\(s\)"):
        tabular.decision_function(np.array([[0.0, 1.0, np.inf]]))


def test_values_beyond_float32_in_a_table_score_finite_and_flagged(tabular) -> None:
    huge = np.array([[1e300, -1e300, 2.0], [1e38, 1e38, 1e38]])
    scores = tabular.decision_function(huge)
    assert np.isfinite(scores).all() and (scores > tabular.threshold_).all()
    np.testing.assert_array_equal(tabular.predict(huge), [1, 1])


def test_overflowing_image_score_is_inf_and_flagged(images) -> None:
    huge = np.full((2, *images.input_shape_), 1e38, dtype=np.float32)
    scores = images.decision_function(huge)
    assert np.isinf(scores).all() and (scores > 0).all()
    np.testing.assert_array_equal(images.predict(huge), [1, 1])


def test_data_beyond_float32_after_preprocessing_is_refused_at_fit() -> None:
    X = np.random.default_rng(0).random((10, 1, 8, 8)) * 1e30
    message = r"training diverged in epoch 1: mean loss inf, expected a finite loss \(the first batch's was"
    with pytest.raises(ValueError, match=message + r".*scale the data \(preprocessing='standard'\)"):
        MemAEDetector(preprocessing="none", **FAST).fit(X)


@pytest.mark.parametrize(
    "shape, params",
    [((1, 4), {}), ((1, 1, 28, 28), {}), ((1, 1, 8, 32, 32), {"backbone": "video-small", "memory_size": 5})],
)
def test_one_sample_trains_and_scores(shape: tuple[int, ...], params: dict) -> None:
    X = np.random.default_rng(0).random(shape, dtype=np.float32)
    det = MemAEDetector(**FAST, **params).fit(X)
    assert det.decision_scores_.shape == (1,) and np.isfinite(det.decision_scores_).all()
    assert det.threshold_source_ == "training"  # nothing to hold out


@pytest.mark.parametrize("X", [np.ones((12, 3)), np.ones((12, 1, 8, 8)), np.c_[np.ones(12), np.arange(12.0)]])
def test_constant_features_give_finite_scores(X: np.ndarray) -> None:
    det = MemAEDetector(**FAST).fit(X)
    assert np.isfinite(det.decision_function(X)).all()


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_, np.float64, np.float16])
def test_numeric_dtypes_are_accepted(dtype) -> None:
    X = np.random.default_rng(0).integers(0, 2, (12, 3)).astype(dtype)
    assert np.isfinite(MemAEDetector(**FAST).fit(X).decision_scores_).all()


def test_one_by_one_encoding_with_a_batch_of_one_is_named() -> None:
    X = np.random.default_rng(0).random((9, 1, 8, 8))  # 8 train + 1 validation... and 9 % 4 == 1
    with pytest.raises(
        ValueError, match=r"backbone 'mnist' encodes samples of shape \(1, 8, 8\) to a 1x1 map"
    ):
        MemAEDetector(backbone="mnist", validation_fraction=0.0, **FAST).fit(X)
    # a batch size that leaves no batch of one trains
    MemAEDetector(backbone="mnist", validation_fraction=0.0, **{**FAST, "batch_size": 3}).fit(X)


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"epochs": 1.5}, TypeError, r"epochs must be an integer, got 1.5 \(float\)"),
        ({"batch_size": "8"}, TypeError, r"batch_size must be an integer, got '8' \(str\)"),
        ({"random_state": "a"}, TypeError, "random_state must be an integer or None"),
        ({"lr": None}, TypeError, "lr must be a number, got None"),
        ({"memory_size": True}, TypeError, "memory_size must be an integer or None, got True"),
        ({"score_reduction": "l2"}, ValueError, "'l2' needs channel-first images or clips, got tabular"),
        ({"backbone": "video"}, ValueError, r"backbone 'video' takes \(C, T, H, W\) clips"),
        ({"backbone": "kddcup", "addressing": "location"}, ValueError, "per-location addressing needs"),
    ],
)
def test_bad_parameter_types_and_combinations_are_named(params: dict, error: type, message: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((12, 1, 4, 4)) if params.get("backbone") == "video" else rng.random((12, 3))
    with pytest.raises(error, match=message):
        MemAEDetector(**{**FAST, **params}).fit(X)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_named() -> None:
    with pytest.raises(ValueError, match="'cuda' was asked for, but this torch has no CUDA device"):
        MemAEDetector(**{**FAST, "device": "cuda"}).fit(np.zeros((4, 2)))


def test_validation_data_of_another_shape_is_named() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="X_val has 4 features, but MemAEDetector is expecting 3"):
        MemAEDetector(**FAST).fit(rng.random((10, 3)), X_val=rng.random((3, 4)))


@pytest.mark.parametrize(
    "X, error, message",
    [
        ([[1.0, 2.0], [3.0]], ValueError, "X must be a rectangular array, got ragged input"),
        (np.ones((4, 3), np.complex64), ValueError, "X must hold real numbers, got dtype complex64"),
        (np.zeros((5, 0)), ValueError, r"X has 0 feature\(s\) \(shape=\(5, 0\)\) while a minimum of 1"),
        (np.zeros((5, 1, 0, 3)), ValueError, r"X has a zero-sized sample dimension: shape \(5, 1, 0, 3\)"),
        (np.array([[1.0, 2.0], [3.0, 4.0]], dtype=object), None, None),  # numbers held as objects
        (np.array([[1.0, {}], [3.0, 4.0]], dtype=object), TypeError, "X must hold numbers, got dtype object"),
        ([[1, 2], [3, 4]], None, None),  # nested lists of numbers are fine
    ],
)
def test_ragged_complex_and_zero_width_input(X, error, message) -> None:
    if error is None:
        assert MemAEDetector(**FAST).fit(X).decision_scores_.shape == (2,)
        return
    with pytest.raises(error, match=message):
        MemAEDetector(**FAST).fit(X)
