"""The training objective (Gong et al., 2019, Eq. 10) and the per-sample anomaly score."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from memae.config import ModelConfig, get_variant
from memae.nn.fused import addressing_entropy
from memae.nn.model import Reconstruction


class LossTerms(NamedTuple):
    """The objective and its parts (each a scalar tensor)."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    entropy: torch.Tensor
    sparsity: torch.Tensor


def memae_loss(x: torch.Tensor, rec: Reconstruction, config: ModelConfig) -> LossTerms:
    """``R(x, x̂) + α E(ŵ)`` (+ ``β |z|₁`` for AE-ℓ1), with R the mean squared error.

    The variant in ``config`` decides which terms are on (SPEC §4).
    """
    variant = get_variant(config.variant)
    reconstruction = F.mse_loss(rec.output, x)
    zero = reconstruction.new_zeros(())
    entropy = addressing_entropy(rec.weights) if rec.weights is not None else zero
    sparsity = rec.latent.abs().mean() if variant.latent_l1 else zero
    total = reconstruction
    if variant.entropy:
        total = total + config.entropy_weight * entropy
    if variant.latent_l1:
        total = total + config.l1_weight * sparsity
    return LossTerms(total, reconstruction, entropy, sparsity)


def reconstruction_error(x: torch.Tensor, output: torch.Tensor, reduction: str = "mse") -> torch.Tensor:
    """Per-sample reconstruction error, the anomaly score: (B, ...) -> (B,).

    ``"mse"``: mean of squared errors over every element (the images' and records' score).
    ``"l2"``: per position the ℓ2 norm of the error over channels, then the mean over
    positions (the authors' video score).
    """
    diff = output - x
    if reduction == "mse":
        return diff.pow(2).flatten(1).mean(dim=1)
    if reduction == "l2":
        if diff.dim() < 3:
            raise ValueError(f"'l2' reduction needs channel-first samples, got shape {tuple(x.shape)}")
        return diff.pow(2).sum(dim=1).sqrt().flatten(1).mean(dim=1)
    raise ValueError(f"reduction must be 'mse' or 'l2', got {reduction!r}")
