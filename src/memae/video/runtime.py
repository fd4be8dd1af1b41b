"""Running time per frame: model only, and end to end (decode + resize + scale + model + score)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memae.checkpoint import atomic_write
from memae.data.video import VideoSource
from memae.nn.model import MemAE, build_model
from memae.provenance import machine
from memae.training import resolve_device
from memae.video.clips import FrameStore
from memae.video.config import VideoExperiment
from memae.video.scoring import align_frames, frame_errors, normality

RUNTIME_FILE = "video_runtime.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_runtime(
    experiment: VideoExperiment,
    video: VideoSource,
    model: MemAE | None = None,
    device: str = "auto",
    max_frames: int | None = None,
    repeats: int = 1,
    warmup: bool = True,
) -> dict[str, Any]:
    """Seconds per frame to score ``video`` (its first ``max_frames`` frames) with the
    experiment's model and scoring: model only (clips already decoded, forward passes and
    error reduction), and end to end (from the files on disk to per-frame normality).

    The time does not depend on the weights, so an untrained ``model`` (the default) serves.
    Each figure is the best of ``repeats`` runs, after one warm-up pass if ``warmup``.
    With the centred alignment a video of n frames needs n − L + 1 clips, so a short
    excerpt costs fewer clips per frame than a whole video: the row records both counts.
    """
    dev = resolve_device(device)
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build_model(experiment.model)[0]
    model = model.to(dev).eval()
    if max_frames is not None and not video.is_file:
        video = dataclasses.replace(video, frames=video.frames[:max_frames], labels=None, masks=None)  # type: ignore[index]
    clip_len, scoring = experiment.frames.clip_len, experiment.scoring

    def end_to_end() -> tuple[int, float, float]:
        _sync(dev)
        t0 = time.perf_counter()
        frames = FrameStore.decode([video], experiment.frames.size).frames[0]
        if max_frames is not None:
            frames = frames[:max_frames]
        t1 = time.perf_counter()
        starts = align_frames(len(frames), clip_len, scoring.alignment).starts
        clips.append(len(np.unique(starts)))
        _, errors = frame_errors(
            model,
            frames,
            clip_len,
            scoring.alignment,
            scoring.reduction,
            scoring.batch_size,
            dev,
            scoring.patch_size,
        )
        normality(errors)
        _sync(dev)
        t2 = time.perf_counter()
        return len(errors), t1 - t0, t2 - t1

    clips: list[int] = []
    if warmup:
        end_to_end()  # allocator, cuDNN autotuning, file cache
    runs = [end_to_end() for _ in range(max(repeats, 1))]
    n = runs[0][0]
    total = min(d + m for _, d, m in runs)
    model_only = min(m for _, _, m in runs)
    return {
        "config": experiment.name,
        "device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "torch_threads": torch.get_num_threads(),
        "frames": n,
        "clips": clips[-1],
        "model_seconds_per_clip": model_only / clips[-1],
        "clip_len": clip_len,
        "input_shape": list(experiment.frames.input_shape),
        "model_seconds_per_frame": model_only / n,
        "model_frames_per_second": n / model_only,
        "end_to_end_seconds_per_frame": total / n,
        "end_to_end_frames_per_second": n / total,
        "decode_seconds_per_frame": min(d for _, d, _ in runs) / n,
        # Other work on the machine slows every figure; the 1-minute load average says how much.
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def record_runtime(results_dir: str | Path, key: str, row: dict[str, Any]) -> Path:
    """Add ``row`` under ``key`` to ``<results_dir>/video_runtime.json`` (with the machine)."""
    path = Path(results_dir) / RUNTIME_FILE
    table = json.loads(path.read_text()) if path.is_file() else {}
    table[key] = {**row, "machine": machine()}
    text = json.dumps(table, indent=2, sort_keys=True)
    return atomic_write(path, lambda p: Path(p).write_text(text + "\n"))


__all__ = ["RUNTIME_FILE", "measure_runtime", "record_runtime"]
