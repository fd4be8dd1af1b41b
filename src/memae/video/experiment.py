"""Training and evaluating one video model, and its self-describing checkpoint."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memae.checkpoint import CheckpointError, build_checked, load_checkpoint, save_checkpoint
from memae.nn.model import MemAE, build_model
from memae.training import History, fit_model, resolve_device
from memae.video.clips import ClipDataset, FrameStore
from memae.video.config import VideoExperiment, experiment_from_dict
from memae.video.evaluate import Evaluation, evaluate
from memae.video.scoring import frame_errors

_KIND = "video-model"


@dataclass(frozen=True, eq=False)
class TrainedVideoModel:
    """A trained network with the experiment (resolved model config inside) that built it."""

    model: MemAE
    experiment: VideoExperiment
    history: History
    train_seconds: float
    #: clip error e_u above which ``score-video`` flags a frame (:func:`learn_video_threshold`)
    threshold: float | None = None

    def evaluate(self, store: FrameStore, device: torch.device | str | None = None) -> Evaluation:
        device = device if device is not None else next(self.model.parameters()).device
        return evaluate(self.model, store, self.experiment.frames.clip_len, self.experiment.scoring, device)

    def frame_errors(
        self, frames: torch.Tensor, device: torch.device | str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(frame indices, e_u)`` of one video's decoded frames (T, H, W) in [−1, 1]: each
        frame scored by the clip centred on it (``memae score-video``), reduced as the
        experiment says."""
        scoring = self.experiment.scoring
        device = device if device is not None else next(self.model.parameters()).device
        return frame_errors(
            self.model,
            frames,
            self.experiment.frames.clip_len,
            "center",
            scoring.reduction,
            scoring.batch_size,
            device,
            scoring.patch_size,
        )


class _OutOfTime(Exception):
    pass


def train_video_model(
    experiment: VideoExperiment,
    train_store: FrameStore,
    seed: int | None = None,
    time_budget: float | None = None,
) -> TrainedVideoModel:
    """Train ``experiment.model`` on the clips of ``train_store`` (seeded by ``seed`` or
    ``experiment.train.seed``) without touching the global random state.

    With ``time_budget`` (seconds) training stops after the last epoch that is expected to
    end within it; the returned experiment's ``train.epochs`` says how many ran.
    """
    train_cfg = experiment.train if seed is None else dataclasses.replace(experiment.train, seed=seed)
    if train_store.frame_shape != experiment.frames.size:
        raise ValueError(
            f"frames decoded at {train_store.frame_shape}, the experiment expects {experiment.frames.size}"
        )
    clips = ClipDataset(train_store.frames, experiment.frames.clip_len, experiment.frames.train_stride)
    start = time.perf_counter()
    seen: list[History] = []

    def on_epoch(epoch: int, history: History) -> None:
        seen[:] = [history]
        elapsed = time.perf_counter() - start
        if time_budget is not None and elapsed * (epoch + 2) / (epoch + 1) > time_budget:
            raise _OutOfTime

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_cfg.seed)
        model, resolved = build_model(experiment.model)
        try:
            history = fit_model(model, resolved, train_cfg, clips, on_epoch=on_epoch)
        except _OutOfTime:
            history = seen[0]
            train_cfg = dataclasses.replace(train_cfg, epochs=len(history.train_loss))
    seconds = time.perf_counter() - start
    experiment = dataclasses.replace(experiment, model=resolved, train=train_cfg)
    return TrainedVideoModel(model, experiment, history, seconds)


#: the percentile of the training frames' errors that becomes the threshold: the training
#: videos are normal, so about 1 % of new normal frames are expected over it
THRESHOLD_PERCENTILE = 99.0


def learn_video_threshold(
    trained: TrainedVideoModel, store: FrameStore, device: torch.device | str = "cpu"
) -> TrainedVideoModel:
    """``trained`` with ``threshold`` set to the :data:`THRESHOLD_PERCENTILE`-th percentile
    of the clip errors of the (normal) training videos in ``store``, scored the way
    ``memae score-video`` scores (centre-aligned clips, the experiment's reduction)."""
    from memae.video.scoring import frame_errors

    experiment = trained.experiment
    scoring = experiment.scoring
    errors = [
        frame_errors(
            trained.model,
            frames,
            experiment.frames.clip_len,
            "center",
            scoring.reduction,
            scoring.batch_size,
            device,
            scoring.patch_size,
        )[1]
        for frames in store.frames
        if len(frames) >= experiment.frames.clip_len
    ]
    if not errors:
        raise ValueError(
            f"no training video has the {experiment.frames.clip_len} frames one clip needs; "
            "cannot learn a threshold"
        )
    value = float(np.percentile(np.concatenate(errors), THRESHOLD_PERCENTILE))
    return dataclasses.replace(trained, threshold=value)


def save_video_model(path: str | os.PathLike[str], trained: TrainedVideoModel) -> Path:
    """A safe checkpoint (safetensors + JSON) that :func:`load_video_model` rebuilds."""
    tensors = {f"model.{k}": v for k, v in trained.model.state_dict().items()}
    metadata: dict[str, Any] = {
        "kind": _KIND,
        "experiment": trained.experiment.to_dict(),
        "history": dataclasses.asdict(trained.history),
        "train_seconds": trained.train_seconds,
        "threshold": trained.threshold,
    }
    return save_checkpoint(path, tensors, metadata)


def load_video_model(path: str | os.PathLike[str], device: str = "cpu") -> TrainedVideoModel:
    """Rebuild a model written by :func:`save_video_model` (nothing in the file is executed)."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != _KIND:
        raise CheckpointError(f"{path} holds a {meta.get('kind')!r} checkpoint, expected a video model")
    try:
        experiment = experiment_from_dict(meta["experiment"])
        model, _ = build_checked(
            path, lambda: build_model(experiment.model), tensors, experiment.model.input_shape
        )
        state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(state, strict=True)
        history = History(**meta.get("history", {}))
        threshold = meta.get("threshold")
        threshold = None if threshold is None else float(threshold)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as err:
        what = f"lacks the field {err}" if isinstance(err, KeyError) else f"does not match: {err}"
        raise CheckpointError(f"{path} {what} (this memae's video model checkpoint)") from err
    model.to(resolve_device(device)).eval()
    return TrainedVideoModel(model, experiment, history, meta.get("train_seconds", 0.0), threshold)


def memory_usage(model: MemAE, store: FrameStore, clip_len: int, max_clips: int = 64) -> dict[str, float]:
    """Addressing diagnostics on a few clips: the share of queries whose shrunk weights are
    all zero (the read is zero, SPEC §9), the mean number of non-zero weights per query and
    the share of slots ever used."""
    if model.memory is None:
        return {}
    clips = ClipDataset(store.frames, clip_len, stride=max(1, store.n_frames // max_clips))
    batch = torch.stack([clips[i] for i in range(min(len(clips), max_clips))])
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        weights = model(batch.to(device)).weights
    assert weights is not None
    rows = weights.movedim(1, -1).reshape(-1, weights.shape[1])
    nonzero = rows > 0
    return {
        "zero_read_fraction": float((rows.sum(dim=1) == 0).float().mean()),
        "mean_active_slots": float(nonzero.sum(dim=1).float().mean()),
        "slots_used_fraction": float(nonzero.any(dim=0).float().mean()),
    }


__all__ = ["TrainedVideoModel", "load_video_model", "memory_usage", "save_video_model", "train_video_model"]
