import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from memae import MemAEDetector
from memae.checkpoint import CheckpointError

FAST = {"epochs": 2, "batch_size": 32, "random_state": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def tabular() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(120, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(tabular: np.ndarray) -> MemAEDetector:
    return MemAEDetector(**FAST).fit(tabular)


def test_fit_returns_self_and_sets_pyod_attributes(tabular: np.ndarray) -> None:
    det = MemAEDetector(threshold="contamination", **FAST)
    assert det.fit(tabular) is det
    assert det.decision_scores_.shape == (120,)
    assert det.labels_.shape == (120,) and set(np.unique(det.labels_)) <= {0, 1}
    assert det.n_features_in_ == 6
    # in contamination mode the threshold leaves `contamination` of the training scores above it
    assert det.labels_.mean() == pytest.approx(0.1, abs=0.02)
    np.testing.assert_array_equal(det.predict(tabular), det.labels_)


def test_decision_function_matches_training_scores(fitted: MemAEDetector, tabular: np.ndarray) -> None:
    np.testing.assert_allclose(fitted.decision_function(tabular), fitted.decision_scores_, rtol=1e-6)
    np.testing.assert_allclose(fitted.score_samples(tabular), -fitted.decision_scores_, rtol=1e-6)


def test_predict_proba_is_a_distribution(fitted: MemAEDetector, tabular: np.ndarray) -> None:
    proba = fitted.predict_proba(tabular)
    assert proba.shape == (120, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba >= 0).all() and (proba <= 1).all()


def test_anomalies_score_higher_than_normal_data() -> None:
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 8))
    normal = (rng.normal(size=(400, 2)) @ basis).astype(np.float32)
    anomalies = rng.normal(scale=2.0, size=(40, 8)).astype(np.float32)
    det = MemAEDetector(epochs=30, random_state=0, device="cpu").fit(normal)
    assert det.decision_function(anomalies).mean() > 3 * det.decision_function(normal).mean()


def test_get_set_params_and_clone(fitted: MemAEDetector) -> None:
    params = fitted.get_params()
    assert params["epochs"] == 2 and params["variant"] == "memae"
    copy = clone(fitted)
    assert copy.get_params() == params
    assert not hasattr(copy, "model_")
    assert copy.set_params(memory_size=7) is copy and copy.memory_size == 7


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        MemAEDetector("memae")  # type: ignore[misc]


def test_same_seed_gives_same_scores(tabular: np.ndarray) -> None:
    a = MemAEDetector(**FAST).fit(tabular).decision_function(tabular)
    b = MemAEDetector(**FAST).fit(tabular).decision_function(tabular)
    c = MemAEDetector(**{**FAST, "random_state": 1}).fit(tabular).decision_function(tabular)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_fit_leaves_global_rng_alone(tabular: np.ndarray) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MemAEDetector(**FAST).fit(tabular)
    torch.testing.assert_close(torch.rand(3), expected)


