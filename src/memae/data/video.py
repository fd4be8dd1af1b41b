"""Video anomaly-detection datasets in their official on-disk layouts, read in Python.

Each loader returns a :class:`VideoSet`: the videos of one split, each a
:class:`VideoSource` that says where its frames are (image files in order, or one video
file), its frame-level labels (1 = anomalous) and its pixel masks where the dataset has
them. Nothing is decoded until :func:`decode_frames` / :func:`read_masks` is called.

Layouts read (``root`` is the folder that holds the dataset's top folder):

* UCSD Ped1/Ped2, official release: ``UCSDpedN/Train/Train001/001.tif``,
  ``UCSDpedN/Test/Test001/001.tif``, frame labels in ``UCSDpedN/Test/UCSDpedN.m``,
  pixel masks in ``UCSDpedN/Test/Test001_gt/*.bmp`` (or lossless ``.png`` copies).
* UCSD Ped1/Ped2, the JPEG frame release of Liu et al. (CVPR 2018):
  ``pedN/training/frames/01/000.jpg``, ``pedN/testing/frames/01/000.jpg``; labels from the
  official ``UCSDpedN/Test/UCSDpedN.m`` beside it, else from Liu et al.'s ``pedN/pedN.mat``;
  pixel masks from the official ``UCSDpedN/Test/TestNNN_gt`` folders beside it.
* CUHK Avenue: ``training_videos/01.avi``, ``testing_videos/01.avi`` and
  ``testing_label_mask/1_label.mat`` (``volLabel``: one mask per frame; also found under
  ``ground_truth_demo/``).
* ShanghaiTech Campus: ``training/videos/01_001.avi``, ``testing/frames/01_0014/000.jpg``,
  ``testing/test_frame_mask/01_0014.npy`` and ``testing/test_pixel_mask/01_0014.npy``.
* A user's own video file (anything FFmpeg reads) or folder of frame images.

Reading video files needs PyAV (``pip install 'memae[video]'``); image frames need only
Pillow, and ``.mat`` files SciPy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Split = Literal["train", "test"]
IMAGE_SUFFIXES = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".webm", ".m4v", ".wmv")


@dataclass(frozen=True, eq=False)
class VideoSource:
    """One video: its frames, and its ground truth where known.

    ``frames`` is a tuple of image files in frame order, or one video file.
    ``labels`` has one 0/1 entry per frame (1 = anomalous), or is ``None``.
    ``masks`` is a tuple of mask images (one per frame), a ``.mat`` file holding
    ``volLabel`` (Avenue) or an ``.npy`` array of shape (T, H, W) (ShanghaiTech), or ``None``.
    """

    name: str
    frames: tuple[Path, ...] | Path
    labels: np.ndarray | None = None
    masks: tuple[Path, ...] | Path | None = None

    @property
    def is_file(self) -> bool:
        return isinstance(self.frames, Path)


@dataclass(frozen=True, eq=False)
class VideoSet:
    """The videos of one split of a dataset, in the dataset's order."""

    dataset: str
    split: str
    videos: tuple[VideoSource, ...]

    def __len__(self) -> int:
        return len(self.videos)

    def labels(self) -> np.ndarray:
        """All frame labels concatenated in video order (raises if a video has none)."""
        missing = [v.name for v in self.videos if v.labels is None]
        if missing:
            raise ValueError(f"{self.dataset} {self.split}: videos {missing} have no frame labels")
        return np.concatenate([v.labels for v in self.videos])  # type: ignore[misc]


# --- helpers ----------------------------------------------------------------------------------


def natural_key(path: Path) -> tuple[object, ...]:
    """Sort key that orders ``frame2`` before ``frame10`` and ``001`` before ``frame002``'s peers."""
    parts = re.split(r"(\d+)", path.name)
    return tuple(int(p) if p.isdigit() else p.lower() for p in parts)


