"""Memory addressing, read and addressing entropy as single autograd nodes.

The same equations as :mod:`memae.nn.functional` (Gong et al., ICCV 2019, Eqs. 3-7, 10)
with hand-written gradients. Autograd on the plain functions keeps about ten (M, N)
intermediates alive per step (the similarities, ``w - λ``, its ReLU and absolute value, the
products and quotients of the shrinkage, the log of the entropy) and runs some forty small
operations; these nodes keep the softmax weights ``w``, the addressing weights ``ŵ``, the
entropy's slope and, where it is the smaller, the (M, N) similarity, touch each (M, N)
element a few times, and compute the softmax's backward in one kernel and the memory's
gradient in one product. Cosine similarity either normalises copies of the queries and the
memory or scales the (M, N) product by their norms, whichever writes less. Values equal the
plain functions' within float rounding, forward and backward (``tests/unit/nn/test_fused.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from memae.nn import functional as MF

_NORM_EPS = 1e-12  # F.normalize's default
_NARROW = 16


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b``. A tall, narrow product (KDDCUP's memory has 3 columns) is computed as
    ``(bᵀ aᵀ)ᵀ``: CPU BLAS writes a few long rows several times faster than many short ones."""
    if b.shape[1] < _NARROW and a.shape[0] > 4 * b.shape[1]:
        return torch.mm(b.t(), a.t()).t()
    return torch.mm(a, b)


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
    return _mm(weights, memory), weights, soft, sums


def _inverse_norms(x: torch.Tensor) -> torch.Tensor:
    """``1 / max(‖x_i‖, eps)`` of every row: what :func:`F.normalize` divides by."""
    return torch.linalg.vector_norm(x, dim=1).clamp_min_(_NORM_EPS).reciprocal_()


def _scale_products(queries: torch.Tensor, memory: torch.Tensor) -> bool:
    """Whether cosine similarity should scale the (M, N) product by the norms rather than
    normalise copies of the operands: whichever touches fewer elements. Global memories
    (MNIST, CIFAR-10: few queries, wide slots) scale; per-location video addressing (many
    queries) and narrow slots (KDDCUP) normalise."""
    rows, slots, dim = queries.shape[0], memory.shape[0], queries.shape[1]
    return rows * slots < (rows + slots) * dim


def _train_forward(
    queries: torch.Tensor, memory: torch.Tensor, threshold: float, kind: str
) -> tuple[torch.Tensor, ...]:
    """The forward maths of the autograd node, arranged for its backward pass.

    Cosine similarities are either ``(q mᵀ) ⊙ (1/‖q‖) (1/‖m‖)ᵀ`` (the norms scale the
    (M, N) product; nothing the size of the memory is written) or the product of normalised
    copies, by :func:`_scale_products`. Equal to :func:`_address_read` within float rounding.
    Returns ``(read, ŵ, w, Σ shrink(w), similarities or empty, 1/‖q‖, 1/‖m‖)``.
    """
    empty = queries.new_empty(0)
    scaled = kind == "cosine" and _scale_products(queries, memory)
    if kind == "cosine":
        inv_q, inv_m = _inverse_norms(queries), _inverse_norms(memory)
        if scaled:
            sim = torch.mm(queries, memory.t()).mul_(inv_q.unsqueeze(1)).mul_(inv_m)
        else:
            sim = torch.mm(queries * inv_q.unsqueeze(1), (memory * inv_m.unsqueeze(1)).t())
    elif kind == "dot":
        inv_q = inv_m = empty
        sim = torch.mm(queries, memory.t())
    else:
        raise ValueError(f"similarity must be one of {MF.SIMILARITIES}, got {kind!r}")
    soft = torch.softmax(sim, dim=1)
    if not scaled:
        sim = empty  # only the scaled products' backward pass reads the similarities
    if threshold > 0:
        shrunk = _shrink(soft, threshold)
        sums = shrunk.sum(dim=1, keepdim=True)
        weights = shrunk.div_(sums.clamp_min(MF.SHRINK_EPS))
    else:
        weights, sums = soft, empty
    return _mm(weights, memory), weights, soft, sums, sim, inv_q, inv_m


