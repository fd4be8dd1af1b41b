"""Typed, complete configuration: the model, its variant, and training.

YAML/JSON are only the serialisation of these frozen dataclasses
(:func:`config_from_dict` / :func:`dataclasses.asdict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

AddressingMode = Literal["auto", "global", "location"]
ScoreReduction = Literal["mse", "l2"]
Similarity = Literal["cosine", "dot"]
SIMILARITIES: tuple[str, ...] = ("cosine", "dot")
Schedule = Literal["constant", "cosine", "step"]
WeightInit = Literal["torch", "authors"]
WEIGHT_INITS: tuple[str, ...] = ("torch", "authors")


@dataclass(frozen=True)
class Variant:
    """One row of the paper's ablation (SPEC §4): which parts of MemAE are switched on."""

    name: str
    title: str
    memory: bool
    shrinkage: bool
    entropy: bool
    latent_l1: bool


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("ae", "AE", memory=False, shrinkage=False, entropy=False, latent_l1=False),
        Variant("ae-l1", "AE-ℓ1", memory=False, shrinkage=False, entropy=False, latent_l1=True),
        Variant(
            "memae-nonspar", "MemAE-nonSpar", memory=True, shrinkage=False, entropy=False, latent_l1=False
        ),
        Variant(
            "memae-noshrink",
            "MemAE w/o shrinkage",
            memory=True,
            shrinkage=False,
            entropy=True,
            latent_l1=False,
        ),
        Variant(
            "memae-noentropy",
            "MemAE w/o entropy loss",
            memory=True,
            shrinkage=True,
            entropy=False,
            latent_l1=False,
        ),
        Variant("memae", "MemAE", memory=True, shrinkage=True, entropy=True, latent_l1=False),
    )
}
_ALIASES = {
    **{v.title.lower(): v.name for v in VARIANTS.values()},
    "ae-ℓ1": "ae-l1",
    "memae-nonsparse": "memae-nonspar",
    "memae w/o shrinkage": "memae-noshrink",
    "memae w/o entropy loss": "memae-noentropy",
    "memae w/o entropy": "memae-noentropy",
}


def get_variant(name: str) -> Variant:
    """Look a variant up by its key (``"memae-nonspar"``) or the paper's row title."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known variants: {', '.join(VARIANTS)}")
    return VARIANTS[key]


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides the network and its loss.

    ``None`` / ``"auto"`` fields are filled from the backbone by
    :func:`memae.models.resolve_model_config`; a checkpoint stores the resolved config.
    ``shrink_threshold=None`` means ``1/N`` (the paper advises λ ∈ [1/N, 3/N]).
    ``weight_init``: ``"torch"`` keeps PyTorch's default initialisation; ``"authors"`` draws
    conv and transposed-conv weights from N(0, 0.02²), batch-norm scales from N(1, 0.02²) and
    sets batch-norm shifts to 0, as the authors' code does (SPEC §8; the paper does not say).
    """

    input_shape: tuple[int, ...]
    backbone: str = "auto"
    variant: str = "memae"
    width: float = 1.0
    memory_size: int | None = None
    shrink_threshold: float | None = None
    entropy_weight: float = 0.0002
    l1_weight: float = 1e-4
    similarity: str = "cosine"
    addressing: AddressingMode = "auto"
    weight_init: WeightInit = "torch"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        if not self.input_shape or min(self.input_shape) < 1:
            raise ValueError(
                f"input_shape must be a non-empty tuple of positive ints, got {self.input_shape}"
            )
        get_variant(self.variant)
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        if self.addressing not in ("auto", "global", "location"):
            raise ValueError(f"addressing must be 'auto', 'global' or 'location', got {self.addressing!r}")
        if self.weight_init not in WEIGHT_INITS:
            raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {self.weight_init!r}")
        if self.memory_size is not None and self.memory_size < 1:
            raise ValueError(f"memory_size must be >= 1, got {self.memory_size}")
        if self.shrink_threshold is not None and not 0 <= self.shrink_threshold < 1:
            raise ValueError(f"shrink_threshold must lie in [0, 1), got {self.shrink_threshold}")
        for name in ("entropy_weight", "l1_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.width <= 0:
            raise ValueError(f"width must be > 0, got {self.width}")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation: Adam with an optional schedule, a validation split and a seed."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Schedule = "constant"
    validation_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    #: train conv nets with channels-last weights and activations
    #: (:func:`memae.fast.use_channels_last`); ``"auto"``: 2-D conv nets on the CPU, where
    #: it trained the MNIST and CIFAR-10 nets faster (:func:`memae.fast.train_channels_last`)
    channels_last: bool | Literal["auto"] = "auto"
    #: run each step's forward pass and loss through ``torch.compile`` (static shapes): the
    #: first steps wait for the compiler (seconds, and again for a differently sized last
    #: batch), the rest run faster for most backbones (docs/PERFORMANCE.md)
    compile: bool = False
    progress: bool = False
    #: stop once the validation loss has not improved for this many epochs (``None``: never)
    early_stopping: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in ("constant", "cosine", "step"):
            raise ValueError(f"schedule must be 'constant', 'cosine' or 'step', got {self.schedule!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must lie in [0, 1), got {self.validation_fraction}")
        if not (isinstance(self.channels_last, bool) or self.channels_last == "auto"):
            raise ValueError(f"channels_last must be True, False or 'auto', got {self.channels_last!r}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise ValueError(f"early_stopping must be None or >= 1 epochs, got {self.early_stopping}")


T = TypeVar("T")


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a config dataclass from a mapping, naming any unknown keys."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a mapping for {cls.__name__}, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")
    return cls(**data)


__all__ = [
    "VARIANTS",
    "ModelConfig",
    "TrainConfig",
    "Variant",
    "config_from_dict",
    "get_variant",
]
