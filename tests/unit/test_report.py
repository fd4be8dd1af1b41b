import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from memae import MemAEDetector
from memae.report import check_labels, write_report

FAST = {"epochs": 2, "batch_size": 16, "random_state": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def images() -> tuple[MemAEDetector, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    normal = rng.random((30, 1, 12, 12), dtype=np.float32) * 0.2
    X = np.concatenate([normal[:15], rng.random((10, 1, 12, 12), dtype=np.float32)])
    det = MemAEDetector(memory_size=10, **FAST).fit(normal[15:])
    return det, X, np.r_[np.zeros(15), np.ones(10)].astype(int)


def test_report_with_labels_has_metrics_figures_and_diagnostics(images, tmp_path) -> None:
    det, X, y = images
    page = write_report(det, X, tmp_path, labels=y).read_text()
    numbers = json.loads((tmp_path / "report.json").read_text())
    scores = det.decision_function(X)
    assert numbers["metrics"]["auc"] == pytest.approx(roc_auc_score(y, scores))
    assert numbers["flagged"] == int(det.predict(X).sum())
    assert numbers["memory"]["n_slots"] == 10
    for figure in ("scores.png", "roc.png", "training.png", "slots.png", "examples-most-anomalous.png"):
        assert f'src="{figure}"' in page
        assert (tmp_path / figure).read_bytes()[:4] == b"\x89PNG"
    assert "<h2>Metrics" in page and "<h2>Memory</h2>" in page


def test_report_without_labels_has_no_metrics(images, tmp_path) -> None:
    det, X, _ = images
    page = write_report(det, X, tmp_path).read_text()
    assert "<h2>Metrics" not in page and not (tmp_path / "roc.png").exists()
    assert "metrics" not in json.loads((tmp_path / "report.json").read_text())


def test_tabular_memoryless_report(tmp_path) -> None:
    X = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    det = MemAEDetector(variant="ae", **FAST).fit(X)
    page = write_report(det, X, tmp_path, examples=3).read_text()
    assert "none (a variant without memory)" in page and "<h2>Memory</h2>" not in page
    assert (tmp_path / "examples-most-normal.png").exists()


def test_clip_report_shows_the_middle_frame(tmp_path) -> None:
    clips = np.random.default_rng(0).random((4, 1, 8, 32, 32), dtype=np.float32)
    det = MemAEDetector(backbone="video-small", width=0.2, memory_size=20, **FAST).fit(clips)
    write_report(det, clips, tmp_path, labels=np.array([0, 0, 1, 1]), examples=2)
    assert (tmp_path / "examples-most-anomalous.png").exists() and (tmp_path / "slots.png").exists()


@pytest.mark.parametrize(
    "labels, error, message",
    [
        (np.zeros(24), ValueError, "expected 25 labels"),
        (np.zeros(25), ValueError, "hold only class 0; the AUC and the ROC curve need both"),
        (
            np.r_[np.zeros(20), 2 * np.ones(5)],
            ValueError,
            r"must be 0 \(normal\) and 1 \(anomaly\), got values",
        ),
        (np.array(["a"] * 25), TypeError, "must be 0 \\(normal\\) / 1 \\(anomaly\\) numbers"),
    ],
)
def test_bad_labels_are_named(images, tmp_path, labels, error, message) -> None:
    det, X, _ = images
    with pytest.raises(error, match=message):
        write_report(det, X, tmp_path, labels=labels)
    assert not (tmp_path / "index.html").exists()


def test_labels_read_from_a_csv_column_are_accepted() -> None:
    np.testing.assert_array_equal(check_labels(np.array([[0.0], [1.0]]), 2), [0, 1])
