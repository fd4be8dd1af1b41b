from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from memae.video.figures import error_map_grid, intervals, memory_size_plot, normality_curves, overlay


def test_intervals_are_the_runs_of_anomalous_frames() -> None:
    assert intervals(np.array([0, 1, 1, 0, 0, 1])) == [(1, 3), (5, 6)]
    assert intervals(np.ones(4)) == [(0, 4)]
    assert intervals(np.zeros(3)) == []


def test_overlay_blends_the_error_in_proportion() -> None:
    frame = np.zeros((2, 2), np.float32)  # mid grey in [-1, 1]
    error = np.array([[0.0, 1.0], [0.5, 2.0]])
    rgb = overlay(frame, error, vmax=1.0)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 0], [128, 128, 128])  # no error: the frame unchanged
    np.testing.assert_array_equal(rgb[0, 1], rgb[1, 1])  # clipped at vmax


def test_figures_are_written(tmp_path: Path) -> None:
    memory_size_plot({100: [0.8, 0.82], 1000: [0.85]}, tmp_path / "f4.png")
    frames = np.arange(20)
    normality_curves(
        [("01", frames, np.linspace(1, 0, 20), (frames > 10).astype(int)), ("02", frames, np.ones(20), None)],
        tmp_path / "f5.png",
    )
    error_map_grid(
        np.zeros((2, 8, 8)), {"AE": np.ones((2, 8, 8)), "MemAE": np.zeros((2, 8, 8))}, tmp_path / "f6.png"
    )
    for name in ("f4.png", "f5.png", "f6.png"):
        with Image.open(tmp_path / name) as img:
            assert img.width > 200 and img.height > 100
