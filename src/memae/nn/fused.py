"""Memory addressing, read and addressing entropy as single autograd nodes.

The same equations as :mod:`memae.nn.functional` (Gong et al., ICCV 2019, Eqs. 3-7, 10)
with hand-written gradients. Autograd on the plain functions keeps about ten (M, N)
intermediates alive per step (the similarities, ``w - λ``, its ReLU and absolute value, the
products and quotients of the shrinkage, the log of the entropy); these nodes keep the
softmax weights ``w`` and the addressing weights ``ŵ`` only, and their backward passes
touch each (M, N) element a few times. Values equal the plain functions' bit for bit in the
forward pass and within float rounding in the backward pass
(``tests/unit/nn/test_fused.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from memae.nn import functional as MF

_NORM_EPS = 1e-12  # F.normalize's default
#: Below this many (query, slot) pairs the per-call Python cost of a custom node exceeds
#: what it saves, and autograd on the plain functions runs instead.
FUSE_MIN_ELEMENTS = 16384


def _shrink(weights: torch.Tensor, threshold: float) -> torch.Tensor:
    """``MF.hard_shrink`` with two temporaries and the same values.

    ``|w − λ|`` may be replaced by ``relu(w − λ)`` in the denominator: where they differ
    the numerator ``relu(w − λ) · w`` is 0 and the denominator stays ``≥ ε``.
    """
    shifted = (weights - threshold).relu_()
    denominator = shifted + MF.SHRINK_EPS
    return shifted.mul_(weights).div_(denominator)


def _address_read(
    queries: torch.Tensor, memory: torch.Tensor, threshold: float, kind: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward maths: ``(read, ŵ, w, row sums of the shrunk weights)``."""
    if kind == "cosine":
        sim = F.normalize(queries, dim=1) @ F.normalize(memory, dim=1).t()
    elif kind == "dot":
        sim = queries @ memory.t()
    else:
        raise ValueError(f"similarity must be one of {MF.SIMILARITIES}, got {kind!r}")
    soft = torch.softmax(sim, dim=1)
    del sim
    if threshold > 0:
        shrunk = _shrink(soft, threshold)
        sums = shrunk.sum(dim=1, keepdim=True)
        weights = shrunk.div_(sums.clamp_min(MF.SHRINK_EPS))
    else:
        weights, sums = soft, soft.new_ones(soft.shape[0], 1)
    return weights @ memory, weights, soft, sums


