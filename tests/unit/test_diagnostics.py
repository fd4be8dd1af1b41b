import numpy as np
import pytest
import torch

from memae import MemAEDetector
from memae.diagnostics import decode_slots, inspect_memory, slots_figure, summarize_weights
from memae.nn.functional import addressing_entropy

FAST = {"epochs": 1, "batch_size": 16, "random_state": 0, "device": "cpu"}


# --- the statistics on weights built by hand ---------------------------------------------


def test_one_hot_addressing_on_one_slot_is_a_collapse() -> None:
    rows = np.zeros((50, 10))
    rows[:, 3] = 1.0
    report = summarize_weights([rows[:20], rows[20:]], 10)
    assert report.n_queries == 50 and report.dead_slots == 9
    assert report.mean_entropy == pytest.approx(0.0, abs=1e-9)
    assert report.effective_slots == pytest.approx(1.0)
    assert report.top1_share[3] == 1.0 and report.usage[3] == pytest.approx(1.0)
    assert any("collapsed: slot 3 takes 100.0 %" in w for w in report.warnings)
    assert any("9 of 10 are never weighted" in w for w in report.warnings)


def test_uniform_addressing_uses_every_slot_with_maximal_entropy() -> None:
    report = summarize_weights([np.full((30, 8), 1 / 8, dtype=np.float32)], 8)
    assert report.dead_slots == 0 and report.warnings == ()
    assert report.mean_entropy == pytest.approx(np.log(8), rel=1e-6)
    assert report.effective_slots == pytest.approx(8.0)
    np.testing.assert_allclose(report.used_share, 1.0)


def test_all_zero_rows_are_counted_as_empty_queries() -> None:
    rows = np.zeros((10, 4))
    rows[:7] = np.eye(4)[[0, 1, 2, 3, 0, 1, 2]]
    report = summarize_weights([rows], 4, shrink_threshold=0.3)
    assert report.empty_query_share == pytest.approx(0.3)
    np.testing.assert_allclose(report.usage.sum(), 0.7)
    assert report.top1_share.sum() == pytest.approx(0.7)
    assert any("30.0 % of queries have no weight above λ = 0.3" in w for w in report.warnings)


def test_rows_of_the_wrong_width_are_refused() -> None:
    with pytest.raises(ValueError, match=r"expected addressing rows of shape \(queries, 5\), got \(3, 4\)"):
        summarize_weights([np.zeros((3, 4))], 5)


# --- on fitted detectors ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tabular() -> tuple[MemAEDetector, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(60, 6)).astype(np.float32)
    return MemAEDetector(memory_size=12, **FAST).fit(X), X


def test_report_agrees_with_the_addressing_weights(tabular) -> None:
    det, X = tabular
    report = inspect_memory(det, X, batch_size=16)  # several batches
    weights = det.addressing_weights(X)
    assert (report.n_samples, report.n_queries, report.n_slots) == (60, 60, 12)
    np.testing.assert_allclose(report.usage, weights.mean(axis=0), rtol=1e-5)
    expected_entropy = float(addressing_entropy(torch.from_numpy(weights)))
    assert report.mean_entropy == pytest.approx(expected_entropy, rel=1e-5)
    assert report.shrink_threshold == pytest.approx(1 / 12)
    assert "12 slots" in report.summary() and report.to_dict()["n_slots"] == 12


def test_per_location_memory_counts_every_position() -> None:
    clips = np.random.default_rng(0).random((4, 1, 8, 32, 32), dtype=np.float32)
    det = MemAEDetector(backbone="video-small", width=0.2, memory_size=20, **FAST).fit(clips)
    report = inspect_memory(det, clips)
    assert report.n_samples == 4 and report.n_queries == 4 * 1 * 2 * 2  # encoding 1 x 2 x 2
    assert decode_slots(det, [0, 5]).shape == (2, 1, 8, 32, 32)


def test_cosine_addressing_with_a_large_lambda_is_flagged_empty() -> None:
    # cosine similarities lie in [-1, 1]: no softmax weight over 20 slots reaches 0.5 (SPEC §9)
    X = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    det = MemAEDetector(memory_size=20, shrink_threshold=0.5, **FAST).fit(X)
    report = inspect_memory(det, X)
    assert report.empty_query_share == 1.0
    assert np.isfinite(det.decision_function(X)).all()  # zero reads, never NaN
    assert any("have no weight above λ = 0.5" in w for w in report.warnings)


def test_memoryless_variant_has_nothing_to_inspect(tabular) -> None:
    _, X = tabular
    det = MemAEDetector(variant="ae", **FAST).fit(X)
    with pytest.raises(ValueError, match="'ae' has no memory to inspect"):
        inspect_memory(det, X)


def test_bad_data_for_inspection_names_the_shape(tabular) -> None:
    det, _ = tabular
    with pytest.raises(ValueError, match="has 5 features, but MemAEDetector is expecting 6"):
        inspect_memory(det, np.zeros((3, 5)))


def test_image_slots_decode_to_pictures(tmp_path) -> None:
    images = np.random.default_rng(0).random((20, 1, 12, 12), dtype=np.float32)
    det = MemAEDetector(memory_size=10, **FAST).fit(images)
    decoded = decode_slots(det)
    assert decoded.shape == (10, 1, 12, 12) and np.isfinite(decoded).all()
    # slot k decoded alone equals the decoder applied to memory row k
    with torch.no_grad():
        direct = det.model_.decoder(det.model_.memory.memory[3].view(1, *det.model_.latent_shape))
    np.testing.assert_allclose(
        decode_slots(det, [3])[0], direct[0].numpy() * det.scale_ + det.offset_, rtol=1e-5
    )
    path = slots_figure(det, inspect_memory(det, images), tmp_path / "slots.png", k=10)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="slot indices must lie in"):
        decode_slots(det, [10])


def test_tabular_models_have_no_slot_pictures(tabular, tmp_path) -> None:
    det, X = tabular
    with pytest.raises(ValueError, match="only for image or clip models"):
        slots_figure(det, inspect_memory(det, X), tmp_path / "slots.png")
