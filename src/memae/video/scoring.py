"""Scoring video frames: frame–clip alignment, per-clip error, per-video normality, AUC.

Each choice the authors' evaluation buries in slicing is a named option here
(:class:`memae.video.config.ScoringConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from memae.fast import inference_model
from memae.metrics import roc_auc
from memae.nn.loss import reconstruction_error
from memae.nn.model import MemAE


class FrameAlignment(NamedTuple):
    """Which frames of a video are scored, and the first frame of the clip scoring each."""

    frames: np.ndarray
    starts: np.ndarray


def align_frames(n_frames: int, clip_len: int, alignment: str = "center") -> FrameAlignment:
    """The clip that scores each frame ``u`` of a video of ``n_frames`` frames.

    Both alignments use the clip ``[u − L/2, u + L/2)`` (frame ``u`` is its (L/2+1)-th frame).
    ``"center"`` shifts it inward at the ends so every frame is scored; ``"authors"`` scores
    only the frames whose clip fits, ``u ∈ [L/2, n − L/2]``: the authors' ``[8:-7]`` for L = 16.
    """
    if n_frames < clip_len:
        raise ValueError(f"a video of {n_frames} frames is shorter than one clip of {clip_len}")
    half = clip_len // 2
    if alignment == "center":
        frames = np.arange(n_frames, dtype=np.int64)
        starts = np.clip(frames - half, 0, n_frames - clip_len)
    elif alignment == "authors":
        frames = np.arange(half, n_frames - clip_len + half + 1, dtype=np.int64)
        starts = frames - half
    else:
        raise ValueError(f"alignment must be 'center' or 'authors', got {alignment!r}")
    return FrameAlignment(frames, starts)


def clip_error(
    x: torch.Tensor, output: torch.Tensor, reduction: str = "l2", patch_size: int = 8
) -> torch.Tensor:
    """Per-clip error of (B, C, T, H, W) clips -> (B,).

    ``"l2"``/``"mse"`` as :func:`memae.nn.loss.reconstruction_error`; ``"patch-max"``: the
    per-pixel ℓ2 error over channels, averaged over T and over ``patch_size``² windows
    (stride ``patch_size // 2``), then the largest window.
    """
    if reduction != "patch-max":
        return reconstruction_error(x, output, reduction)
    per_pixel = (output - x).pow(2).sum(dim=1).sqrt().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    k = min(patch_size, per_pixel.shape[-2], per_pixel.shape[-1])
    windows = F.avg_pool2d(per_pixel, kernel_size=k, stride=max(1, k // 2))
    return windows.flatten(1).amax(dim=1)


@torch.inference_mode()
def clip_errors(
    model: MemAE,
    frames: torch.Tensor,
    starts: Sequence[int] | np.ndarray,
    clip_len: int,
    reduction: str = "l2",
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    patch_size: int = 8,
) -> np.ndarray:
    """Reconstruction error of each clip ``frames[s : s + clip_len]`` (eval mode).

    ``frames``: (T, H, W) in [−1, 1]. ``reduction``: see :func:`clip_error`.
    """
    model.eval()
    # batch norm folded, channels-last convs (memae.fast): the same errors within rounding
    net = inference_model(model)
    device = torch.device(device)
    starts = np.asarray(starts, dtype=np.int64)
    out = []
    for i in range(0, len(starts), batch_size):
        batch = torch.stack([frames[s : s + clip_len] for s in starts[i : i + batch_size]]).unsqueeze(1)
        batch = batch.to(device)
        out.append(clip_error(batch, net(batch).output, reduction, patch_size).cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def frame_errors(
    model: MemAE,
    frames: torch.Tensor,
    clip_len: int,
    alignment: str = "center",
    reduction: str = "l2",
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    patch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """``(scored frame indices, e_u)`` of one video; each distinct clip is run once."""
    aligned = align_frames(len(frames), clip_len, alignment)
    unique, inverse = np.unique(aligned.starts, return_inverse=True)
    errors = clip_errors(model, frames, unique, clip_len, reduction, batch_size, device, patch_size)
    return aligned.frames, errors[inverse]


def normality(errors: np.ndarray) -> np.ndarray:
    """Per-video regularity ``p_u = 1 − (e_u − min e) / (max e − min e)`` (SPEC §6).

    1 = most normal frame of the video. A video whose errors are all equal gets p = 1.
    """
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        return errors
    low, high = errors.min(), errors.max()
    if high - low <= 0:
        return np.ones_like(errors)
    return 1.0 - (errors - low) / (high - low)


def pooled_auc(anomaly_scores: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> float:
    """Frame-level AUC over the frames of all videos pooled, anomalous frames positive."""
    if len(anomaly_scores) != len(labels):
        raise ValueError(f"expected one label array per video, got {len(labels)} for {len(anomaly_scores)}")
    return roc_auc(np.concatenate(list(labels)), np.concatenate(list(anomaly_scores)))


@torch.inference_mode()
def error_maps(
    model: MemAE,
    frames: torch.Tensor,
    frame_indices: Sequence[int],
    clip_len: int,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-level error maps (Fig. 6): for each frame ``u``, the per-pixel ℓ2 error over
    channels of frame ``u`` inside its centred clip, and the reconstruction of that frame.

    Returns ``(errors, reconstructions)``, both (K, H, W).
    """
    model.eval()
    device = torch.device(device)
    aligned = align_frames(len(frames), clip_len, "center")
    errors, recs = [], []
    for u in frame_indices:
        if not 0 <= u < len(frames):
            raise ValueError(f"frame {u} is outside a video of {len(frames)} frames")
        s = int(aligned.starts[u])
        clip = frames[s : s + clip_len][None, None].to(device)
        out = model(clip).output
        offset = u - s
        diff = (out - clip)[0, :, offset]
        errors.append(diff.pow(2).sum(dim=0).sqrt().cpu().numpy())
        recs.append(out[0, 0, offset].cpu().numpy())
    return np.stack(errors), np.stack(recs)


__all__ = [
    "FrameAlignment",
    "align_frames",
    "clip_error",
    "clip_errors",
    "error_maps",
    "frame_errors",
    "normality",
    "pooled_auc",
]
