"""The memory module of MemAE (Gong et al., ICCV 2019, Section 3.3)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from memae.nn import functional as MF
from memae.nn import fused


class MemoryOutput(NamedTuple):
    """What a memory read returns.

    ``read`` has the query's shape; ``weights`` are the addressing weights ``ŵ`` with the
    slots on dimension 1: (B, N) for a (B, C) query, (B, N, *spatial) for (B, C, *spatial).
    """

    read: torch.Tensor
    weights: torch.Tensor


class MemoryModule(nn.Module):
    """A memory of ``num_slots`` prototypes, read by sparse attention-based addressing.

    The memory is the trainable parameter ``memory`` of shape (num_slots, slot_dim). A query
    is (B, slot_dim), or channel-first (B, slot_dim, *spatial) in which case every position
    is addressed on its own (per-location addressing, as the video model does).

    Example:
        >>> mem = MemoryModule(num_slots=100, slot_dim=16, shrink_threshold=0.01)
        >>> out = mem(torch.randn(4, 16, 3, 3))
        >>> out.read.shape, out.weights.shape
        (torch.Size([4, 16, 3, 3]), torch.Size([4, 100, 3, 3]))
    """

    def __init__(
        self,
        num_slots: int,
        slot_dim: int,
        shrink_threshold: float = 0.0,
        similarity: MF.Similarity = "cosine",
    ) -> None:
        super().__init__()
        if num_slots < 1 or slot_dim < 1:
            raise ValueError(f"num_slots and slot_dim must be >= 1, got {num_slots} and {slot_dim}")
        if not 0.0 <= shrink_threshold < 1.0:
            raise ValueError(f"shrink_threshold must lie in [0, 1), got {shrink_threshold}")
        if similarity not in MF.SIMILARITIES:
            raise ValueError(f"similarity must be one of {MF.SIMILARITIES}, got {similarity!r}")
        self.num_slots = num_slots
        self.slot_dim = slot_dim
        self.shrink_threshold = float(shrink_threshold)
        self.similarity: MF.Similarity = similarity
        self.memory = nn.Parameter(torch.empty(num_slots, slot_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in ±1/sqrt(slot_dim), as the authors' code initialises the memory."""
        bound = 1.0 / math.sqrt(self.slot_dim)
        nn.init.uniform_(self.memory, -bound, bound)

    def forward(self, query: torch.Tensor) -> MemoryOutput:
        if query.dim() < 2 or query.shape[1] != self.slot_dim:
            raise ValueError(
                f"expected a query of shape (B, {self.slot_dim}) or (B, {self.slot_dim}, *spatial), "
                f"got {tuple(query.shape)}"
            )
        if query.dim() == 2:  # rows already: no views for autograd to walk back through
            read, weights = fused.address_read(query, self.memory, self.shrink_threshold, self.similarity)
            return MemoryOutput(read=read, weights=weights)
        # Non-negative dims throughout: the ONNX exporter turns movedim(-1, 1) of a 2-D
        # tensor into a Transpose with perm (0, -1), which onnxruntime rejects.
        last = query.dim() - 1
        rows = query.movedim(1, last)  # channels last: (B, *spatial, C)
        flat = rows.reshape(-1, self.slot_dim)
        # MF.address then MF.read, as one autograd node (memae.nn.fused)
        read, weights = fused.address_read(flat, self.memory, self.shrink_threshold, self.similarity)
        lead = rows.shape[:-1]
        return MemoryOutput(
            read=read.reshape(*lead, self.slot_dim).movedim(last, 1),
            weights=weights.reshape(*lead, self.num_slots).movedim(last, 1),
        )

    def extra_repr(self) -> str:
        return (
            f"num_slots={self.num_slots}, slot_dim={self.slot_dim}, "
            f"shrink_threshold={self.shrink_threshold}, similarity={self.similarity!r}"
        )
