"""The frame pipeline: decode every frame once, serve clips as views.

:class:`FrameStore` holds each video as one (T, H, W) float32 tensor in [−1, 1], decoded
once (grayscale, resized, scaled); :class:`ClipDataset` serves (1, L, H, W) clips that are
views into it, so a clip costs no decoding and no copy until the loader stacks a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from memae.data.video import VideoSet, VideoSource, decode_frames, to_unit_range

Decoder = Callable[[VideoSource, tuple[int, int]], np.ndarray]


@dataclass(frozen=True, eq=False)
class FrameStore:
    """Decoded videos: ``frames[i]`` is a (T_i, H, W) float32 tensor in [−1, 1].

    ``labels[i]`` are the frame labels of video ``i`` (1 = anomalous) or ``None``.
    """

    names: tuple[str, ...]
    frames: tuple[torch.Tensor, ...]
    labels: tuple[np.ndarray | None, ...]
    sources: tuple[VideoSource, ...] = ()

    def __post_init__(self) -> None:
        if not len(self.names) == len(self.frames) == len(self.labels):
            raise ValueError("names, frames and labels must have one entry per video")
        for name, f in zip(self.names, self.frames, strict=True):
            if f.dim() != 3:
                raise ValueError(f"video {name!r}: expected frames of shape (T, H, W), got {tuple(f.shape)}")

    @classmethod
    def decode(
        cls,
        videos: VideoSet | Sequence[VideoSource],
        size: tuple[int, int],
        workers: int = 1,
        decoder: Decoder = decode_frames,
    ) -> FrameStore:
        """Decode every frame of ``videos`` once at ``size = (H, W)``; ``workers`` threads."""
        sources = tuple(videos.videos if isinstance(videos, VideoSet) else videos)
        if not sources:
            raise ValueError("no videos to decode")

        def one(video: VideoSource) -> torch.Tensor:
            return torch.from_numpy(to_unit_range(decoder(video, size)))

        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                frames = tuple(pool.map(one, sources))
        else:
            frames = tuple(one(v) for v in sources)
        return cls(
            names=tuple(v.name for v in sources),
            frames=frames,
            labels=tuple(v.labels for v in sources),
            sources=sources,
        )

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def n_frames(self) -> int:
        return sum(len(f) for f in self.frames)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return (int(self.frames[0].shape[1]), int(self.frames[0].shape[2]))


def clip_starts(n_frames: int, clip_len: int, stride: int = 1) -> np.ndarray:
    """First frames of the clips ``[s, s + clip_len)`` that fit in a video, every ``stride``."""
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len and stride must be >= 1, got {clip_len} and {stride}")
    return np.arange(0, max(n_frames - clip_len + 1, 0), stride, dtype=np.int64)


class ClipDataset(Dataset):
    """Clips of ``clip_len`` frames as (1, L, H, W) views into decoded videos.

    Example:
        >>> store = FrameStore.decode(ucsd_frames(root, split="train"), size=(64, 64))
        >>> clips = ClipDataset(store.frames, clip_len=16, stride=2)
        >>> clips[0].shape
        torch.Size([1, 16, 64, 64])
    """

    def __init__(self, frames: Sequence[torch.Tensor], clip_len: int = 16, stride: int = 1) -> None:
        self.frames = list(frames)
        self.clip_len = clip_len
        index = []
        for v, f in enumerate(self.frames):
            if f.dim() != 3:
                raise ValueError(f"expected frames of shape (T, H, W), got {tuple(f.shape)}")
            index += [(v, int(s)) for s in clip_starts(len(f), clip_len, stride)]
        if not index:
            raise ValueError(f"no video has the {clip_len} frames one clip needs")
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        v, s = self.index[i]
        return self.frames[v][s : s + self.clip_len].unsqueeze(0)


__all__ = ["ClipDataset", "FrameStore", "clip_starts"]