def list_images(folder: Path) -> tuple[Path, ...]:
    """The image files of ``folder`` in natural order (hidden and AppleDouble files skipped)."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return tuple(sorted(files, key=natural_key))


def _subfolders(folder: Path, pattern: str = r".+") -> list[Path]:
    regex = re.compile(pattern)
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and regex.fullmatch(p.name)),
        key=natural_key,
    )


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found at {path}")
    return path


def _check_split(split: str) -> Split:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split  # type: ignore[return-value]


def labels_from_intervals(intervals: Sequence[tuple[int, int]], n_frames: int) -> np.ndarray:
    """0/1 frame labels from 1-based inclusive ``(start, end)`` intervals."""
    labels = np.zeros(n_frames, dtype=np.int64)
    for start, end in intervals:
        if not 1 <= start <= end <= n_frames:
            raise ValueError(f"interval [{start}, {end}] does not fit a video of {n_frames} frames")
        labels[start - 1 : end] = 1
    return labels


# --- UCSD -------------------------------------------------------------------------------------

_GT_LINE = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")


def parse_ucsd_gt(text: str) -> list[list[tuple[int, int]]]:
    """Parse the official ``UCSDpedN.m``: per test video, its 1-based inclusive anomalous intervals.

    Each ``TestVideoFile{end+1}.gt_frame = [a:b, c:d];`` line is one video; an entry is a
    range ``a:b`` or a single frame ``a``.
    """
    videos: list[list[tuple[int, int]]] = []
    for match in _GT_LINE.finditer(text):
        intervals: list[tuple[int, int]] = []
        for token in re.split(r"[,\s;]+", match.group(1).strip()):
            if not token:
                continue
            bounds = token.split(":")
            if len(bounds) == 1:
                intervals.append((int(bounds[0]), int(bounds[0])))
            elif len(bounds) == 2:
                intervals.append((int(bounds[0]), int(bounds[1])))
            else:
                raise ValueError(f"cannot read the ground-truth range {token!r} (expected a:b or a)")
        videos.append(intervals)
    if not videos:
        raise ValueError("no 'gt_frame = [...]' lines found in the UCSD ground-truth file")
    return videos


def read_liu_gt(path: Path) -> list[list[tuple[int, int]]]:
    """Liu et al.'s ``pedN.mat``: ``gt`` is a cell of 2×K arrays of 1-based [start; end] rows."""
    from scipy.io import loadmat

    cells = np.asarray(loadmat(str(path))["gt"]).ravel()
    out = []
    for cell in cells:
        arr = np.atleast_2d(np.asarray(cell, dtype=np.int64))
        if arr.shape[0] != 2:
            arr = arr.T
        out.append([(int(s), int(e)) for s, e in zip(arr[0], arr[1], strict=True)])
    return out


def _ucsd_name(root: Path, ped: int) -> Path:
    """``root/UCSDpedN`` (or ``root`` itself when it is that folder)."""
    name = f"UCSDped{ped}"
    return root if root.name == name else root / name


def _ucsd_masks(test_dir: Path, index: int) -> tuple[Path, ...] | None:
    folder = test_dir / f"Test{index:03d}_gt"
    return list_images(folder) if folder.is_dir() else None


def _ucsd_gt(test_dir: Path, ped: int) -> list[list[tuple[int, int]]] | None:
    m_file = test_dir / f"UCSDped{ped}.m"
    return parse_ucsd_gt(m_file.read_text(encoding="utf-8", errors="replace")) if m_file.is_file() else None


def _attach_gt(
    dataset: str,
    videos: list[tuple[str, tuple[Path, ...]]],
    gt: list[list[tuple[int, int]]] | None,
    masks: list[tuple[Path, ...] | None],
) -> tuple[VideoSource, ...]:
    if gt is not None and len(gt) != len(videos):
        raise ValueError(f"{dataset}: the ground truth lists {len(gt)} test videos, found {len(videos)}")
    out = []
    for i, (name, frames) in enumerate(videos):
        labels = labels_from_intervals(gt[i], len(frames)) if gt is not None else None
        video_masks = masks[i]
        if video_masks is not None and len(video_masks) != len(frames):
            raise ValueError(f"{dataset} {name}: {len(video_masks)} masks for {len(frames)} frames")
        out.append(VideoSource(name, frames, labels, video_masks))
    return tuple(out)


