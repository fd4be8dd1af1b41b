"""Data-parallel training and sharded scoring across the processes ``torchrun`` starts.

``torchrun --nproc_per_node=N memae train ...`` (or ``--nnodes=M --rdzv-backend=c10d
--rdzv-endpoint=HOST:PORT`` across machines) runs the ``memae`` command once per process;
:func:`init_from_env` joins them into one process group (NCCL on GPUs, gloo on CPUs) and
:func:`memae.training.fit_model` trains with PyTorch's ``DistributedDataParallel``:

* every global batch of ``batch_size`` samples, in the order one process would see it
  (:class:`memae.resume.EpochSampler`), is cut into one contiguous share per rank
  (:class:`ShardedBatchSampler`), so the ranks together see exactly the single-process
  batches; each rank runs the same number of steps, a rank whose share of a short last
  batch is empty steps with an empty batch;
* each rank's loss is weighted by its share of the global batch, so the averaged
  gradients are those of the global batch's mean loss;
* batch norm uses the statistics of the whole global batch (:func:`sync_batchnorm`, any
  backend), so training matches one process up to float rounding;
* only rank 0 writes checkpoints and prints; the loss history is summed over ranks.

Scoring is sharded the same way (:func:`sharded_scores`).
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from memae.resume import EpochSampler


@dataclass(frozen=True)
class Context:
    """This process's place in the process group."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env() -> Context | None:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); ``None`` outside torchrun.

    NCCL when CUDA is available (each process on ``cuda:LOCAL_RANK``), gloo otherwise;
    ``MEMAE_DIST_BACKEND`` overrides the choice.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; train in one process")
    if not dist.is_initialized():
        backend = os.environ.get("MEMAE_DIST_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return current()


def shutdown() -> None:
    """Wait for every rank, then leave the process group; nothing outside one. A rank that
    exits while others still use the group can abort them, so commands end with this."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def current() -> Context | None:
    """The process group this process belongs to, or ``None`` when it runs alone."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return None
    return Context(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        backend=str(dist.get_backend()),
    )


def is_main() -> bool:
    """True on rank 0 and in a process running alone."""
    ctx = current()
    return ctx is None or ctx.is_main


def shared_seed() -> int:
    """A random seed drawn on rank 0 and sent to every rank (all ranks must call it)."""
    seed = [int(np.random.default_rng().integers(2**31 - 1)) if is_main() else None]
    if current() is not None:
        dist.broadcast_object_list(seed, src=0)
    return int(seed[0])  # type: ignore[arg-type]


def _share(n: int, world_size: int, rank: int) -> tuple[int, int]:
    """``[start, stop)`` of rank's contiguous share of ``n`` items (sizes differ by <= 1)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class ShardedBatchSampler(Sampler[list[int]]):
    """This rank's share of each global batch of :class:`EpochSampler`'s order.

    ``set_epoch(epoch, skip)`` has :class:`EpochSampler`'s meaning (``skip`` counts samples
    of the global order), so resuming works as in one process. Every rank yields the same
    number of batches; a share may be empty.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world_size: int) -> None:
        self.order = EpochSampler(n, seed)
        self.batch_size = int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.order.set_epoch(epoch, skip)

    def global_sizes(self) -> list[int]:
        """Sizes of the global batches still to come this epoch."""
        n = len(self.order)
        return [min(self.batch_size, n - start) for start in range(0, n, self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.order)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            lo, hi = _share(len(batch), self.world_size, self.rank)
            yield batch[lo:hi]

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)


