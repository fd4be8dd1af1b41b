"""Resumable training: a training-state checkpoint and a data order fixed by seed and epoch.

The state file is a safetensors checkpoint like any other (:mod:`memae.checkpoint`): the
model's weights, the optimiser's and the scheduler's state flattened into tensors plus JSON,
the RNG states, and the position (epoch, optimiser steps done in it, the running loss sums).
Nothing is pickled. :func:`memae.training.fit_model` writes it atomically at the end of
every epoch and, optionally, every ``every_steps`` steps; a killed run restarted with the
same checkpointer continues from the last write and, on the CPU, ends with the same weights
as a run that was never interrupted.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from memae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

KIND = "training-state"


log = logging.getLogger("memae")


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of one epoch: a function of the run's seed and the epoch only."""
    return int(np.random.SeedSequence((int(seed), int(epoch))).generate_state(1, np.uint64)[0] >> 1)


class EpochSampler(Sampler[int]):
    """Shuffles ``range(n)`` by :func:`epoch_seed`, so every epoch's order can be rebuilt.

    ``set_epoch(epoch, skip)`` selects the epoch and drops its first ``skip`` samples: a run
    resumed after ``k`` full batches of size ``b`` skips ``k * b`` and sees exactly the
    batches it had not trained on yet.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = int(epoch), int(skip)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        yield from torch.randperm(self.n, generator=generator)[self.skip :].tolist()

    def __len__(self) -> int:
        return max(0, self.n - self.skip)


@dataclass
class ResumePoint:
    """Where training stands: ``step`` optimiser steps of ``epoch`` are done.

    ``sums`` (total, reconstruction, entropy; float64, weighted by batch size) and ``count``
    are the running sums of the epoch in progress; ``history`` holds the finished epochs as
    :class:`memae.training.History` fields.
    """

    epoch: int = 0
    step: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.float64))
    count: int = 0


# --- nested state <-> JSON + tensors ------------------------------------------------------


def flatten_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-serialisable copy of ``obj`` (a ``state_dict``) with its tensors moved to
    ``tensors`` under names starting with ``prefix``. Dict keys keep their type (the
    optimiser keys its state by int) and tuples stay tuples."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {
            "__items__": [
                [k, flatten_state(v, f"{prefix}.{i}", tensors)] for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a training state (at {prefix})")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`flatten_state`."""
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(unflatten_state(v, tensors) for v in obj["__tuple__"])
        return {k: unflatten_state(v, tensors) for k, v in obj["__items__"]}
    return obj


def _lay_out_like_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Give each restored per-parameter state tensor (Adam's moments) its parameter's memory
    layout. A state file holds contiguous tensors, a parameter trained channels-last is not,
    and fused Adam given moments of another layout updates the wrong elements (a resumed
    channels-last run ended elsewhere than the uninterrupted one: ``tests/unit/test_resume.py``)."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if (
                isinstance(value, torch.Tensor)
                and value.shape == param.shape
                and value.stride() != param.stride()
            ):
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


# --- the checkpointer ----------------------------------------------------------------------


class TrainingCheckpointer:
    """Writes and restores the training state of one run at ``path``.

    ``fingerprint`` (JSON-serialisable) describes the run — parameters, a digest of the
    data — and is stored with the state; :meth:`restore` refuses a state whose fingerprint
    differs, so a resume never continues a different run. ``every_steps > 0`` adds a write
    every that many optimiser steps within an epoch (the end of each epoch is always written).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, every_steps: int = 0, fingerprint: dict[str, Any] | None = None
    ) -> None:
        if every_steps < 0:
            raise ValueError(f"every_steps must be >= 0, got {every_steps}")
        self.path = Path(path)
        self.every_steps = int(every_steps)
        # Through JSON, as the stored copy went, so tuples compare equal to lists.
        self.fingerprint = json.loads(json.dumps(fingerprint or {}))

    def due(self, step: int, steps_per_epoch: int) -> bool:
        """Whether to write after ``step`` steps of an epoch (its end is written anyway)."""
        return self.every_steps > 0 and step % self.every_steps == 0 and step < steps_per_epoch

    def save(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        point: ResumePoint,
    ) -> Path:
        tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors["progress.sums"] = point.sums
        tensors["rng.torch"] = torch.get_rng_state()
        cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        for i, state in enumerate(cuda_states):
            tensors[f"rng.cuda.{i}"] = state
        metadata = {
            "kind": KIND,
            "fingerprint": self.fingerprint,
            "progress": {
                "epoch": point.epoch,
                "step": point.step,
                "count": point.count,
                "history": point.history,
            },
            "optimizer": flatten_state(optimizer.state_dict(), "optimizer", tensors),
            "scheduler": flatten_state(scheduler.state_dict(), "scheduler", tensors) if scheduler else None,
            "cuda_rng_states": len(cuda_states),
        }
        return save_checkpoint(self.path, tensors, metadata)

    def restore(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    ) -> ResumePoint | None:
        """Load the state into ``model``, ``optimizer`` and ``scheduler`` and return where to
        continue; ``None`` when there is no state file yet (a fresh start)."""
        if not self.path.exists():
            return None
        tensors, meta = load_checkpoint(self.path)
        if meta.get("kind") != KIND:
            raise CheckpointError(
                f"{self.path} holds a {meta.get('kind')!r} checkpoint, expected a training state"
            )
        check_fingerprint(self.path, meta.get("fingerprint", {}), self.fingerprint)
        try:
            state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
            model.load_state_dict(state, strict=True)
            optimizer.load_state_dict(unflatten_state(meta["optimizer"], tensors))
            _lay_out_like_parameters(optimizer)
            if (scheduler is None) != (meta["scheduler"] is None):
                raise ValueError("the learning-rate schedule differs")
            if scheduler is not None:
                scheduler.load_state_dict(unflatten_state(meta["scheduler"], tensors))
            progress = meta["progress"]
            point = ResumePoint(
                epoch=int(progress["epoch"]),
                step=int(progress["step"]),
                history={k: list(v) for k, v in progress["history"].items()},
                sums=tensors["progress.sums"].to(torch.float64),
                count=int(progress["count"]),
            )
            torch.set_rng_state(tensors["rng.torch"])
            log.info("resuming from %s at epoch %d, step %d", self.path, point.epoch + 1, point.step)
            if torch.cuda.is_available() and meta["cuda_rng_states"] == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(
                    [tensors[f"rng.cuda.{i}"] for i in range(meta["cuda_rng_states"])]
                )
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{self.path} does not match this training run: {err}") from err
        return point


def check_fingerprint(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Raise naming the first setting in which a stored run differs from the current one."""
    for key in sorted(set(saved) | set(current)):
        was, now = saved.get(key), current.get(key)
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            inner = next(k for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k))
            key, was, now = f"{key}.{inner}", was.get(inner), now.get(inner)
        raise CheckpointError(
            f"{path} was written by a different training run: {key} was {was!r}, now {now!r} "
            "(delete it to start afresh)"
        )


def read_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The fingerprint stored in a training state, or ``None`` when there is no file."""
    from memae.checkpoint import read_metadata

    if not Path(path).exists():
        return None
    meta = read_metadata(path)
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{path} holds a {meta.get('kind')!r} checkpoint, expected a training state")
    return dict(meta.get("fingerprint", {}))
