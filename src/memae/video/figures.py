"""The paper's video figures: AUC against memory size (Fig. 4), normality-score curves with
the ground truth shaded (Fig. 5), and AE vs MemAE pixel-level error maps (Fig. 6)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from memae.viz import _pyplot


def _save(fig: object, path: str | os.PathLike[str]) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)  # type: ignore[attr-defined]
    plt.close(fig)
    return path


def intervals(labels: np.ndarray) -> list[tuple[int, int]]:
    """0-based half-open ``[start, end)`` runs of ones in a 0/1 array."""
    padded = np.concatenate([[0], np.asarray(labels, dtype=np.int64), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def memory_size_plot(
    points: Mapping[int, Sequence[float]], path: str | os.PathLike[str], title: str = ""
) -> Path:
    """Fig. 4: mean AUC (± std over seeds) against the memory size N, log-scaled N."""
    plt = _pyplot()
    sizes = sorted(points)
    means = [float(np.mean(points[n])) for n in sizes]
    stds = [float(np.std(points[n])) for n in sizes]
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3)
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(n) for n in sizes])
    ax.set_xlabel("memory size N")
    ax.set_ylabel("frame-level AUC")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def normality_curves(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]],
    path: str | os.PathLike[str],
    title: str = "",
    columns: int = 4,
) -> Path:
    """Fig. 5: one panel per video, ``(name, frame indices, p_u, labels)``; anomalous frames shaded."""
    plt = _pyplot()
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 1.9 * rows), squeeze=False)
    for ax in axes.ravel()[len(curves) :]:
        ax.axis("off")
    for ax, (name, frames, p, labels) in zip(axes.ravel(), curves, strict=False):
        if labels is not None:
            for a, b in intervals(labels):
                ax.axvspan(frames[a] - 0.5, frames[b - 1] + 0.5, color="tab:red", alpha=0.18, lw=0)
        ax.plot(frames, p, color="tab:blue", lw=1)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("normality p_u", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def error_map_grid(
    frames: np.ndarray,
    maps: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    captions: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """Fig. 6: a column per frame; the frame on top, then one row of error maps per model.

    ``frames``: (K, H, W) in [−1, 1]; ``maps``: model name -> (K, H, W) per-pixel errors,
    drawn on one colour scale for all models so they compare.
    """
    plt = _pyplot()
    k = len(frames)
    vmax = max(float(np.percentile(m, 99.5)) for m in maps.values()) or 1.0
    fig, axes = plt.subplots(1 + len(maps), k, figsize=(2.1 * k + 0.8, 1.7 * (1 + len(maps))), squeeze=False)
    for c in range(k):
        axes[0][c].imshow(frames[c], cmap="gray", vmin=-1, vmax=1)
        if captions is not None:
            axes[0][c].set_title(captions[c], fontsize=8)
        for r, m in enumerate(maps.values(), start=1):
            axes[r][c].imshow(m[c], cmap="jet", vmin=0, vmax=vmax)
    for r, name in enumerate(["frame", *maps]):
        axes[r][0].set_ylabel(name, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def overlay(frame: np.ndarray, error: np.ndarray, vmax: float) -> np.ndarray:
    """An RGB uint8 image: the grey frame ([−1, 1]) with the error map blended in as a heat map."""
    plt = _pyplot()
    grey = np.clip((frame + 1.0) / 2.0, 0, 1)
    heat = plt.get_cmap("jet")(np.clip(error / max(vmax, 1e-12), 0, 1))[..., :3]
    alpha = np.clip(error / max(vmax, 1e-12), 0, 1)[..., None] * 0.6
    rgb = grey[..., None] * (1 - alpha) + heat * alpha
    return (rgb * 255).round().astype(np.uint8)


def score_plot(
    frames: np.ndarray,
    anomaly: np.ndarray,
    path: str | os.PathLike[str],
    threshold: float | None = None,
    title: str = "",
    ylabel: str = "clip reconstruction error e_u",
) -> Path:
    """Per-frame score of one video, with an optional threshold line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.plot(frames, anomaly, lw=1)
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.3g}")
        ax.legend(fontsize=8)
    ax.set_xlabel("frame")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["error_map_grid", "intervals", "memory_size_plot", "normality_curves", "overlay", "score_plot"]
