"""Tiny datasets written in the official on-disk formats of the video benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

H, W = 16, 24


def frames_of(n: int, seed: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """``n`` smooth grey frames (uint8, (n, H, W)), brighter from frame to frame."""
    y, x = np.mgrid[: size[0], : size[1]]
    base = (40 + 7 * seed % 50 + 3 * x + 2 * y)[None]
    drift = np.arange(n)[:, None, None] * 3
    return np.clip(base + drift, 0, 255).astype(np.uint8)


def write_images(folder: Path, frames: np.ndarray, names: list[str], mode: str = "L") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for frame, name in zip(frames, names, strict=True):
        image = Image.fromarray(frame)
        if mode != "L":
            image = image.convert(mode)
        path = folder / name
        image.save(path)
        paths.append(path)
    return paths


def write_avi(path: Path, frames: np.ndarray, codec: str = "mpeg4") -> Path:
    """A real .avi written with PyAV (grayscale frames stored as yuv420p)."""
    av = pytest.importorskip("av")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg4":
            stream.options = {"qscale": "1"}
        for frame in frames:
            rgb = np.repeat(frame[:, :, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def masks_for(labels: np.ndarray, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """0/255 masks with a blob on the anomalous frames."""
    masks = np.zeros((len(labels), *size), dtype=np.uint8)
    masks[labels.astype(bool), 2:6, 3:9] = 255
    return masks


#: Two test videos; their anomalous frames as 1-based inclusive intervals.
TEST_LENGTHS = (20, 18)
TEST_INTERVALS = ([(5, 12)], [(1, 3), (10, 18)])
TRAIN_LENGTHS = (18, 20)


def interval_labels(n: int, intervals: list[tuple[int, int]]) -> np.ndarray:
    labels = np.zeros(n, dtype=np.int64)
    for s, e in intervals:
        labels[s - 1 : e] = 1
    return labels


def _gt_m_text(intervals: tuple[list[tuple[int, int]], ...]) -> str:
    lines = ["TestVideoFile = {};"]
    for video in intervals:
        ranges = ", ".join(f"{s}:{e}" if s != e else f"{s}" for s, e in video)
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{ranges}];")
    return "\n".join(lines) + "\n"


@pytest.fixture
def ucsd_official(tmp_path: Path) -> Path:
    """``UCSDped2/{Train,Test}/...`` with .tif frames, ``UCSDped2.m`` and .bmp masks."""
    base = tmp_path / "UCSDped2"
    for i, n in enumerate(TRAIN_LENGTHS, 1):
        write_images(
            base / "Train" / f"Train{i:03d}", frames_of(n, i), [f"{k:03d}.tif" for k in range(1, n + 1)]
        )
    for i, (n, iv) in enumerate(zip(TEST_LENGTHS, TEST_INTERVALS, strict=True), 1):
        write_images(
            base / "Test" / f"Test{i:03d}", frames_of(n, 10 + i), [f"{k:03d}.tif" for k in range(1, n + 1)]
        )
        # Test002's masks are named frameNNN, as three of the official Ped2 folders are.
        names = [f"frame{k:03d}.bmp" if i == 2 else f"{k:03d}.bmp" for k in range(1, n + 1)]
        write_images(base / "Test" / f"Test{i:03d}_gt", masks_for(interval_labels(n, iv)), names)
    (base / "Test" / "UCSDped2.m").write_text(_gt_m_text(TEST_INTERVALS))
    (base / "Test" / "._Test001").mkdir()  # AppleDouble junk of the official tarball
    return tmp_path


@pytest.fixture
def ucsd_jpeg(tmp_path: Path) -> Path:
    """Liu et al.'s ``ped2/{training,testing}/frames/NN/000.jpg`` + ``ped2.mat``, with the
    official ``UCSDped2.m`` and .png masks beside it (as the shared data holds it)."""
    from scipy.io import savemat

    base = tmp_path / "ped2"
    for i, n in enumerate(TRAIN_LENGTHS, 1):
        write_images(
            base / "training" / "frames" / f"{i:02d}",
            frames_of(n, i),
            [f"{k:03d}.jpg" for k in range(n)],
            "RGB",
        )
    for i, n in enumerate(TEST_LENGTHS, 1):
        write_images(
            base / "testing" / "frames" / f"{i:02d}",
            frames_of(n, 10 + i),
            [f"{k:03d}.jpg" for k in range(n)],
            "RGB",
        )
    gt = np.empty((1, len(TEST_INTERVALS)), dtype=object)
    for i, video in enumerate(TEST_INTERVALS):
        gt[0, i] = np.array([[s for s, _ in video], [e for _, e in video]], dtype=np.float64)
    savemat(base / "ped2.mat", {"gt": gt})
    official = tmp_path / "UCSDped2" / "Test"
    official.mkdir(parents=True)
    (official / "UCSDped2.m").write_text(_gt_m_text(TEST_INTERVALS))
    for i, (n, iv) in enumerate(zip(TEST_LENGTHS, TEST_INTERVALS, strict=True), 1):
        write_images(
            official / f"Test{i:03d}_gt",
            masks_for(interval_labels(n, iv)),
            [f"{k:03d}.png" for k in range(1, n + 1)],
        )
    return tmp_path


@pytest.fixture
def avenue_root(tmp_path: Path) -> Path:
    """``training_videos/01.avi``, ``testing_videos/01.avi`` and ``testing_label_mask/1_label.mat``."""
    from scipy.io import savemat

    for i, n in enumerate(TRAIN_LENGTHS, 1):
        write_avi(tmp_path / "training_videos" / f"{i:02d}.avi", frames_of(n, i))
    for i, (n, iv) in enumerate(zip(TEST_LENGTHS, TEST_INTERVALS, strict=True), 1):
        write_avi(tmp_path / "testing_videos" / f"{i:02d}.avi", frames_of(n, 10 + i))
        masks = (masks_for(interval_labels(n, iv)) > 0).astype(np.uint8)
        cell = np.empty((1, n), dtype=object)
        for k in range(n):
            cell[0, k] = masks[k]
        (tmp_path / "testing_label_mask").mkdir(exist_ok=True)
        savemat(tmp_path / "testing_label_mask" / f"{i}_label.mat", {"volLabel": cell})
    return tmp_path


@pytest.fixture
def shanghaitech_root(tmp_path: Path) -> Path:
    """``training/videos/01_001.avi``, ``testing/frames/01_0014/000.jpg`` and the .npy masks."""
    for i, n in enumerate(TRAIN_LENGTHS, 1):
        write_avi(tmp_path / "training" / "videos" / f"01_{i:03d}.avi", frames_of(n, i))
    test = tmp_path / "testing"
    for i, (n, iv) in enumerate(zip(TEST_LENGTHS, TEST_INTERVALS, strict=True), 1):
        name = f"01_{i + 13:04d}"
        write_images(test / "frames" / name, frames_of(n, 10 + i), [f"{k:03d}.jpg" for k in range(n)])
        labels = interval_labels(n, iv)
        (test / "test_frame_mask").mkdir(parents=True, exist_ok=True)
        (test / "test_pixel_mask").mkdir(parents=True, exist_ok=True)
        np.save(test / "test_frame_mask" / f"{name}.npy", labels)
        np.save(test / "test_pixel_mask" / f"{name}.npy", (masks_for(labels) > 0).astype(np.uint8))
    return tmp_path
