"""The evaluation protocols of SPEC §6 as functions with every choice a named option."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class OneClassSplit(NamedTuple):
    """One one-class task: normal training/validation data and a labelled test set (1 = anomaly)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray


def one_class_split(
    X: np.ndarray,
    y: np.ndarray,
    normal_class: int,
    *,
    seed: int,
    train_fraction: float = 2 / 3,
    anomaly_fraction: float = 0.3,
    val_fraction: float = 0.1,
) -> OneClassSplit:
    """The image protocol of Table 1 (SPEC §6).

    The samples of ``normal_class`` are split ``train_fraction : 1 - train_fraction``
    (2:1) into train and test; samples of the other classes, drawn at random, make
    ``anomaly_fraction`` of the test set; ``val_fraction`` of the training part is held out
    for validation. Everything is drawn from one generator seeded by ``seed``.
    """
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"expected as many labels as samples, got {len(y)} and {len(X)}")
    for name, value in (("train_fraction", train_fraction), ("anomaly_fraction", anomaly_fraction)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    normal = np.flatnonzero(y == normal_class)
    others = np.flatnonzero(y != normal_class)
    if len(normal) < 3 or len(others) == 0:
        raise ValueError(
            f"class {normal_class!r} needs at least 3 samples and other classes must exist; "
            f"got {len(normal)} normal and {len(others)} other samples"
        )
    normal = rng.permutation(normal)
    n_train = round(train_fraction * len(normal))
    train_idx, test_normal = normal[:n_train], normal[n_train:]
    n_anomalies = round(len(test_normal) * anomaly_fraction / (1 - anomaly_fraction))
    if n_anomalies > len(others):
        raise ValueError(
            f"need {n_anomalies} anomalies but only {len(others)} samples of other classes exist"
        )
    test_anomalous = rng.choice(others, size=n_anomalies, replace=False)
    n_val = round(val_fraction * len(train_idx))
    val_idx, train_idx = train_idx[:n_val], train_idx[n_val:]
    test_idx = np.concatenate([test_normal, test_anomalous])
    labels = np.concatenate([np.zeros(len(test_normal), int), np.ones(n_anomalies, int)])
    return OneClassSplit(X[train_idx], X[val_idx], X[test_idx], labels)
