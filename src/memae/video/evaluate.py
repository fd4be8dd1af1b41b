"""Frame-level evaluation of a video model over a set of test videos."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from memae.nn.model import MemAE
from memae.video.clips import FrameStore
from memae.video.config import ScoringConfig
from memae.video.scoring import frame_errors, normality, pooled_auc


@dataclass(frozen=True, eq=False)
class VideoScores:
    """The scores of one video's scored frames.

    ``frames``: indices of the scored frames; ``errors``: their clip errors ``e_u``;
    ``normality``: ``p_u`` (1 = normal); ``labels``: their ground truth (1 = anomalous) or None.
    """

    name: str
    n_frames: int
    frames: np.ndarray
    errors: np.ndarray
    normality: np.ndarray
    labels: np.ndarray | None

    @property
    def anomaly(self) -> np.ndarray:
        """``1 − p_u``: higher = more anomalous."""
        return 1.0 - self.normality


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Every test video's scores, and the options that produced them."""

    videos: tuple[VideoScores, ...]
    scoring: ScoringConfig

    @property
    def n_frames(self) -> int:
        return sum(v.n_frames for v in self.videos)

    @property
    def n_scored(self) -> int:
        return sum(len(v.frames) for v in self.videos)

    def auc(self) -> float:
        """Pooled frame-level AUC of ``1 − p_u``, anomalous frames positive."""
        missing = [v.name for v in self.videos if v.labels is None]
        if missing:
            raise ValueError(f"videos {missing} have no labels, so no AUC")
        return pooled_auc([v.anomaly for v in self.videos], [v.labels for v in self.videos])  # type: ignore[misc]

    def raw_auc(self) -> float:
        """Pooled AUC of the raw errors ``e_u`` (no per-video normalisation), for comparison."""
        return pooled_auc([v.errors for v in self.videos], [v.labels for v in self.videos])  # type: ignore[misc]


def evaluate(
    model: MemAE,
    store: FrameStore,
    clip_len: int,
    scoring: ScoringConfig,
    device: torch.device | str = "cpu",
) -> Evaluation:
    """Score every video of ``store`` with ``model`` as ``scoring`` says."""
    videos = []
    for name, frames, labels in zip(store.names, store.frames, store.labels, strict=True):
        index, errors = frame_errors(
            model,
            frames,
            clip_len,
            scoring.alignment,
            scoring.reduction,
            scoring.batch_size,
            device,
            scoring.patch_size,
        )
        videos.append(
            VideoScores(
                name=name,
                n_frames=len(frames),
                frames=index,
                errors=errors,
                normality=normality(errors),
                labels=None if labels is None else np.asarray(labels)[index],
            )
        )
    return Evaluation(tuple(videos), scoring)


__all__ = ["Evaluation", "VideoScores", "evaluate"]
