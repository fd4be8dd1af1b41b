"""Decision thresholds learnt from normal data, and a calibrated 0–1 anomaly score.

Anomaly scores follow one convention: higher = more anomalous. The modes of
:class:`memae.MemAEDetector`'s ``threshold`` parameter:

* ``"percentile"`` — the ``threshold_percentile``-th percentile of the scores of held-out
  normal data (the validation set), or of the training scores when there is none; with
  only normal data, ``100 - percentile`` % of new normal samples are expected to be flagged.
* ``"contamination"`` — PyOD's rule: the ``(1 - contamination)`` quantile of the training
  scores, so that share of the training data is flagged.
* ``"fixed"`` — ``threshold_value`` as given.
* ``"test-percentile"`` — the protocol of the KDDCUP99 table (SPEC §6): flag the samples
  above the ``threshold_percentile``-th percentile of the scores *being predicted*; the
  threshold then depends on the batch (:func:`test_percentile_labels`).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np

ThresholdMode = Literal["percentile", "contamination", "fixed", "test-percentile"]
THRESHOLD_MODES: tuple[str, ...] = ("percentile", "contamination", "fixed", "test-percentile")


class Threshold(NamedTuple):
    """A learnt threshold and the scores it came from (``"validation"``, ``"training"`` or
    ``"given"`` for a fixed value)."""

    value: float
    source: str


def check_threshold_params(mode: str, percentile: float, contamination: float, value: float | None) -> None:
    """Raise ``ValueError`` naming the first bad threshold setting."""
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"threshold must be one of {THRESHOLD_MODES}, got {mode!r}")
    if not 0.0 < contamination <= 0.5:
        raise ValueError(f"contamination must lie in (0, 0.5], got {contamination}")
    if not isinstance(percentile, int | float) or not 0.0 < percentile < 100.0:
        raise ValueError(f"threshold_percentile must lie in (0, 100), got {percentile!r}")
    if mode == "fixed" and (not isinstance(value, int | float) or not math.isfinite(value)):
        raise ValueError(f"threshold='fixed' needs a finite threshold_value, got {value!r}")


def _scores(scores: np.ndarray, name: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError(f"{name} are empty: a threshold needs at least one score")
    if not np.isfinite(scores).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return scores


def percentile_threshold(scores: np.ndarray, percentile: float) -> float:
    """The ``percentile``-th percentile (0–100, linear interpolation) of ``scores``."""
    return float(np.percentile(_scores(scores, "scores"), percentile))


def learn_threshold(
    mode: str,
    *,
    train_scores: np.ndarray,
    val_scores: np.ndarray | None = None,
    percentile: float = 95.0,
    contamination: float = 0.1,
    value: float | None = None,
) -> Threshold:
    """The threshold of ``mode`` from the training and (optional) validation scores.

    For ``"test-percentile"`` this is the threshold the rule gives on the training scores,
    the best single number to show; predictions use the scores being predicted.
    """
    check_threshold_params(mode, percentile, contamination, value)
    if mode == "fixed":
        return Threshold(float(value), "given")  # type: ignore[arg-type]
    if mode == "contamination":
        return Threshold(percentile_threshold(train_scores, 100.0 * (1.0 - contamination)), "training")
    if mode == "percentile" and val_scores is not None and len(val_scores) > 0:
        return Threshold(percentile_threshold(val_scores, percentile), "validation")
    return Threshold(percentile_threshold(train_scores, percentile), "training")


def test_percentile_labels(scores: np.ndarray, percentile: float = 80.0) -> np.ndarray:
    """0/1 labels flagging the scores above their own ``percentile``-th percentile.

    The KDDCUP99 protocol (SPEC §6) with ``percentile=80``: the top 20 % of the test
    scores are called anomalous.
    """
    scores = _scores(scores, "scores")
    return (scores > np.percentile(scores, percentile)).astype(int)


test_percentile_labels.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def ecdf_score(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Calibrated anomaly score in [0, 1]: the share of ``reference`` scores (normal data)
    at or below each score — the empirical CDF of the normal scores.

    0.95 means the sample scores higher than 95 % of the normal reference samples.
    """
    reference = np.sort(_scores(reference, "reference scores"))
    scores = np.asarray(scores, dtype=np.float64)
    return np.searchsorted(reference, scores, side="right") / reference.size
