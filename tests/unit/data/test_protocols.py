import numpy as np
import pytest

from memae.data.protocols import one_class_split


def test_one_class_split_follows_the_image_protocol() -> None:
    y = np.repeat(np.arange(10), 300)
    X = np.arange(len(y))  # each sample is its own index
    split = one_class_split(X, y, normal_class=3, seed=0)
    normal = set(np.flatnonzero(y == 3))
    # 2:1 of the 300 normal samples, then 10 % of the training part for validation
    assert len(split.train) + len(split.val) == 200 and len(split.val) == 20
    test_normal = split.test[split.test_labels == 0]
    test_anomalous = split.test[split.test_labels == 1]
    assert len(test_normal) == 100
    assert len(test_anomalous) / len(split.test) == pytest.approx(0.3, abs=0.01)
    assert set(split.train) | set(split.val) | set(test_normal) == normal
    assert not set(test_anomalous) & normal
    assert len(set(split.test)) == len(split.test)
    assert not (set(split.train) & set(split.val))


def test_split_is_seeded() -> None:
    y = np.repeat(np.arange(3), 50)
    X = np.arange(len(y))
    a, b = one_class_split(X, y, 0, seed=4), one_class_split(X, y, 0, seed=4)
    c = one_class_split(X, y, 0, seed=5)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)


def test_too_few_samples_raise() -> None:
    with pytest.raises(ValueError, match="at least 3 samples"):
        one_class_split(np.arange(4), np.array([0, 0, 1, 1]), 0, seed=0)