class _SyncBatchNormFunction(torch.autograd.Function):
    """Batch norm over the union of every rank's batch: statistics and the gradient sums
    are all-reduced (one all-reduce each way), in float64."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        count = x.numel() // max(channels, 1)
        x64 = x.double()
        stats = torch.cat([x64.sum(dims), x64.square().sum(dims), x64.new_tensor([count])])
        dist.all_reduce(stats)
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean.square()).clamp_min(0)
        invstd = torch.rsqrt(var + eps)
        view = [1, channels] + [1] * (x.dim() - 2)
        x_hat = ((x64 - mean.view(view)) * invstd.view(view)).to(x.dtype)
        y = x_hat * weight.view(view) + bias.view(view)
        ctx.save_for_backward(x_hat, weight, invstd.to(x.dtype))
        ctx.total = float(total)
        ctx.mark_non_differentiable(mean, var, total)
        return y, mean, var, total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, *_: Any) -> Any:
        x_hat, weight, invstd = ctx.saved_tensors
        dims = [0, *range(2, grad.dim())]
        view = [1, grad.shape[1]] + [1] * (grad.dim() - 2)
        grad_bias = grad.sum(dims)
        grad_weight = (grad * x_hat).sum(dims)
        sums = torch.cat([grad_bias, grad_weight]).double()
        dist.all_reduce(sums)
        channels = grad.shape[1]
        mean_dy = (sums[:channels] / ctx.total).to(grad.dtype).view(view)
        mean_dy_xhat = (sums[channels:] / ctx.total).to(grad.dtype).view(view)
        grad_x = (grad - mean_dy - x_hat * mean_dy_xhat) * (weight * invstd).view(view)
        return grad_x, grad_weight, grad_bias, None


def _sync_forward(self: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    if not (self.training and self.track_running_stats):
        return type(self).forward(self, x)
    self._check_input_dim(x)
    channels = x.shape[1]
    weight = self.weight if self.affine else x.new_ones(channels)
    bias = self.bias if self.affine else x.new_zeros(channels)
    y, mean, var, total = _SyncBatchNormFunction.apply(x, weight, bias, self.eps)
    with torch.no_grad():
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = var * (total / (total - 1).clamp_min(1))
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
    return y


def sync_batchnorm(model: nn.Module) -> Callable[[], None]:
    """Make every batch norm of ``model`` normalise with the statistics of all ranks' batches
    in training mode (in place; parameter names and the ``state_dict`` are unchanged).
    Returns the function that undoes it."""
    patched = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    for module in patched:
        module.forward = types.MethodType(_sync_forward, module)  # type: ignore[method-assign]

    def undo() -> None:
        for module in patched:
            del module.forward

    return undo


class DataParallel:
    """What :func:`memae.training.fit_model` needs to train on every rank at once."""

    def __init__(self, model: nn.Module, ctx: Context, n: int, batch_size: int, seed: int) -> None:
        from torch.nn.parallel import DistributedDataParallel

        self.ctx = ctx
        self.model = model
        self._undo = sync_batchnorm(model)
        device = next(model.parameters()).device
        self.module = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
        self.sampler = ShardedBatchSampler(n, batch_size, seed, ctx.rank, ctx.world_size)
        self._sizes: list[int] = []

    @classmethod
    def begin(cls, model: nn.Module, n: int, batch_size: int, seed: int) -> DataParallel | None:
        """Wrap ``model`` when this process is one of several, else ``None``."""
        ctx = current()
        return None if ctx is None else cls(model, ctx, n, batch_size, seed)

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main

    def loader(self, data: Dataset, num_workers: int) -> DataLoader:
        """Batches of this rank's shares; an empty share gives an empty batch. In-memory
        tensors are indexed a batch at a time."""
        if isinstance(data, TensorDataset):
            return DataLoader(data, sampler=self.sampler, batch_size=None, num_workers=num_workers)
        empty = _empty_like_batch(data)

        def collate(items: list[Any]) -> Any:
            return empty if not items else torch.utils.data.default_collate(items)

        return DataLoader(data, batch_sampler=self.sampler, num_workers=num_workers, collate_fn=collate)

    def start_epoch(self) -> None:
        self._sizes = self.sampler.global_sizes()

    def loss(self, total: torch.Tensor, output: torch.Tensor, n: int, step: int) -> torch.Tensor:
        """The loss to back-propagate for this rank's ``n`` samples of global batch ``step``
        (counted in this epoch's remaining batches): weighted so that the ranks' average
        gradient is the global batch's."""
        share = n * self.ctx.world_size / self._sizes[step]
        return total * share if n else output.sum() * 0.0

    def reduce(self, sums: torch.Tensor, count: int) -> tuple[torch.Tensor, int]:
        """Loss sums and sample counts over all ranks."""
        both = torch.cat([sums.double(), sums.new_tensor([count], dtype=torch.float64)])
        device = next(self.model.parameters()).device if self.ctx.backend == "nccl" else "cpu"
        both = both.to(device)
        dist.all_reduce(both)
        both = both.cpu()
        return both[:-1].to(sums.dtype), int(both[-1])

    def end(self) -> None:
        """Restore the model's own batch norms."""
        self._undo()


def _empty_like_batch(data: Dataset) -> Any:
    sample = data[0]  # type: ignore[index]
    if isinstance(sample, tuple | list):
        return type(sample)(torch.empty(0, *torch.as_tensor(s).shape) for s in sample)
    return torch.empty(0, *torch.as_tensor(sample).shape)


def sharded_scores(score: Callable[[Any], np.ndarray], data: Any, ctx: Context) -> np.ndarray:
    """Score ``data`` (sliceable, with ``len``) with each rank taking a contiguous shard,
    and return every score on every rank, in order."""
    lo, hi = _share(len(data), ctx.world_size, ctx.rank)
    mine = score(data[lo:hi])
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, mine)
    return np.concatenate([np.asarray(g, dtype=np.float64) for g in gathered])


__all__ = [
    "Context",
    "DataParallel",
    "ShardedBatchSampler",
    "current",
    "init_from_env",
    "is_main",
    "sharded_scores",
    "shared_seed",
    "shutdown",
    "sync_batchnorm",
]
