"""The equations of MemAE as pure functions (Gong et al., ICCV 2019, Eqs. 3-7, 10).

Every function works on rows: queries of shape (M, C) against a memory of shape (N, C),
weights of shape (M, N). :class:`memae.nn.MemoryModule` brings every tensor rank to rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from memae.config import SIMILARITIES, Similarity

#: The epsilon of the differentiable hard shrinkage (the authors' code uses 1e-12).
SHRINK_EPS = 1e-12
#: Guards ``log(0)`` in the addressing entropy.
ENTROPY_EPS = 1e-12


def similarity(queries: torch.Tensor, memory: torch.Tensor, kind: Similarity = "cosine") -> torch.Tensor:
    """Similarity ``d(z, m_i)`` of every query to every slot (Eq. 5).

    ``cosine`` is the paper's ``z m_i^T / (|z| |m_i|)``; ``dot`` is the authors' code,
    ``z m_i^T`` without normalisation. Shapes: (M, C) x (N, C) -> (M, N).
    """
    if kind == "cosine":
        return F.normalize(queries, dim=1) @ F.normalize(memory, dim=1).t()
    if kind == "dot":
        return queries @ memory.t()
    raise ValueError(f"similarity must be one of {SIMILARITIES}, got {kind!r}")


def hard_shrink(weights: torch.Tensor, threshold: float, eps: float = SHRINK_EPS) -> torch.Tensor:
    """Hard shrinkage in its differentiable ReLU form (Eq. 7).

    ``max(w - λ, 0) * w / (|w - λ| + ε)``: weights at or below ``λ`` become 0, the others
    keep (almost exactly) their value.
    """
    return F.relu(weights - threshold) * weights / ((weights - threshold).abs() + eps)


def l1_normalize(weights: torch.Tensor, eps: float = SHRINK_EPS) -> torch.Tensor:
    """Re-normalise each row to sum 1 (``ŵ / ‖ŵ‖₁``); an all-zero row stays all zeros."""
    return weights / weights.abs().sum(dim=1, keepdim=True).clamp_min(eps)


def address(
    queries: torch.Tensor,
    memory: torch.Tensor,
    shrink_threshold: float = 0.0,
    kind: Similarity = "cosine",
) -> torch.Tensor:
    """Addressing weights ``ŵ`` of queries (M, C) over memory (N, C) -> (M, N) (Eqs. 4-7).

    Softmax over the similarities; with ``shrink_threshold > 0`` the hard shrinkage and the
    L1 re-normalisation follow. ``shrink_threshold == 0`` returns the plain softmax.
    """
    weights = torch.softmax(similarity(queries, memory, kind), dim=1)
    if shrink_threshold > 0:
        weights = l1_normalize(hard_shrink(weights, shrink_threshold))
    return weights


def read(weights: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """Memory read ``ẑ = ŵ M`` (Eq. 3): (M, N) x (N, C) -> (M, C)."""
    return weights @ memory


def addressing_entropy(weights: torch.Tensor, eps: float = ENTROPY_EPS) -> torch.Tensor:
    """Mean entropy ``Σ_i -ŵ_i log ŵ_i`` of rows of addressing weights (Eq. 10's E term).

    ``weights`` has the slots on dimension 1: (M, N) or (B, N, *spatial); the entropy is
    averaged over every query. Zero weights contribute 0 (``eps`` guards the log).
    """
    return (-weights * torch.log(weights + eps)).sum(dim=1).mean()