def test_score_of_a_sample_is_independent_of_its_batch(fitted: MemAEDetector, tabular: np.ndarray) -> None:
    alone = np.array([fitted.decision_function(tabular[i : i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(alone, fitted.decision_function(tabular)[:5], rtol=1e-5)


def test_torch_tensors_and_numpy_arrays_score_alike(fitted: MemAEDetector, tabular: np.ndarray) -> None:
    np.testing.assert_allclose(
        fitted.decision_function(torch.from_numpy(tabular)), fitted.decision_function(tabular), rtol=1e-6
    )


def test_save_load_gives_identical_scores(fitted: MemAEDetector, tabular: np.ndarray, tmp_path) -> None:
    path = fitted.save(tmp_path / "model.memae")
    loaded = MemAEDetector.load(path)
    np.testing.assert_array_equal(loaded.decision_function(tabular), fitted.decision_function(tabular))
    assert loaded.threshold_ == fitted.threshold_
    np.testing.assert_array_equal(loaded.labels_, fitted.labels_)
    assert loaded.get_params() == fitted.get_params()


def test_images_reconstruct_and_expose_addressing_weights() -> None:
    images = np.random.default_rng(0).random((40, 1, 28, 28), dtype=np.float32)
    det = MemAEDetector(**FAST).fit(images)
    assert det.model_config_.backbone == "conv"  # "auto": the generic net; the paper's nets by name
    assert det.reconstruct(images[:3]).shape == (3, 1, 28, 28)
    weights = det.addressing_weights(images[:3])
    assert weights.shape == (3, 100)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


def test_paper_text_net_with_authors_init_survives_save_and_load(tmp_path) -> None:
    images = np.random.default_rng(0).random((40, 1, 28, 28), dtype=np.float32)
    det = MemAEDetector(backbone="mnist-paper-text", weight_init="authors", **FAST).fit(images)
    assert det.model_config_.weight_init == "authors" and det.model_config_.backbone == "mnist-paper-text"
    loaded = MemAEDetector.load(det.save(tmp_path / "m.memae"))
    assert loaded.model_config_ == det.model_config_
    np.testing.assert_allclose(loaded.decision_function(images), det.decision_function(images), rtol=1e-6)


def test_channels_last_training_gives_the_same_detector() -> None:
    images = np.random.default_rng(0).random((40, 1, 28, 28), dtype=np.float32)
    plain = MemAEDetector(**FAST, channels_last=False).fit(images)
    fast = MemAEDetector(**FAST).fit(images)  # "auto": channels-last for a conv net on the CPU
    assert fast.train_config_.channels_last == "auto"
    # the layout hooks are gone after fit and the parameters are named as before
    assert not any(m._forward_pre_hooks for m in fast.model_.modules())
    assert list(fast.model_.state_dict()) == list(plain.model_.state_dict())
    assert all(p.is_contiguous() for p in fast.model_.parameters())
    # the same gradients within float rounding (tests/unit/test_fast.py); Adam turns the
    # rounding noise of the conv biases before batch norm into small steps, so two epochs
    # end near, not at, the same model
    np.testing.assert_allclose(fast.decision_function(images), plain.decision_function(images), rtol=0.02)
    with pytest.raises(TypeError, match="channels_last must be True, False or 'auto', got 'yes'"):
        MemAEDetector(**FAST, channels_last="yes").fit(images)
    with pytest.raises(TypeError, match="compile must be True or False, got 'yes'"):
        MemAEDetector(**FAST, compile="yes").fit(images)


def test_clips_use_per_location_addressing() -> None:
    clips = np.random.default_rng(0).random((6, 1, 8, 32, 32), dtype=np.float32)
    det = MemAEDetector(backbone="video-small", memory_size=20, **FAST).fit(clips)
    assert det.addressing_weights(clips[:2]).shape == (2, 20, 1, 2, 2)


def test_ae_has_no_addressing_weights(tabular: np.ndarray) -> None:
    det = MemAEDetector(variant="ae", **FAST).fit(tabular)
    with pytest.raises(ValueError, match="has no memory"):
        det.addressing_weights(tabular)


# --- bad input -------------------------------------------------------------------------


def test_scoring_before_fit_raises(tabular: np.ndarray) -> None:
    with pytest.raises(NotFittedError):
        MemAEDetector().decision_function(tabular)


@pytest.mark.parametrize(
    "X, error, message",
    [
        (np.full((10, 3), np.nan), ValueError, "column 'x0' has 10 missing value"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError, "column 'x1' has 1 infinite value"),
        (np.zeros((0, 4)), ValueError, "empty"),
        (np.zeros(10), ValueError, "got 1-D shape"),
        (np.zeros((3, 4, 5)), ValueError, "got 3-D shape"),
        (np.zeros((4, 4), dtype=complex), ValueError, "real numbers"),
    ],
)
def test_bad_training_input_raises_clearly(X: np.ndarray, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        MemAEDetector(**FAST).fit(X)


def test_wrong_feature_count_names_both_counts(fitted: MemAEDetector) -> None:
    with pytest.raises(ValueError, match="has 5 features, but MemAEDetector is expecting 6"):
        fitted.decision_function(np.zeros((2, 5)))


def test_wrong_image_shape_names_expected_and_actual() -> None:
    images = np.random.default_rng(0).random((20, 1, 28, 28), dtype=np.float32)
    det = MemAEDetector(**FAST).fit(images)
    with pytest.raises(ValueError, match=r"expected X of shape \(N, 1, 28, 28\), got \(2, 3, 32, 32\)"):
        det.decision_function(np.zeros((2, 3, 32, 32)))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"contamination": 0.7}, "contamination"),
        ({"variant": "vae"}, "unknown variant"),
        ({"similarity": "l2"}, "similarity"),
        ({"preprocessing": "zscore"}, "preprocessing"),
        ({"epochs": 0}, "epochs"),
        ({"backbone": "resnet"}, "unknown backbone"),
    ],
)
def test_bad_parameters_raise_at_fit(tabular: np.ndarray, params: dict, message: str) -> None:
    det = MemAEDetector(**{**FAST, **params})  # construction only stores
    with pytest.raises(ValueError, match=message):
        det.fit(tabular)


def test_loading_garbage_raises_checkpoint_error(tmp_path) -> None:
    path = tmp_path / "bad.memae"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable memae checkpoint"):
        MemAEDetector.load(path)


def test_stalled_watches_the_last_epochs_against_the_best_before() -> None:
    from memae.training import stalled

    assert not stalled([3.0, 2.0, 1.0], None)
    assert not stalled([3.0, 2.0], 2)  # too few epochs to tell
    assert not stalled([3.0, 2.0, 2.5, 1.9], 2)  # improved within the last two
    assert stalled([3.0, 2.0, 2.5, 2.1], 2)
    assert stalled([1.0, 1.0, 1.0], 2)  # no improvement at all


def test_early_stopping_ends_training_when_the_validation_loss_stalls(tabular: np.ndarray) -> None:
    from memae.training import stalled

    det = MemAEDetector(epochs=300, batch_size=32, random_state=0, device="cpu", early_stopping=3)
    det.fit(tabular)
    ran = len(det.history_.val_loss)
    assert ran < 300 and len(det.history_.train_loss) == ran
    assert stalled(det.history_.val_loss, 3) and not stalled(det.history_.val_loss[:-1], 3)
    # the same run without early stopping, cut at that many epochs, gives the same model
    cut = MemAEDetector(epochs=ran, batch_size=32, random_state=0, device="cpu").fit(tabular)
    np.testing.assert_allclose(det.decision_function(tabular), cut.decision_function(tabular), rtol=1e-5)


def test_early_stopping_needs_held_out_data(tabular: np.ndarray) -> None:
    det = MemAEDetector(validation_fraction=0.0, early_stopping=3, **FAST)
    with pytest.raises(ValueError, match="early_stopping=3 watches the loss on held-out normal data"):
        det.fit(tabular)
    with pytest.raises(ValueError, match="early_stopping must be None or >= 1"):
        MemAEDetector(early_stopping=0, **FAST).fit(tabular)
