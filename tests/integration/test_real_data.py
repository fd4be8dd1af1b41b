"""Checks on the real datasets; skipped when the data root does not hold them."""

import numpy as np
import pytest

from memae.data.paths import data_dir

pytestmark = pytest.mark.slow


def _need(*parts: str) -> None:
    if not data_dir().joinpath(*parts).exists():
        pytest.skip(f"{'/'.join(parts)} not under the data root ({data_dir()})")


def test_mnist_has_the_published_class_counts() -> None:
    _need("mnist", "train-images-idx3-ubyte.gz")
    from memae.data.mnist import load_mnist

    X, y = load_mnist()
    assert X.shape == (70000, 1, 28, 28)
    train = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    np.testing.assert_array_equal(np.bincount(y), np.add(train, test))


def test_kddcup_encodes_to_118_features_with_20_percent_anomalies() -> None:
    _need("kddcup99", "kddcup.data_10_percent.gz")
    from memae.data.kddcup import load_kddcup

    data = load_kddcup()
    assert data.X.shape == (494021, 118)
    assert int(data.y.sum()) == 97278
    assert np.isfinite(data.X).all()


def test_cifar10_from_the_compact_copy_matches_the_published_values() -> None:
    _need("cifar10", "train_labels.bin")
    from memae.data.cifar10 import has_compact, read_compact

    if not has_compact(data_dir() / "cifar10"):
        pytest.skip("no compact CIFAR-10 copy under the data root")
    X, y = read_compact(data_dir() / "cifar10")  # its SHA-256 digests checked first
    assert X.shape == (60000, 3, 32, 32) and X.dtype == np.uint8
    rows = X.reshape(60000, -1)
    assert rows[0, :3].tolist() == [59, 43, 50] and rows[0, -3:].tolist() == [140, 84, 72]
    assert rows[9999, :3].tolist() == [62, 61, 60] and rows[9999, -3:].tolist() == [130, 130, 131]
    assert rows[50000, :3].tolist() == [158, 159, 165] and rows[50001, :3].tolist() == [235, 231, 232]
    np.testing.assert_array_equal(
        np.bincount(y[:10000]), [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    )