def ucsd(root: str | os.PathLike[str], ped: int = 2, split: str = "test") -> VideoSet:
    """UCSD Ped1/Ped2 in the official layout (``UCSDpedN/Train/Train001/001.tif``, ...)."""
    split = _check_split(split)
    if ped not in (1, 2):
        raise ValueError(f"ped must be 1 or 2, got {ped}")
    base = _require_dir(_ucsd_name(Path(root), ped), f"UCSD Ped{ped} (folder UCSDped{ped})")
    folder = _require_dir(base / ("Train" if split == "train" else "Test"), f"UCSD Ped{ped} {split} folder")
    prefix = "Train" if split == "train" else "Test"
    clips = _subfolders(folder, rf"{prefix}\d+")
    if not clips:
        raise FileNotFoundError(f"no {prefix}NNN folders in {folder}")
    videos = [(c.name, list_images(c)) for c in clips]
    dataset = f"ucsd_ped{ped}"
    if split == "train":
        return VideoSet(dataset, split, tuple(VideoSource(n, f) for n, f in videos))
    masks = [_ucsd_masks(folder, int(c.name[len(prefix) :])) for c in clips]
    return VideoSet(dataset, split, _attach_gt(dataset, videos, _ucsd_gt(folder, ped), masks))


def ucsd_frames(root: str | os.PathLike[str], ped: int = 2, split: str = "test") -> VideoSet:
    """UCSD Ped1/Ped2 as the JPEG frame release of Liu et al. (``pedN/training/frames/01/000.jpg``).

    Labels come from the official ``UCSDpedN/Test/UCSDpedN.m`` when it is beside the
    frames, else from ``pedN/pedN.mat``; pixel masks from the official ``TestNNN_gt`` folders.
    """
    split = _check_split(split)
    root = Path(root)
    base = root if root.name == f"ped{ped}" else root / f"ped{ped}"
    sub = "training" if split == "train" else "testing"
    folder = _require_dir(base / sub / "frames", f"UCSD Ped{ped} JPEG frames ({sub})")
    clips = _subfolders(folder, r"\d+")
    if not clips:
        raise FileNotFoundError(f"no numbered clip folders in {folder}")
    videos = [(c.name, list_images(c)) for c in clips]
    dataset = f"ucsd_ped{ped}"
    if split == "train":
        return VideoSet(dataset, split, tuple(VideoSource(n, f) for n, f in videos))
    test_dir = _ucsd_name(base.parent, ped) / "Test"
    gt = _ucsd_gt(test_dir, ped) if test_dir.is_dir() else None
    if gt is None and (base / f"ped{ped}.mat").is_file():
        gt = read_liu_gt(base / f"ped{ped}.mat")
    masks = [_ucsd_masks(test_dir, int(c.name)) if test_dir.is_dir() else None for c in clips]
    return VideoSet(dataset, split, _attach_gt(dataset, videos, gt, masks))


def ucsd_auto(root: str | os.PathLike[str], ped: int = 2, split: str = "test") -> VideoSet:
    """Whichever UCSD layout ``root`` holds: the official TIFFs first, else the JPEG release."""
    root = Path(root)
    official = _ucsd_name(root, ped) / ("Train" if split == "train" else "Test")
    if official.is_dir() and _subfolders(official, r"(Train|Test)\d+"):
        return ucsd(root, ped, split)
    return ucsd_frames(root, ped, split)


# --- CUHK Avenue ----------------------------------------------------------------------------


def _avenue_mask_dir(root: Path) -> Path | None:
    for candidate in (root / "testing_label_mask", root / "ground_truth_demo" / "testing_label_mask"):
        if candidate.is_dir():
            return candidate
    return None


def avenue(root: str | os.PathLike[str], split: str = "test") -> VideoSet:
    """CUHK Avenue: ``training_videos/NN.avi``, ``testing_videos/NN.avi`` and
    ``testing_label_mask/N_label.mat`` (frame labels: a frame is anomalous where its mask is
    non-zero)."""
    split = _check_split(split)
    root = Path(root)
    folder = _require_dir(root / f"{'training' if split == 'train' else 'testing'}_videos", "CUHK Avenue")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".avi"), key=natural_key)
    if not files:
        raise FileNotFoundError(f"no .avi videos in {folder}")
    mask_dir = _avenue_mask_dir(root) if split == "test" else None
    videos = []
    for f in files:
        mask_file = mask_dir / f"{int(f.stem)}_label.mat" if mask_dir is not None else None
        if mask_file is not None and mask_file.is_file():
            labels = np.array([np.any(m) for m in _vol_label(mask_file)], dtype=np.int64)
            videos.append(VideoSource(f.stem, f, labels, mask_file))
        else:
            videos.append(VideoSource(f.stem, f))
    return VideoSet("avenue", split, tuple(videos))


