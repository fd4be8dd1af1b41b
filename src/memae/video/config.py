"""The typed configuration of a video experiment; ``configs/<name>.yaml`` is its serialisation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from memae.config import ModelConfig, TrainConfig, config_from_dict
from memae.io import SettingsError, load_settings, load_yaml

Alignment = Literal["center", "authors"]
ClipReduction = Literal["l2", "mse", "patch-max"]
ALIGNMENTS: tuple[str, ...] = ("center", "authors")
CLIP_REDUCTIONS: tuple[str, ...] = ("l2", "mse", "patch-max")


@dataclass(frozen=True)
class FrameConfig:
    """How frames become clips: grayscale, resized to ``height × width``, ``clip_len`` frames.

    ``train_stride`` is the step between the first frames of consecutive training clips
    (1 = every clip; the authors' code used every clip).
    """

    height: int = 256
    width: int = 256
    clip_len: int = 16
    train_stride: int = 1

    def __post_init__(self) -> None:
        for name in ("height", "width", "clip_len", "train_stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.clip_len, self.height, self.width)


@dataclass(frozen=True)
class ScoringConfig:
    """How a frame gets its score (SPEC §6, video).

    ``alignment``: ``"center"`` scores frame u by the clip of frames [u − L/2, u + L/2)
    (shifted inward at the ends, so every frame is scored); ``"authors"`` uses the same
    clip but, like the authors' evaluation (``labels[8:-7]`` for L = 16), leaves out the
    first L/2 and last L/2 − 1 frames of each video.
    ``reduction``: per-clip error, ``"l2"`` (per-pixel ℓ2 norm over channels, mean over
    T×H×W: the authors' score), ``"mse"``, or ``"patch-max"`` (not in the paper: the
    per-pixel ℓ2 error averaged over T and over ``patch_size``² windows at half-window
    stride, then the largest window, so a small anomaly is not averaged away by the frame).
    """

    alignment: Alignment = "center"
    reduction: ClipReduction = "l2"
    batch_size: int = 32
    patch_size: int = 8

    def __post_init__(self) -> None:
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        if self.reduction not in CLIP_REDUCTIONS:
            raise ValueError(f"reduction must be one of {CLIP_REDUCTIONS}, got {self.reduction!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")


@dataclass(frozen=True)
class VideoExperiment:
    """Frames, model (its input shape comes from the frames), training and scoring."""

    name: str
    frames: FrameConfig = field(default_factory=FrameConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(input_shape=FrameConfig().input_shape))
    train: TrainConfig = field(default_factory=TrainConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    description: str = ""

    def __post_init__(self) -> None:
        if tuple(self.model.input_shape) != self.frames.input_shape:
            raise ValueError(
                f"model input_shape {self.model.input_shape} does not match the frames' clip shape "
                f"{self.frames.input_shape}"
            )

    def with_model(self, **changes: Any) -> VideoExperiment:
        """A copy with some model fields changed (``variant``, ``memory_size``, ...)."""
        return dataclasses.replace(self, model=dataclasses.replace(self.model, **changes))

    def with_train(self, **changes: Any) -> VideoExperiment:
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"].pop("input_shape")
        return data


def experiment_from_dict(data: dict[str, Any]) -> VideoExperiment:
    """Build a :class:`VideoExperiment` from its YAML/JSON mapping (unknown keys are named)."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a mapping for a video experiment, got {type(data).__name__}")
    known = {"name", "description", "frames", "model", "train", "scoring"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown video experiment keys {unknown}; known keys: {sorted(known)}")
    frames = config_from_dict(FrameConfig, dict(data.get("frames") or {}))
    model_data = dict(data.get("model") or {})
    if "input_shape" in model_data:
        raise ValueError("the model's input_shape comes from 'frames'; leave it out of 'model'")
    model = config_from_dict(ModelConfig, {**model_data, "input_shape": frames.input_shape})
    return VideoExperiment(
        name=str(data.get("name", "custom")),
        frames=frames,
        model=model,
        train=config_from_dict(TrainConfig, dict(data.get("train") or {})),
        scoring=config_from_dict(ScoringConfig, dict(data.get("scoring") or {})),
        description=str(data.get("description", "")),
    )


def list_experiments() -> list[str]:
    """Names of the video configurations shipped with memae."""
    folder = resources.files("memae") / "configs"
    return sorted(
        p.name.removesuffix(".yaml")
        for p in folder.iterdir()
        if p.name.endswith(".yaml") and _is_video(load_yaml(p.read_text(encoding="utf-8")))
    )


def _is_video(data: Any) -> bool:
    return isinstance(data, dict) and "frames" in data


def load_experiment(name_or_path: str | Path) -> VideoExperiment:
    """A shipped configuration by name (``"ped2-cpu"``, ``"ped2-paper"``) or a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        data = load_settings(path, "video config file")
        try:
            return experiment_from_dict(data)
        except (TypeError, ValueError) as err:
            raise SettingsError(f"{path}: {err}") from err
    else:
        shipped = resources.files("memae") / "configs" / f"{name_or_path}.yaml"
        if not shipped.is_file():
            raise ValueError(
                f"unknown video config {str(name_or_path)!r}; "
                f"shipped configs: {', '.join(list_experiments())}"
            )
        text = shipped.read_text(encoding="utf-8")
    return experiment_from_dict(load_yaml(text) or {})


__all__ = [
    "ALIGNMENTS",
    "CLIP_REDUCTIONS",
    "FrameConfig",
    "ScoringConfig",
    "VideoExperiment",
    "experiment_from_dict",
    "list_experiments",
    "load_experiment",
]
