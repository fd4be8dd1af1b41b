"""Memory diagnostics: how a trained MemAE addresses its memory over a dataset.

SPEC §9 lists what goes wrong in practice: the addressing collapses onto one slot, most
slots are never used, or (cosine similarity with λ near ``e²/N``) every weight of a query
falls under λ so the read is all zeros. :func:`inspect_memory` measures each of these and
warns; :func:`decode_slots` turns slots into pictures for image models.

Definitions (a *query* is one addressing row: a sample under global addressing, one
position of the encoding per sample under per-location addressing):

* *usage* of a slot: its weight averaged over all queries (the addressing mass it gets);
* a slot is *used* by a query when its weight is at least ``1/N`` (the uniform weight; with
  the default λ = 1/N every weight surviving the shrinkage is); *dead* when no query uses it;
* *empty* query: all its weights are zero after the shrinkage, so its read is zero;
* *entropy*: the mean per-query addressing entropy ``Σ -ŵ log ŵ`` (nats, at most log N);
* *effective slots*: ``exp`` of the entropy of the normalised usage — how many slots the
  dataset spreads its mass over.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memae.nn.functional import ENTROPY_EPS

#: Warn when one slot takes more than this share of the addressing mass.
COLLAPSE_SHARE = 0.5
#: Warn when at least this share of the slots is dead.
DEAD_SHARE = 0.9
#: Warn when more than this share of the queries is empty.
EMPTY_SHARE = 0.01


@dataclass(frozen=True)
class MemoryReport:
    """Addressing statistics over a dataset; arrays have one entry per slot."""

    n_samples: int
    n_queries: int
    n_slots: int
    shrink_threshold: float
    usage: np.ndarray
    top1_share: np.ndarray
    used_share: np.ndarray
    mean_entropy: float
    effective_slots: float
    dead_slots: int
    empty_query_share: float
    warnings: tuple[str, ...]

    @property
    def max_entropy(self) -> float:
        return float(np.log(self.n_slots))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "n_samples": self.n_samples,
            "n_queries": self.n_queries,
            "n_slots": self.n_slots,
            "shrink_threshold": self.shrink_threshold,
            "mean_entropy": self.mean_entropy,
            "max_entropy": self.max_entropy,
            "effective_slots": self.effective_slots,
            "dead_slots": self.dead_slots,
            "empty_query_share": self.empty_query_share,
            "warnings": list(self.warnings),
            "usage": self.usage.tolist(),
            "top1_share": self.top1_share.tolist(),
            "used_share": self.used_share.tolist(),
        }

    def summary(self) -> str:
        """A few lines for people."""
        top = np.argsort(self.usage)[::-1][:5]
        lines = [
            f"memory: {self.n_slots} slots, λ = {self.shrink_threshold:.4g}; "
            f"{self.n_queries} queries from {self.n_samples} samples",
            f"addressing entropy: {self.mean_entropy:.4g} nats per query "
            f"(max log N = {self.max_entropy:.4g})",
            f"effective slots: {self.effective_slots:.1f} of {self.n_slots}; "
            f"dead slots (never weighted >= 1/N): {self.dead_slots}",
            f"empty queries (no slot above λ, read = 0): {100 * self.empty_query_share:.2f} %",
            "most used slots: "
            + ", ".join(f"#{i} ({100 * self.usage[i] / max(self.usage.sum(), 1e-12):.1f} %)" for i in top),
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def summarize_weights(
    batches: Iterable[np.ndarray], n_slots: int, shrink_threshold: float = 0.0, n_samples: int | None = None
) -> MemoryReport:
    """A :class:`MemoryReport` from batches of addressing rows, each (queries, n_slots)."""
    usage = np.zeros(n_slots)
    top1 = np.zeros(n_slots)
    used = np.zeros(n_slots)
    entropy = 0.0
    empty = 0
    n_queries = 0
    floor = (1.0 / n_slots) * (1.0 - 1e-6)  # float32 rounding of an exactly uniform weight
    for rows in batches:
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != n_slots:
            raise ValueError(f"expected addressing rows of shape (queries, {n_slots}), got {rows.shape}")
        is_empty = rows.sum(axis=1) < 0.5  # rows sum to 1, or to 0 after a full shrinkage
        usage += rows.sum(axis=0)
        top1 += np.bincount(rows[~is_empty].argmax(axis=1), minlength=n_slots)
        used += (rows >= floor).sum(axis=0)
        entropy += float((-rows * np.log(rows + ENTROPY_EPS)).sum())
        empty += int(is_empty.sum())
        n_queries += len(rows)
    if n_queries == 0:
        raise ValueError("no addressing rows to summarise: the data is empty")
    mass = usage / max(usage.sum(), 1e-12)
    nonzero = mass[mass > 0]
    effective = float(np.exp(-(nonzero * np.log(nonzero)).sum())) if nonzero.size else 0.0
    dead = int((used == 0).sum())
    empty_share = empty / n_queries
    warnings = []
    if usage.sum() > 0 and n_slots > 1 and mass.max() > COLLAPSE_SHARE:
        warnings.append(
            f"addressing collapsed: slot {int(mass.argmax())} takes {100 * mass.max():.1f} % "
            "of the addressing mass"
        )
    if n_slots > 1 and dead >= DEAD_SHARE * n_slots:
        warnings.append(f"most slots are dead: {dead} of {n_slots} are never weighted >= 1/N")
    if empty_share > EMPTY_SHARE:
        warnings.append(
            f"{100 * empty_share:.1f} % of queries have no weight above λ = {shrink_threshold:.4g}, "
            "so their memory read is all zeros (lower λ, or use dot similarity; SPEC §9)"
        )
    return MemoryReport(
        n_samples=n_queries if n_samples is None else n_samples,
        n_queries=n_queries,
        n_slots=n_slots,
        shrink_threshold=float(shrink_threshold),
        usage=usage / n_queries,
        top1_share=top1 / n_queries,
        used_share=used / n_queries,
        mean_entropy=entropy / n_queries,
        effective_slots=effective,
        dead_slots=dead,
        empty_query_share=empty_share,
        warnings=tuple(warnings),
    )


def _memory(detector: Any) -> Any:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(detector, "model_")
    memory = detector.model_.memory
    if memory is None:
        raise ValueError(f"variant {detector.model_config_.variant!r} has no memory to inspect")
    return memory


def inspect_memory(detector: Any, X: Any, batch_size: int = 256) -> MemoryReport:
    """Addressing statistics of a fitted :class:`memae.MemAEDetector` over ``X``.

    Example:
        >>> report = inspect_memory(detector, X_train)
        >>> print(report.summary()); report.warnings
    """
    memory = _memory(detector)
    data = detector._validated(X)  # checked and preprocessed once: tables, images and clips alike

    def rows() -> Iterable[np.ndarray]:
        for start in range(0, len(data), batch_size):
            weights = detector._forward_prepared(data[start : start + batch_size])[1]
            assert weights is not None  # _memory() refused the memory-less variants
            yield np.moveaxis(weights, 1, -1).reshape(-1, memory.num_slots)

    return summarize_weights(rows(), memory.num_slots, memory.shrink_threshold, n_samples=len(data))


def decode_slots(detector: Any, slots: Any = None) -> np.ndarray:
    """Decode single memory slots to samples in the input's units: (K, *sample).

    ``slots`` are slot indices (default: all). Per-location memories place the slot at every
    position of the encoding (:meth:`memae.nn.MemAE.decode_slots`).
    """
    import torch

    memory = _memory(detector)
    index = (
        torch.arange(memory.num_slots) if slots is None else torch.as_tensor(np.array(slots, dtype=np.int64))
    )
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= memory.num_slots):
        raise ValueError(f"slot indices must lie in [0, {memory.num_slots}), got {index.tolist()}")
    detector.model_.eval()
    decoded = detector.model_.decode_slots(index.to(memory.memory.device)).cpu().numpy()
    return detector.to_input_units(decoded)


def slots_figure(detector: Any, report: MemoryReport, path: str | os.PathLike[str], k: int = 16) -> Path:
    """A picture of the ``k`` most used slots, decoded (image and clip models; for a clip
    the middle frame)."""
    from memae.viz import image_grid

    if len(detector.input_shape_) not in (3, 4):
        raise ValueError(
            f"decoded slots are pictures only for image or clip models, not samples of shape "
            f"{detector.input_shape_}"
        )
    top = np.argsort(report.usage)[::-1][:k]
    images = decode_slots(detector, top)
    if images.ndim == 5:
        images = images[:, :, images.shape[2] // 2]
    rows = [images[i : i + 8] for i in range(0, len(images), 8)]
    titles = [f"{i + 1}-{i + len(r)}" for i, r in zip(range(0, len(images), 8), rows, strict=True)]
    title = f"the {len(top)} most used of {report.n_slots} memory slots (by usage), decoded"
    return image_grid(rows, titles, path, title=title)
