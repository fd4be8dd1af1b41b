import gzip
import os
import pickle

import numpy as np
import pytest

from memae.data.cifar10 import load_cifar10, read_batch
from memae.data.kddcup import dagmm_split, flagged_by_label, load_kddcup, top_fraction_threshold
from memae.data.mnist import load_mnist, read_idx
from tests.fixtures import write_cifar10, write_idx, write_kddcup, write_mnist


def test_mnist_idx_round_trip(tmp_path) -> None:
    train_images, train_labels = write_mnist(tmp_path)
    X, y = load_mnist(tmp_path)
    assert X.shape == (160, 1, 28, 28) and X.dtype == np.float32
    np.testing.assert_allclose(X[: len(train_images), 0], train_images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y[: len(train_labels)], train_labels)
    assert X.min() >= 0.0 and X.max() <= 1.0


def test_idx_reader_rejects_truncated_and_foreign_files(tmp_path) -> None:
    path = tmp_path / "a.gz"
    write_idx(path, np.zeros((3, 4), np.uint8))
    data = gzip.decompress(path.read_bytes())
    (tmp_path / "cut").write_bytes(data[:-2])
    with pytest.raises(ValueError, match="expected 12 for dims"):
        read_idx(tmp_path / "cut")
    (tmp_path / "foreign").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="bad magic"):
        read_idx(tmp_path / "foreign")


def test_missing_dataset_names_the_setting(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="MEMAE_DATA"):
        load_mnist(tmp_path)


def test_data_dir_falls_back_to_environment(tmp_path, monkeypatch) -> None:
    write_mnist(tmp_path)
    monkeypatch.setenv("MEMAE_DATA", str(tmp_path))
    assert load_mnist()[0].shape[0] == 160


def test_cifar10_batches(tmp_path) -> None:
    write_cifar10(tmp_path)
    X, y = load_cifar10(tmp_path)
    assert X.shape == (120, 3, 32, 32) and X.max() <= 1.0
    np.testing.assert_array_equal(y[:10], np.arange(10))


class _Exploit:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("touch pwned-by-cifar",))


def test_cifar10_unpickler_refuses_code(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": []}, protocol=4))
    with pytest.raises(ValueError, match=r"refusing to load (posix|nt)\.system"):
        read_batch(path)
    assert not (tmp_path / "pwned-by-cifar").exists()


def test_kddcup_encoding_and_labels(tmp_path) -> None:
    labels = write_kddcup(tmp_path)
    data = load_kddcup(tmp_path)
    # duration, src_bytes, land (kept) + protocol (3 seen) + service (3) + flag (1)
    assert data.X.shape == (200, 3 + 3 + 3 + 1)
    np.testing.assert_array_equal(data.y, (labels == "normal.").astype(int))
    assert "service=http" in data.columns and "land" in data.columns
    assert load_kddcup(tmp_path, binary="one-hot").X.shape[1] == data.X.shape[1] + 1


def test_dagmm_split_trains_on_attacks_and_scales_on_the_training_half(tmp_path) -> None:
    write_kddcup(tmp_path)
    data = load_kddcup(tmp_path)
    split = dagmm_split(data, seed=0)
    assert len(split.test) == 100 and len(split.train_all) == 100
    anomalies_in_training_half = data.y.sum() - split.test_labels.sum()
    assert len(split.train) == 100 - anomalies_in_training_half
    assert split.train_all.min() >= 0.0 and split.train_all.max() <= 1.0
    assert split.train.shape[1] == data.X.shape[1]
    np.testing.assert_array_equal(split.test_labels, (split.test_names == "normal.").astype(int))


def test_flagged_by_label_counts_each_label() -> None:
    names = np.array(["normal.", "smurf.", "normal.", "neptune.", "smurf."])
    counts = flagged_by_label(names, np.array([True, True, False, False, False]))
    assert counts == {
        "neptune.": {"n": 1, "flagged": 0},
        "normal.": {"n": 2, "flagged": 1},
        "smurf.": {"n": 2, "flagged": 1},
    }
    with pytest.raises(ValueError, match="one flag per label"):
        flagged_by_label(names, np.array([True]))


def test_top_fraction_threshold_flags_the_requested_share(rng: np.random.Generator) -> None:
    scores = rng.normal(size=1000)
    threshold = top_fraction_threshold(scores, 0.2)
    assert (scores > threshold).mean() == pytest.approx(0.2, abs=0.002)
    train = rng.normal(loc=-5, size=1000)
    pooled = top_fraction_threshold(scores, 0.2, "train+test", train)
    assert pooled < threshold
    with pytest.raises(ValueError, match="needs the training scores"):
        top_fraction_threshold(scores, 0.2, "train+test")


def test_dagmm_split_scales_only_continuous_columns_and_logs_heavy_tails(tmp_path) -> None:
    import dataclasses

    write_kddcup(tmp_path)
    data = load_kddcup(tmp_path)
    assert [c for c, k in zip(data.columns, data.continuous, strict=True) if k] == ["duration", "src_bytes"]
    src = data.columns.index("src_bytes")
    heavy = data.X.copy()
    heavy[:, src] = np.round(np.random.default_rng(0).lognormal(3, 3, len(heavy)))
    data = dataclasses.replace(data, X=heavy)
    onehot = ~data.continuous

    split = dagmm_split(data, seed=0, scaling="standard")
    assert set(np.unique(split.train_all[:, onehot]).tolist()) <= {0.0, 1.0}
    logged = split.train_all[:, src]
    assert abs(logged.mean()) < 1e-5 and logged.std() == pytest.approx(1.0, rel=1e-4)

    plain = dagmm_split(data, seed=0, scaling="standard", log1p=False)
    assert np.abs(plain.train_all[:, src]).max() > 2 * np.abs(logged).max()  # the tail dominates without log
    every = dagmm_split(data, seed=0, scaling="standard", scale_columns="all", log1p=False)
    assert not set(np.unique(every.train_all[:, onehot]).tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="scale_columns must be 'all' or 'continuous'"):
        dagmm_split(data, seed=0, scale_columns="some")
