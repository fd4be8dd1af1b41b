import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from memae.metrics import precision_recall_f1, roc_auc


def test_metrics_equal_scikit_learns(rng: np.random.Generator) -> None:
    labels = rng.integers(0, 2, 200)
    scores = rng.normal(size=200) + labels
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    predictions = (scores > 0.5).astype(int)
    p, r, f = precision_recall_f1(labels, predictions)
    assert (p, r, f) == pytest.approx(
        (
            precision_score(labels, predictions),
            recall_score(labels, predictions),
            f1_score(labels, predictions),
        )
    )


def test_auc_with_one_class_raises_clearly() -> None:
    with pytest.raises(ValueError, match="needs both normal"):
        roc_auc(np.zeros(5), np.arange(5.0))


def test_bad_labels_and_lengths_raise() -> None:
    with pytest.raises(ValueError, match="labels must be 0"):
        roc_auc(np.array([0, 1, 2]), np.arange(3.0))
    with pytest.raises(ValueError, match="as many labels as scores"):
        roc_auc(np.array([0, 1]), np.arange(3.0))
