"""Evaluation metrics with checks that name what is wrong with the labels."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels).ravel(), np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"expected as many labels as scores, got {labels.shape[0]} and {scores.shape[0]}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"labels must be 0 (normal) and 1 (anomaly), got values {sorted(values)}")
    return labels.astype(int), scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve with anomalies (label 1) as the positive class."""
    labels, scores = _check(labels, scores)
    if len(np.unique(labels)) < 2:
        raise ValueError(
            f"the AUC needs both normal (0) and anomalous (1) samples, got only label {int(labels[0])}"
        )
    return float(roc_auc_score(labels, scores))


class PRF(NamedTuple):
    precision: float
    recall: float
    f1: float


def precision_recall_f1(labels: np.ndarray, predictions: np.ndarray) -> PRF:
    """Precision, recall and F1 of the anomaly class (label 1)."""
    labels, predictions = _check(labels, predictions)
    p, r, f, _ = precision_recall_fscore_support(
        labels, predictions.astype(int), average="binary", pos_label=1, zero_division=0
    )
    return PRF(float(p), float(r), float(f))
