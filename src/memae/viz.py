"""Figures: image grids of samples, reconstructions and decoded memory slots."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_image(sample: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) or (H, W, 3), scaled to [0, 1] for display."""
    image = np.moveaxis(sample, 0, -1) if sample.shape[0] == 3 else sample[0]
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def image_grid(
    rows: Sequence[np.ndarray],
    row_titles: Sequence[str],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """Save a grid with one row per array of (K, C, H, W) images."""
    plt = _pyplot()
    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(1.2 * n_cols + 1, 1.3 * len(rows) + 0.4), squeeze=False
    )
    for r, (images, name) in enumerate(zip(rows, row_titles, strict=True)):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(_as_image(np.asarray(images[c])), cmap="gray", vmin=0, vmax=1)
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def score_histogram(
    scores: np.ndarray, labels: np.ndarray, path: str | os.PathLike[str], title: str = ""
) -> Path:
    """Histogram of the scores of normal (0) and anomalous (1) samples."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = np.histogram_bin_edges(scores, bins=40)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal", density=True)
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="anomalous", density=True)
    ax.set_xlabel("anomaly score (reconstruction error)")
    ax.set_ylabel("density")
    ax.legend()
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
