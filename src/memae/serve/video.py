"""Video scoring: an uploaded video (or its frames) scored whole, as ``memae score-video``
scores it; or frames streamed in one at a time, each frame's clip error out once its clip is
complete.

The alignment is ``memae score-video``'s centred one (:func:`memae.video.scoring.align_frames`
with ``"center"``): frame ``u`` is scored by the clip starting at ``clip(u − L/2, 0, n − L)``.
Online, the clip starting at ``s`` is complete when frame ``s + L − 1`` arrives; it scores
frames ``0 … L/2`` when ``s = 0`` and frame ``s + L/2`` after; when the stream ends, the last
clip scores the frames after that. A stream therefore gets the same errors as
:func:`memae.video.scoring.frame_errors` on the whole video, each ``L/2`` frames late.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from memae.serve.config import Limits
from memae.video.experiment import TrainedVideoModel
from memae.video.scoring import clip_errors


class ScoredFrame(NamedTuple):
    frame: int
    error: float


class FrameStream:
    """The last ``clip_len`` frames of a stream and which frames each new clip scores."""

    def __init__(self, clip_len: int) -> None:
        if clip_len < 1:
            raise ValueError(f"clip_len must be >= 1, got {clip_len}")
        self.clip_len, self.half = clip_len, clip_len // 2
        self.received = 0
        self.scored = 0  # frames 0 .. scored - 1 have their error
        self.last_error: float | None = None
        self._frames: deque[torch.Tensor] = deque(maxlen=clip_len)

    def push(self, frame: torch.Tensor) -> torch.Tensor | None:
        """Add one (H, W) frame; the (L, H, W) clip it completes, else ``None``."""
        self._frames.append(frame)
        self.received += 1
        return torch.stack(list(self._frames)) if self.received >= self.clip_len else None

    def scored_by(self, error: float) -> list[ScoredFrame]:
        """The frames the clip just completed scores, given its error."""
        start = self.received - self.clip_len
        last = self.half if start == 0 else start + self.half
        out = [ScoredFrame(u, error) for u in range(self.scored, last + 1)]
        self.scored, self.last_error = last + 1, error
        return out

    def finish(self) -> list[ScoredFrame]:
        """At the end of the stream: the last clip scores the frames after its centre."""
        if self.received < self.clip_len:
            raise ValueError(
                f"the stream ended after {self.received} frame(s); one clip needs {self.clip_len}"
            )
        assert self.last_error is not None
        out = [ScoredFrame(u, self.last_error) for u in range(self.scored, self.received)]
        self.scored = self.received
        return out


def decode_frame(content: bytes, size: tuple[int, int], max_pixels: int) -> torch.Tensor:
    """One encoded image (PNG, JPEG, …) as an (H, W) frame in [−1, 1], gray and resized as
    the video model's training frames were."""
    from PIL import Image, UnidentifiedImageError

    from memae.data.video import _resize_gray, to_unit_range

    try:
        with Image.open(io.BytesIO(content)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise OverflowError(f"a frame of {width}x{height} = {width * height} pixels")
            gray = _resize_gray(image, size)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"a frame is not a readable image: {err}") from err
    return torch.from_numpy(to_unit_range(gray[None]))[0]


def upload_frames(
    trained: TrainedVideoModel, files: Sequence[tuple[str, bytes]], limits: Limits, folder: str | Path
) -> tuple[str, torch.Tensor]:
    """An uploaded video — one video file (anything FFmpeg reads) or its frames as image files,
    in the natural order of their names — written under ``folder`` and decoded by
    :func:`memae.data.video.decode_frames` as ``memae score-video`` decodes it: its name and
    its (T, H, W) frames in [−1, 1], gray and at the model's frame size. Refusals are
    4xx :class:`~memae.serve.inputs.RequestError` answers that name the limit."""
    from PIL import Image

    from memae.data.video import IMAGE_SUFFIXES, VideoTooLargeError, decode_frames, to_unit_range, user_video
    from memae.serve.inputs import RequestError, safe_name

    if not files:
        raise RequestError(400, "the upload has no file in field 'file'")
    folder = Path(folder)
    if len(files) == 1:
        path = folder / safe_name(files[0][0])
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise RequestError(400, f"{path.name} is a single image: upload a video file or its frames")
        path.write_bytes(files[0][1])
        name = path.name
    else:
        path = folder / "frames"
        path.mkdir()
        for file_name, content in files:
            frame = path / safe_name(file_name)
            if frame.exists():
                raise RequestError(400, f"two frames are named {frame.name!r}: frames are ordered by name")
            frame.write_bytes(content)
        name = f"{len(files)} frames"
    clip_len = trained.experiment.frames.clip_len
    try:
        frames = decode_frames(
            user_video(path), trained.experiment.frames.size, limits.max_video_frames, limits.max_pixels
        )
    except VideoTooLargeError as err:
        if err.limit == "max_frames":
            raise RequestError(
                413,
                f"the video has more than the {limits.max_video_frames} frames allowed (max_video_frames)",
                "max_video_frames",
            ) from err
        raise RequestError(413, str(err), "max_pixels") from err
    except Image.DecompressionBombError as err:
        raise RequestError(413, f"a frame has too many pixels (max_pixels): {err}", "max_pixels") from err
    except (ValueError, OSError) as err:
        raise RequestError(400, str(err).replace(f"{folder}/", "")) from err
    if len(frames) < clip_len:
        raise RequestError(400, f"the video has {len(frames)} frame(s); the model needs at least {clip_len}")
    return name, torch.from_numpy(to_unit_range(frames))


def clip_error(trained: TrainedVideoModel, clip: torch.Tensor) -> float:
    """The error of one (L, H, W) clip, reduced as the model's experiment says."""
    scoring = trained.experiment.scoring
    device = next(trained.model.parameters()).device
    errors = clip_errors(
        trained.model,
        clip,
        np.zeros(1, np.int64),
        len(clip),
        scoring.reduction,
        1,
        device,
        scoring.patch_size,
    )
    return float(errors[0])