def _vol_label(path: Path) -> list[np.ndarray]:
    from scipy.io import loadmat

    data = loadmat(str(path))
    if "volLabel" not in data:
        keys = sorted(k for k in data if not k.startswith("__"))
        raise ValueError(f"{path} has no 'volLabel' (Avenue's per-frame masks); it holds {keys}")
    return [np.asarray(m) for m in np.asarray(data["volLabel"]).ravel()]


# --- ShanghaiTech -------------------------------------------------------------------------------


def shanghaitech(root: str | os.PathLike[str], split: str = "test") -> VideoSet:
    """ShanghaiTech Campus: training videos ``training/videos/01_001.avi``; test frames
    ``testing/frames/01_0014/000.jpg`` with ``testing/test_frame_mask/01_0014.npy`` (0/1 per
    frame) and ``testing/test_pixel_mask/01_0014.npy`` (T, H, W)."""
    split = _check_split(split)
    root = Path(root)
    if split == "train":
        folder = _require_dir(root / "training" / "videos", "ShanghaiTech training videos")
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES), key=natural_key)
        if not files:
            raise FileNotFoundError(f"no training videos in {folder}")
        return VideoSet("shanghaitech", split, tuple(VideoSource(f.stem, f) for f in files))
    test = _require_dir(root / "testing", "ShanghaiTech testing folder")
    clips = _subfolders(_require_dir(test / "frames", "ShanghaiTech test frames"))
    videos = []
    for clip in clips:
        frames = list_images(clip)
        label_file = test / "test_frame_mask" / f"{clip.name}.npy"
        labels = (
            np.load(label_file, allow_pickle=False).astype(np.int64).ravel() if label_file.is_file() else None
        )
        if labels is not None and len(labels) != len(frames):
            raise ValueError(f"shanghaitech {clip.name}: {len(labels)} labels for {len(frames)} frames")
        pixel = test / "test_pixel_mask" / f"{clip.name}.npy"
        videos.append(VideoSource(clip.name, frames, labels, pixel if pixel.is_file() else None))
    return VideoSet("shanghaitech", split, tuple(videos))


# --- users' own videos ----------------------------------------------------------------------------


def user_video(path: str | os.PathLike[str]) -> VideoSource:
    """A user's video file, or a folder of frame images (natural order), without ground truth."""
    path = Path(path)
    if path.is_dir():
        frames = list_images(path)
        if not frames:
            raise ValueError(f"{path} holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
        return VideoSource(path.name, frames)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise ValueError(f"{path} is a single image; give a video file or a folder of frames")
        return VideoSource(path.stem, path)
    raise FileNotFoundError(f"no video file or frame folder at {path}")


# --- decoding -------------------------------------------------------------------------------------


def _import_av():  # type: ignore[no-untyped-def]
    try:
        import av
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading video files needs PyAV: pip install 'memae[video]' (or pip install av)"
        ) from err
    return av


def _resize_gray(image: object, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    assert isinstance(image, Image.Image)
    gray = image.convert("L")
    if size is not None and gray.size != (size[1], size[0]):
        gray = gray.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.uint8)


class VideoTooLargeError(ValueError):
    """A video of more frames than ``max_frames``, or of frames of more pixels than
    ``max_pixels``, refused before the excess is decoded; ``limit`` names which."""

    def __init__(self, message: str, limit: Literal["max_frames", "max_pixels"]) -> None:
        super().__init__(message)
        self.limit = limit


def iter_video_file(
    path: Path, size: tuple[int, int] | None = None, max_pixels: int | None = None
) -> Iterator[np.ndarray]:
    """The frames of a video file one at a time, grayscale uint8 (resized to ``size``);
    frames of more than ``max_pixels`` pixels are refused from the stream's header."""
    av = _import_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} holds no video stream")
            stream = container.streams.video[0]
            _check_pixels(path, stream.width, stream.height, max_pixels)
            for frame in container.decode(stream):
                _check_pixels(path, frame.width, frame.height, max_pixels)
                yield _resize_gray(frame.to_image(), size)
    except av.error.FFmpegError as err:  # type: ignore[attr-defined]
        raise ValueError(f"{path} is not a readable video: {err}") from err


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise VideoTooLargeError(
            f"{path.name} has frames of {width}x{height} = {width * height} pixels, more than the "
            f"{max_pixels} allowed (max_pixels)",
            "max_pixels",
        )


