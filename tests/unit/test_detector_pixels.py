"""Integer pixels: scaled by their type at fit and at scoring, the scale kept in the checkpoint."""

import warnings

import numpy as np
import pytest
import torch

from memae import MemAEDetector


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = np.zeros((40, 1, 12, 12), np.float64)
    base[:, :, 3:9, 3:9] = rng.uniform(0.6, 1.0, (40, 1, 1, 1))
    return np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)


@pytest.fixture(scope="module")
def fitted(pixels: np.ndarray) -> MemAEDetector:
    return MemAEDetector(epochs=2, batch_size=16, random_state=0).fit((pixels * 255).round().astype(np.uint8))


def test_uint8_training_is_the_same_as_training_on_floats_in_unit_range(pixels) -> None:
    as_uint8 = (pixels * 255).round().astype(np.uint8)
    by_type = MemAEDetector(epochs=2, batch_size=16, random_state=0).fit(as_uint8)
    by_hand = MemAEDetector(epochs=2, batch_size=16, random_state=0).fit(as_uint8 / 255.0)
    assert by_type.preprocessing_ == "pixels" and by_type.pixel_dtype_ == "uint8"
    assert by_hand.preprocessing_ == "none" and by_hand.pixel_dtype_ is None
    np.testing.assert_allclose(by_type.decision_scores_, by_hand.decision_scores_, rtol=1e-4)
    assert by_type.input_range_ == pytest.approx((float(as_uint8.min()) / 255, float(as_uint8.max()) / 255))


def test_uint8_uint16_float_and_tensor_inputs_score_alike(fitted, pixels) -> None:
    as_uint8 = (pixels * 255).round().astype(np.uint8)
    reference = fitted.decision_function(as_uint8)
    np.testing.assert_allclose(
        fitted.decision_function(as_uint8.astype(np.uint16) * 257), reference, rtol=1e-5
    )
    np.testing.assert_allclose(fitted.decision_function(as_uint8.astype(np.float32)), reference, rtol=1e-6)
    np.testing.assert_allclose(fitted.decision_function(torch.from_numpy(as_uint8)), reference, rtol=1e-6)


def test_the_scale_survives_save_and_load(fitted, pixels, tmp_path) -> None:
    as_uint8 = (pixels * 255).round().astype(np.uint8)
    path = fitted.save(tmp_path / "m.memae")
    loaded = MemAEDetector.load(path)
    assert loaded.pixel_dtype_ == "uint8" and loaded.input_range_ == pytest.approx(fitted.input_range_)
    np.testing.assert_array_equal(loaded.decision_function(as_uint8), fitted.decision_function(as_uint8))


def test_floats_far_outside_the_training_range_warn(fitted, pixels) -> None:
    with pytest.warns(UserWarning, match=r"far outside the training range \[0, 1\]"):
        fitted.decision_function((pixels * 255 * 255).astype(np.float32))
    with pytest.warns(
        UserWarning, match=r"float images spanning \[0, 1\] given to a detector trained on uint8"
    ):
        fitted.decision_function(pixels.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.decision_function((pixels * 255).round().astype(np.uint8))


def test_a_model_fitted_on_floats_scales_integer_pixels_and_warns_on_raw_ones(pixels) -> None:
    detector = MemAEDetector(epochs=1, batch_size=16, random_state=0).fit(pixels.astype(np.float32))
    as_uint8 = (pixels * 255).round().astype(np.uint8)
    np.testing.assert_allclose(
        detector.decision_function(as_uint8), detector.decision_function(as_uint8 / 255.0), rtol=1e-5
    )
    with pytest.warns(UserWarning, match="far outside the training range"):
        detector.decision_function(as_uint8.astype(np.float32))


def test_a_channel_mismatch_names_expected_and_actual(fitted) -> None:
    with pytest.raises(
        ValueError, match=r"trained on 1-channel images .*got 3-channel images of shape \(2, 3, 12, 12\)"
    ):
        fitted.decision_function(np.zeros((2, 3, 12, 12), np.uint8))


def test_anomaly_maps_average_to_the_mse_score(fitted, pixels) -> None:
    as_uint8 = (pixels * 255).round().astype(np.uint8)
    maps = fitted.anomaly_maps(as_uint8)
    assert maps.shape == (40, 1, 12, 12) and (maps >= 0).all()
    np.testing.assert_allclose(maps.mean(axis=(1, 2, 3)), fitted.decision_function(as_uint8), rtol=1e-4)
    with pytest.raises(ValueError, match=r"expected X of shape \(N, 1, 12, 12\), got \(2, 144\)"):
        fitted.anomaly_maps(np.zeros((2, 144), np.float32))
    clips = MemAEDetector(epochs=1, batch_size=4, random_state=0).fit(np.zeros((8, 1, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"anomaly maps are made for \(N, C, H, W\) images"):
        clips.anomaly_maps(np.zeros((2, 1, 4, 8, 8), np.float32))


def test_the_exported_graph_takes_pixel_values_and_divides_inside(fitted, pixels, tmp_path) -> None:
    import json

    from memae.export import export_detector

    as_uint8 = (pixels * 255).round().astype(np.uint8)
    result = export_detector(fitted, tmp_path / "m.pt", format="torchscript", check_data=as_uint8)
    graph = torch.jit.load(str(result.model_path))
    with torch.inference_mode():
        exported = graph(torch.from_numpy(as_uint8.astype(np.float32))).numpy()
    np.testing.assert_allclose(exported, fitted.decision_function(as_uint8), rtol=1e-4)
    units = json.loads(result.metadata_path.read_text())["input"]["units"]
    assert units.startswith("uint8 pixel values as float32 (0..255)")
