"""The memory-augmented autoencoder and the builder that assembles it from a config."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn

from memae.config import ModelConfig, get_variant
from memae.nn.backbones import Addressing, auto_backbone, build_backbone
from memae.nn.memory import MemoryModule


class Reconstruction(NamedTuple):
    """Output of :class:`MemAE`: the reconstruction, the encoding ``z`` and the weights ``ŵ``.

    ``weights`` is ``None`` for the memory-less variants (AE, AE-ℓ1).
    """

    output: torch.Tensor
    latent: torch.Tensor
    weights: torch.Tensor | None


class MemAE(nn.Module):
    """Encoder -> memory -> decoder (Gong et al., 2019, Fig. 2).

    With ``memory=None`` this is the plain autoencoder of the same capacity.
    ``addressing="global"`` makes the flattened encoding one query; ``"location"`` makes
    every spatial / spatio-temporal position of a channel-first encoding a query.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_shape: tuple[int, ...],
        memory: MemoryModule | None,
        addressing: Addressing,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.memory = memory
        self.latent_shape = tuple(latent_shape)
        self.addressing: Addressing = addressing

    def forward(self, x: torch.Tensor) -> Reconstruction:
        z = self.encoder(x)
        if self.memory is None:
            return Reconstruction(self.decoder(z), z, None)
        if self.addressing == "global":
            mem = self.memory(z.flatten(1))
            z_hat = mem.read.view_as(z)
        else:
            mem = self.memory(z)
            z_hat = mem.read
        return Reconstruction(self.decoder(z_hat), z, mem.weights)

    @torch.no_grad()
    def decode_slots(self, slots: torch.Tensor | None = None) -> torch.Tensor:
        """Decode single memory slots (SPEC §7's figure): (K,) slot indices -> (K, *input).

        With per-location addressing a slot is placed at every position of the encoding.
        """
        if self.memory is None:
            raise ValueError("this variant has no memory to decode")
        memory = self.memory.memory if slots is None else self.memory.memory[slots]
        if self.addressing == "global":
            z = memory.view(-1, *self.latent_shape)
        else:
            view = (memory.shape[0], memory.shape[1]) + (1,) * (len(self.latent_shape) - 1)
            z = memory.view(view).expand(-1, *self.latent_shape)
        return self.decoder(z)


def authors_init(model: nn.Module, std: float = 0.02) -> None:
    """Re-draw the weights in place as the authors' code does: conv and transposed-conv
    weights ~ N(0, std²) (their biases keep PyTorch's draw), batch-norm scale ~ N(1, std²)
    and shift = 0. Linear layers and the memory keep their own initialisation."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.conv._ConvNd):
                module.weight.normal_(0.0, std)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                module.weight.normal_(1.0, std)
                module.bias.zero_()


def resolve_model_config(config: ModelConfig) -> ModelConfig:
    """Fill every ``"auto"``/``None`` field of ``config`` with a concrete value."""
    name = auto_backbone(config.input_shape) if config.backbone == "auto" else config.backbone
    backbone = build_backbone(name, config.input_shape, config.width)
    variant = get_variant(config.variant)
    addressing = backbone.addressing if config.addressing == "auto" else config.addressing
    if addressing == "location" and len(backbone.latent_shape) < 2:
        raise ValueError(
            f"per-location addressing needs a feature-map encoding, backbone {name!r} gives a vector"
        )
    size = config.memory_size or backbone.memory_size
    threshold = config.shrink_threshold if config.shrink_threshold is not None else 1.0 / size
    return dataclasses.replace(
        config,
        backbone=name,
        variant=variant.name,
        memory_size=size,
        shrink_threshold=threshold,
        addressing=addressing,
    )


def build_model(config: ModelConfig) -> tuple[MemAE, ModelConfig]:
    """Build the network for ``config``; returns it with the resolved config."""
    config = resolve_model_config(config)
    backbone = build_backbone(config.backbone, config.input_shape, config.width)
    variant = get_variant(config.variant)
    memory = None
    if variant.memory:
        assert config.memory_size is not None and config.shrink_threshold is not None
        latent = backbone.latent_shape
        slot_dim = latent[0] if config.addressing == "location" else int(torch.Size(latent).numel())
        memory = MemoryModule(
            config.memory_size,
            slot_dim,
            shrink_threshold=config.shrink_threshold if variant.shrinkage else 0.0,
            similarity=config.similarity,  # type: ignore[arg-type]
        )
    model = MemAE(backbone.encoder, backbone.decoder, backbone.latent_shape, memory, config.addressing)  # type: ignore[arg-type]
    if config.weight_init == "authors":
        authors_init(model)
    return model, config