def _normalize_backward(x: torch.Tensor, grad: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """Gradient of ``F.normalize(x, dim=1)`` given ``grad`` on its output and ``inv =
    1/max(‖x‖, ε)``: ``g/n − x (x·g)/n³`` where ``‖x‖ > ε``, ``g/ε`` elsewhere; in place
    on ``grad``."""
    dots = torch.bmm(x.unsqueeze(1), grad.unsqueeze(2)).view(-1)  # row-wise x·g
    coef = dots.mul_(inv.pow(3)).mul_(inv < 1 / _NORM_EPS)
    return grad.mul_(inv.unsqueeze(1)).addcmul_(x, coef.unsqueeze(1), value=-1.0)


class _AddressRead(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, queries: torch.Tensor, memory: torch.Tensor, threshold: float, kind: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        read, weights, soft, sums, sim, inv_q, inv_m = _train_forward(queries, memory, threshold, kind)
        ctx.threshold, ctx.kind = threshold, kind
        ctx.save_for_backward(queries, memory, weights, soft, sums, sim, inv_q, inv_m)
        return read, weights

    @staticmethod
    def backward(ctx: Any, grad_read: torch.Tensor | None, grad_weights: torch.Tensor | None) -> Any:
        queries, memory, weights, soft, sums, sim, inv_q, inv_m = ctx.saved_tensors
        threshold, kind = ctx.threshold, ctx.kind
        if grad_read is None:
            grad_read = torch.zeros_like(queries)
        # ẑ = ŵ M (Eq. 3)
        if grad_weights is None:
            grad_w_hat = torch.mm(grad_read, memory.t())
        else:
            grad_w_hat = torch.addmm(grad_weights, grad_read, memory.t())
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
        # softmax, in one kernel: w ⊙ (g - Σ g w)
        grad_sim = torch.ops.aten._softmax_backward_data(grad_soft, soft, 1, soft.dtype)
        del grad_soft
        if kind == "dot":
            grad_queries = _mm(grad_sim, memory)
            # M̂'s two terms, ŵᵀ ∂ẑ + ∂sᵀ q, as one product
            grad_memory = _mm(torch.cat([weights, grad_sim]).t(), torch.cat([grad_read, queries]))
            return grad_queries, grad_memory, None, None
        if sim.numel() == 0:  # normalised copies: s = q̂ m̂ᵀ
            grad_queries = _normalize_backward(queries, _mm(grad_sim, memory * inv_m.unsqueeze(1)), inv_q)
            grad_memory = _normalize_backward(memory, _mm(grad_sim.t(), queries * inv_q.unsqueeze(1)), inv_m)
            return grad_queries, grad_memory.addmm_(weights.t(), grad_read), None, None
        # scaled products: s = (q · m) a b with a = 1/max(‖q‖, ε), b = 1/max(‖m‖, ε)
        # (F.normalize's gradient: g/n − x (x · g)/n³ where ‖x‖ > ε, g/ε elsewhere). The row
        # dots x · g that the normalisation needs are sums over the (M, N) product ∂s ⊙ s.
        weighted = grad_sim * sim
        coef_q = weighted.sum(dim=1).mul_(inv_q.square()).mul_(inv_q < 1 / _NORM_EPS)
        coef_m = weighted.sum(dim=0).mul_(inv_m.square()).mul_(inv_m < 1 / _NORM_EPS)
        del weighted
        grad_sim.mul_(inv_m)  # ∂s b
        grad_queries = _mm(grad_sim, memory).mul_(inv_q.unsqueeze(1))
        grad_queries.addcmul_(queries, coef_q.unsqueeze(1), value=-1.0)
        grad_sim.mul_(inv_q.unsqueeze(1))  # ∂s a b
        grad_memory = _mm(torch.cat([weights, grad_sim]).t(), torch.cat([grad_read, queries]))
        grad_memory.addcmul_(memory, coef_m.unsqueeze(1), value=-1.0)
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
    is needed; the forward maths alone otherwise.
    """
    if _differentiable(queries, memory):
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
        rows = _rows(weights)
        queries = max(rows.shape[0], 1)
        shifted = rows + eps
        logs = torch.log(shifted)
        # Σ_q Σ_i −ŵ log(ŵ + ε) / Q as one dot product of the flattened rows
        value = -torch.dot(rows.reshape(-1), logs.reshape(-1)) / queries
        # d/dw [-w log(w + ε)] = -(log(w + ε) + w / (w + ε)): made here, where the log is at
        # hand, so that the backward pass is one product
        ctx.save_for_backward(logs.add_(shifted.reciprocal_().mul_(rows)))
        ctx.queries, ctx.lead = queries, weights.movedim(1, -1).shape
        return value

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        (slope,) = ctx.saved_tensors
        grad_rows = slope * (-grad / ctx.queries)
        return grad_rows.view(ctx.lead).movedim(-1, 1), None


def addressing_entropy(weights: torch.Tensor, eps: float = MF.ENTROPY_EPS) -> torch.Tensor:
    """:func:`memae.nn.functional.addressing_entropy` as one autograd node (the same
    value up to the order of the summation)."""
    if _differentiable(weights):
        return _Entropy.apply(weights, eps)
    return MF.addressing_entropy(weights, eps)


__all__ = ["address_read", "addressing_entropy"]