def _normalize_backward(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Gradient of ``F.normalize(x, dim=1)`` (``x / max(‖x‖, eps)``) given ``grad`` on its
    output: ``grad / n − x (x·grad) / n³`` where ``‖x‖ > eps``, ``grad / eps`` elsewhere.
    One temporary the size of ``x``."""
    norm = x.norm(dim=1, keepdim=True)
    inv = norm.clamp_min(_NORM_EPS).reciprocal()
    dots = torch.bmm(x.unsqueeze(1), grad.unsqueeze(2)).view(-1, 1)  # row-wise x·grad
    coef = dots * inv.pow(3) * (norm > _NORM_EPS)
    return (grad * inv).addcmul_(x, coef, value=-1.0)


class _AddressRead(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, queries: torch.Tensor, memory: torch.Tensor, threshold: float, kind: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        read, weights, soft, sums = _address_read(queries, memory, threshold, kind)
        ctx.threshold, ctx.kind = threshold, kind
        ctx.save_for_backward(queries, memory, weights, soft, sums)
        return read, weights

    @staticmethod
    def backward(ctx: Any, grad_read: torch.Tensor | None, grad_weights: torch.Tensor | None) -> Any:
        queries, memory, weights, soft, sums = ctx.saved_tensors
        threshold, kind = ctx.threshold, ctx.kind
        if grad_read is None:
            grad_w_hat = grad_weights.clone()
            grad_memory = torch.zeros_like(memory)
        else:
            if grad_weights is None:
                grad_w_hat = grad_read @ memory.t()
            else:
                grad_w_hat = torch.addmm(grad_weights, grad_read, memory.t())
            grad_memory = weights.t() @ grad_read
        if threshold > 0:
            # ŵ = h / max(Σh, ε): the L1 re-normalisation, then h = shrink(w) (Eq. 7).
            radial = (grad_w_hat * weights).sum(dim=1, keepdim=True) * (sums > MF.SHRINK_EPS)
            grad_h = grad_w_hat.sub_(radial).div_(sums.clamp_min(MF.SHRINK_EPS))
            # d/dw [(w-λ) w / (w-λ+ε)] = 1 + ε(λ-ε) / (w-λ+ε)² above λ, 0 at or below it;
            # above λ is where ŵ > 0.
            slope = (soft - (threshold - MF.SHRINK_EPS)).square_().reciprocal_()
            slope.mul_(MF.SHRINK_EPS * (threshold - MF.SHRINK_EPS)).add_(1.0)
            grad_soft = grad_h.mul_(slope.masked_fill_(weights <= 0, 0.0))
            del slope
        else:
            grad_soft = grad_w_hat
        # softmax: w ⊙ (g - Σ g w)
        grad_sim = grad_soft.sub_((grad_soft * soft).sum(dim=1, keepdim=True)).mul_(soft)
        if kind == "cosine":
            # one normalised operand alive at a time: they are as large as the memory
            grad_unit_q = grad_sim @ F.normalize(memory, dim=1)
            grad_queries = _normalize_backward(queries, grad_unit_q)
            del grad_unit_q
            grad_unit_m = grad_sim.t() @ F.normalize(queries, dim=1)
            grad_memory += _normalize_backward(memory, grad_unit_m)
        else:
            grad_queries = grad_sim @ memory
            grad_memory.addmm_(grad_sim.t(), queries)
        return grad_queries, grad_memory, None, None


def _differentiable(*tensors: torch.Tensor) -> bool:
    # Tracers (TorchScript, ONNX) see the plain maths: they cannot look inside a Function.
    return (
        torch.is_grad_enabled()
        and any(t.requires_grad for t in tensors)
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
    )


def address_read(
    queries: torch.Tensor, memory: torch.Tensor, shrink_threshold: float = 0.0, kind: str = "cosine"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(read, weights)`` of queries (M, C) on memory (N, C): ``MF.address`` then ``MF.read``.

    Returns ``ẑ = ŵ M`` (M, C) and ``ŵ`` (M, N) (Eqs. 3-7). One autograd node when a gradient
    is needed and the problem has at least :data:`FUSE_MIN_ELEMENTS` (query, slot) pairs;
    autograd on the plain functions for smaller ones; the forward maths alone otherwise.
    """
    if _differentiable(queries, memory):
        if queries.shape[0] * memory.shape[0] < FUSE_MIN_ELEMENTS:
            weights = MF.address(queries, memory, shrink_threshold, kind)  # type: ignore[arg-type]
            return MF.read(weights, memory), weights
        read, weights = _AddressRead.apply(queries, memory, float(shrink_threshold), kind)
        return read, weights
    read, weights, _, _ = _address_read(queries, memory, float(shrink_threshold), kind)
    return read, weights


def _rows(weights: torch.Tensor) -> torch.Tensor:
    """Weights with the slots on dimension 1 as (queries, slots) rows; a view when the
    slots are the innermost dimension in memory, as :class:`MemoryModule` returns them."""
    return weights.movedim(1, -1).reshape(-1, weights.shape[1])


class _Entropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, weights: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        ctx.eps = eps
        ctx.save_for_backward(weights)
        rows = _rows(weights)
        # Σ_q Σ_i −ŵ log(ŵ + ε) / Q as one dot product of the flattened rows
        logs = (rows + eps).log_()
        return -torch.dot(rows.reshape(-1), logs.reshape(-1)) / max(rows.shape[0], 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        (weights,) = ctx.saved_tensors
        rows = _rows(weights)
        shifted = rows + ctx.eps
        # d/dw [-w log(w + ε)] = -(log(w + ε) + w / (w + ε)), averaged over the queries
        grad_rows = torch.div(rows, shifted).add_(shifted.log_()).mul_(-grad / max(rows.shape[0], 1))
        lead = weights.movedim(1, -1).shape
        return grad_rows.view(lead).movedim(-1, 1), None


def addressing_entropy(weights: torch.Tensor, eps: float = MF.ENTROPY_EPS) -> torch.Tensor:
    """:func:`memae.nn.functional.addressing_entropy` as one autograd node (the same
    value up to the order of the summation)."""
    if _differentiable(weights) and weights.numel() >= FUSE_MIN_ELEMENTS:
        return _Entropy.apply(weights, eps)
    return MF.addressing_entropy(weights, eps)


__all__ = ["address_read", "addressing_entropy"]