def decode_frames(
    video: VideoSource,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decode every frame once: grayscale, resized to ``size = (H, W)``, as uint8 (T, H, W).

    :func:`to_unit_range` then scales to [−1, 1]. A video of more than ``max_frames`` frames,
    or with frames of more than ``max_pixels`` pixels, raises :class:`VideoTooLargeError`
    before the excess is decoded.
    """
    from PIL import Image

    def too_long() -> VideoTooLargeError:
        return VideoTooLargeError(
            f"video {video.name!r} has more than the {max_frames} frames allowed (max_frames)", "max_frames"
        )

    frames = []
    if isinstance(video.frames, Path):
        for frame in iter_video_file(video.frames, size, max_pixels):
            frames.append(frame)
            if max_frames is not None and len(frames) > max_frames:
                raise too_long()
    else:
        if max_frames is not None and len(video.frames) > max_frames:
            raise too_long()
        for path in video.frames:
            with Image.open(path) as img:
                _check_pixels(path, *img.size, max_pixels)
                frames.append(_resize_gray(img, size))
    if not frames:
        raise ValueError(f"video {video.name!r} has no frames")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"video {video.name!r} has frames of different sizes {sorted(shapes)}; give a size")
    array = np.stack(frames)
    if video.labels is not None and len(video.labels) != len(array):
        raise ValueError(f"video {video.name!r}: {len(video.labels)} labels for {len(array)} frames")
    return array


def frames_at(
    video: VideoSource, indices: Iterable[int], size: tuple[int, int] | None = None
) -> dict[int, np.ndarray]:
    """Some frames of ``video`` (grayscale uint8, at their own size unless ``size`` is given):
    only those images of a frame folder are opened; a video file is decoded once, up to the
    last frame asked for."""
    from PIL import Image

    wanted = sorted({int(i) for i in indices})
    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    if not isinstance(video.frames, Path):
        for i in wanted:
            if not 0 <= i < len(video.frames):
                raise ValueError(f"frame {i} is outside video {video.name!r} of {len(video.frames)} frames")
            with Image.open(video.frames[i]) as img:
                out[i] = _resize_gray(img, size)
        return out
    decoded, asked = 0, set(wanted)
    for i, frame in enumerate(iter_video_file(video.frames, size)):
        decoded = i + 1
        if i in asked:
            out[i] = frame
        if i >= wanted[-1]:
            break
    missing = [i for i in wanted if i not in out]
    if missing:
        raise ValueError(f"frames {missing} are outside video {video.name!r} of {decoded} frames")
    return out


def to_unit_range(frames: np.ndarray) -> np.ndarray:
    """uint8 grey levels -> float32 in [−1, 1] (the authors' mean 0.5 / std 0.5 normalisation)."""
    return frames.astype(np.float32) / 127.5 - 1.0


def read_masks_file(path: Path) -> np.ndarray:
    """Masks stored in one file: Avenue's ``volLabel`` ``.mat`` or ShanghaiTech's ``.npy`` -> (T, H, W)."""
    if path.suffix.lower() == ".mat":
        return np.stack(_vol_label(path))
    if path.suffix.lower() == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim != 3:
            raise ValueError(f"{path}: expected pixel masks of shape (T, H, W), got {array.shape}")
        return array
    raise ValueError(f"unsupported mask file {path.name!r}: expected .mat or .npy")


def read_masks(video: VideoSource) -> np.ndarray:
    """The pixel masks of ``video`` as a bool array (T, H, W) at the dataset's resolution."""
    from PIL import Image

    if video.masks is None:
        raise ValueError(f"video {video.name!r} has no pixel masks")
    if isinstance(video.masks, Path):
        return read_masks_file(video.masks) > 0
    out = []
    for path in video.masks:
        with Image.open(path) as img:
            out.append(np.asarray(img.convert("L")) > 0)
    return np.stack(out)


__all__ = [
    "VideoSet",
    "VideoSource",
    "avenue",
    "decode_frames",
    "frames_at",
    "labels_from_intervals",
    "list_images",
    "parse_ucsd_gt",
    "read_liu_gt",
    "read_masks",
    "shanghaitech",
    "to_unit_range",
    "ucsd",
    "ucsd_auto",
    "ucsd_frames",
    "user_video",
]
