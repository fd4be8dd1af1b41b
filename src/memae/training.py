"""The training loop and batched scoring. Models come from :mod:`memae.nn`; data stands beside."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, TensorDataset

from memae.config import ModelConfig, TrainConfig
from memae.distributed import DataParallel, sharded_scores
from memae.distributed import current as current_process_group
from memae.fast import (
    CompilerUnavailable,
    compile_unavailable,
    inference_model,
    train_channels_last,
    use_channels_last,
)
from memae.nn.loss import LossTerms, memae_loss, reconstruction_error
from memae.nn.model import MemAE, Reconstruction
from memae.resume import EpochSampler, ResumePoint, TrainingCheckpointer


class TrainingDiverged(ValueError):
    """The loss became non-finite or exploded: the model is not worth saving."""


#: An epoch whose mean loss exceeds this many times the first batch's (at least 1) diverged.
DIVERGENCE_FACTOR = 1e4


def check_divergence(loss: float, reference: float, epoch: int, lr: float) -> None:
    """Raise :class:`TrainingDiverged` if ``loss`` is not finite or exceeds
    :data:`DIVERGENCE_FACTOR` times ``max(reference, 1)``.

    ``reference`` (:func:`loss_reference`) is the scale of a loss that is not diverging: a
    few outliers in the training data raise it along with the loss they cause.
    """
    limit = DIVERGENCE_FACTOR * max(reference, 1.0)
    if np.isfinite(loss) and loss <= limit:
        return
    if not np.isfinite(loss):
        first = "" if np.isfinite(reference) else f" (the first batch's was already {reference})"
        what = f"mean loss {loss}, expected a finite loss{first}"
    else:
        what = (
            f"mean loss {loss:.4g}, more than {DIVERGENCE_FACTOR:g} times {reference:.4g} (the first "
            "batch's loss, or the training data's mean square if larger)"
        )
    raise TrainingDiverged(
        f"training diverged in epoch {epoch + 1}: {what}; the model was not saved: "
        f"lower lr (now {lr:g}) or scale the data (preprocessing='standard')"
    )


def loss_reference(data: Dataset, first_batch_loss: float) -> float:
    """The yardstick of :func:`check_divergence`: the first batch's loss, or the mean square
    of in-memory training data when larger (what reconstructing every sample as zeros costs;
    an outlier anywhere in the data raises it)."""
    if not isinstance(data, TensorDataset):
        return first_batch_loss
    values = data.tensors[0]
    total = sum(float(part.double().pow(2).sum()) for part in values.split(4096))
    return max(first_batch_loss, total / max(values.numel(), 1))


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; anything else goes to torch."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    known = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    if not isinstance(name, str):
        raise TypeError(f"device must be a string ({known}), got {name!r} ({type(name).__name__})")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device must be {known}, got {name!r}") from err
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be {known}, got {name!r} (a {device.type!r} device cannot train)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} was asked for, but this torch has no CUDA device; use 'cpu' or 'auto'"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {name!r} was asked for, but Apple MPS is not available; use 'cpu' or 'auto'"
        )
    return device


@dataclass
class History:
    """Per-epoch means of the objective's terms on the training (and validation) data."""

    train_loss: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


def _inputs(batch: torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
    return batch[0] if isinstance(batch, tuple | list) else batch


def make_optimizer(
    model: MemAE, train: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """Adam and the schedule named by ``train.schedule``.

    Adam is PyTorch's fused implementation (one kernel for all parameters) where the
    parameters' device has one: the same update, in fewer passes (``benchmarks/``).
    """
    params = list(model.parameters())
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    optimizer = torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay, fused=fused or None)
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    if train.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train.epochs)
    elif train.schedule == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, train.epochs // 3), gamma=0.1)
    return optimizer, scheduler


def fit_model(
    model: MemAE,
    model_config: ModelConfig,
    train: TrainConfig,
    data: Dataset,
    validation: Dataset | None = None,
    on_epoch: Callable[[int, History], None] | None = None,
    checkpointer: TrainingCheckpointer | None = None,
) -> History:
    """Train ``model`` in place with Adam on ``data`` (a dataset of inputs, or of tuples whose
    first item is the input); each epoch's order is a function of ``train.seed`` and the epoch.

    With a ``checkpointer`` the training state is written every epoch (and every
    ``checkpointer.every_steps`` steps) and a run finding a state continues from it.
    """
    device = resolve_device(train.device)
    model.to(device)
    # channels-last weights and activations, undone below: the model leaves as it came
    channels_last = train_channels_last(train.channels_last, model, device)
    layouts = use_channels_last(model, weights=True) if channels_last else []
    try:
        return _fit(model, model_config, train, data, device, validation, on_epoch, checkpointer)
    finally:
        for handle in layouts:
            handle.remove()


def _fit(
    model: MemAE,
    model_config: ModelConfig,
    train: TrainConfig,
    data: Dataset,
    device: torch.device,
    validation: Dataset | None,
    on_epoch: Callable[[int, History], None] | None,
    checkpointer: TrainingCheckpointer | None,
) -> History:
    # Under torchrun: DistributedDataParallel over this rank's share of every global batch.
    dp = DataParallel.begin(model, len(data), train.batch_size, train.seed)  # type: ignore[arg-type]
    sampler = dp.sampler if dp else EpochSampler(len(data), train.seed)  # type: ignore[arg-type]
    if dp:
        loader = dp.loader(data, train.num_workers)
    else:
        loader = _loader(data, sampler, train.batch_size, train.num_workers)  # type: ignore[arg-type]
    net = dp.module if dp else model
    forward = _forward_and_loss(net, model_config, train.compile)
    steps_per_epoch = -(-len(data) // train.batch_size)  # type: ignore[arg-type]
    optimizer, scheduler = make_optimizer(model, train)
    start = checkpointer.restore(model, optimizer, scheduler) if checkpointer else None
    start = start or ResumePoint()
    if dp and not dp.is_main:  # rank 0 carries the restored running loss sums
        start.sums, start.count = torch.zeros_like(start.sums), 0
    history = History(**start.history)
    reference: float | None = None  # the yardstick for divergence (loss_reference)
    epochs = range(start.epoch, train.epochs)
    if train.progress:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, desc="training", unit="epoch")
    for epoch in epochs:
        if stalled(history.val_loss, train.early_stopping):
            break
        model.train()
        step = start.step if epoch == start.epoch else 0
        sampler.set_epoch(epoch, skip=step * train.batch_size)
        if dp:
            dp.start_epoch()
        sums, count = (start.sums.clone(), start.count) if step else (torch.zeros(3, dtype=torch.float64), 0)
        for i, batch in enumerate(loader):
            x = _inputs(batch).to(device, non_blocking=True)
            rec, terms = forward(x)
            loss = dp.loss(terms.total, rec.output, x.shape[0], i) if dp else terms.total
            del rec  # autograd keeps what backward needs; the rest goes now, not next step
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n = x.shape[0]
            if n:  # a rank's share of a short last global batch can be empty
                sums += (
                    torch.stack(
                        [terms.total.detach(), terms.reconstruction.detach(), terms.entropy.detach()]
                    ).cpu()
                    * n
                )
            count += n
            step += 1
            if reference is None:  # every rank is at its first step: a collective is safe here
                first, first_count = dp.reduce(sums, count) if dp else (sums, count)
                reference = loss_reference(data, float(first[0]) / max(first_count, 1))
            if checkpointer is not None and checkpointer.due(step, steps_per_epoch):
                point_sums, point_count = dp.reduce(sums, count) if dp else (sums, count)
                check_divergence(float(point_sums[0]) / max(point_count, 1), reference, epoch, train.lr)
                point = ResumePoint(epoch, step, dataclasses.asdict(history), point_sums, point_count)
                if dp is None or dp.is_main:
                    checkpointer.save(model, optimizer, scheduler, point)
        if dp:
            sums, count = dp.reduce(sums, count)
        if scheduler is not None:
            scheduler.step()
        means = (sums / max(count, 1)).tolist()
        check_divergence(means[0], means[0] if reference is None else reference, epoch, train.lr)
        history.train_loss.append(means[0])
        history.reconstruction.append(means[1])
        history.entropy.append(means[2])
        if validation is not None and len(validation) > 0:  # type: ignore[arg-type]
            history.val_loss.append(evaluate_loss(model, model_config, validation, train.batch_size, device))
        if train.progress:
            postfix = {"loss": f"{means[0]:.4g}"}
            if history.val_loss:
                postfix["val"] = f"{history.val_loss[-1]:.4g}"
            epochs.set_postfix(postfix)  # type: ignore[attr-defined]
        if on_epoch is not None:
            on_epoch(epoch, history)
        if checkpointer is not None and (dp is None or dp.is_main):
            checkpointer.save(
                model, optimizer, scheduler, ResumePoint(epoch + 1, 0, dataclasses.asdict(history))
            )
    if train.progress:
        epochs.close()  # type: ignore[attr-defined]
    if dp:
        dp.end()
    return history


def stalled(val_loss: list[float], patience: int | None) -> bool:
    """Whether early stopping ends training: the validation loss has not fallen below its best
    (by a relative 1e-4) in the last ``patience`` epochs. A function of the history alone, so
    a resumed run stops where the uninterrupted one did."""
    if patience is None or len(val_loss) <= patience:
        return False
    best = min(val_loss[:-patience])
    return min(val_loss[-patience:]) > best - 1e-4 * abs(best)


def _forward_and_loss(
    net: torch.nn.Module, model_config: ModelConfig, compile: bool
) -> Callable[[torch.Tensor], tuple[Reconstruction, LossTerms]]:
    """One step's forward pass and objective; under ``torch.compile`` with ``compile``.

    Static shapes: a last batch of another size compiles once more rather than making every
    step's code shape-generic. An empty batch (a rank's share of a short last global batch
    under torchrun) runs eagerly: there is nothing to compile for.
    """

    def forward(x: torch.Tensor) -> tuple[Reconstruction, LossTerms]:
        rec = net(x)
        return rec, memae_loss(x, rec, model_config)

    if not compile:
        return forward
    reason = compile_unavailable(next(net.parameters()).device)
    if reason is not None:
        raise CompilerUnavailable(f"compile=True: {reason}; install one, or train with compile=False")
    compiled = torch.compile(forward, dynamic=False)

    def step(x: torch.Tensor) -> tuple[Reconstruction, LossTerms]:
        return compiled(x) if x.shape[0] else forward(x)

    return step


def _loader(data: Dataset, sampler: EpochSampler, batch_size: int, num_workers: int) -> DataLoader:
    """Batches in the sampler's order. In-memory tensors are indexed a batch at a time
    (one gather per batch instead of one ``__getitem__`` per sample and a collate)."""
    if isinstance(data, TensorDataset):
        batches = BatchSampler(sampler, batch_size, drop_last=False)
        return DataLoader(data, sampler=batches, batch_size=None, num_workers=num_workers)
    return DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=num_workers)


def _ordered(data: Dataset, batch_size: int) -> DataLoader:
    # An own generator keeps the loader from drawing its base seed from the global RNG.
    return DataLoader(data, batch_size=batch_size, generator=torch.Generator())


@torch.inference_mode()
def evaluate_loss(
    model: MemAE, model_config: ModelConfig, data: Dataset, batch_size: int, device: torch.device
) -> float:
    """Mean objective over ``data`` in eval mode."""
    model.eval()
    total, count = 0.0, 0
    for batch in _ordered(data, batch_size):
        x = _inputs(batch).to(device)
        total += float(memae_loss(x, model(x), model_config).total) * x.shape[0]
        count += x.shape[0]
    return total / max(count, 1)


def score(
    model: MemAE,
    data: torch.Tensor | Dataset,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    reduction: str = "mse",
    fast: bool = True,
) -> np.ndarray:
    """Per-sample reconstruction errors (higher = more anomalous) in eval mode.

    ``fast`` scores with :func:`memae.fast.inference_model` (batch norm folded into the
    convolutions, channels-last layouts): the same scores within float rounding. A tensor
    is sliced into batches directly, a dataset goes through a loader. Under torchrun every
    rank scores a contiguous shard of a tensor and all ranks get all the scores.
    """
    model.eval()
    device = torch.device(device)
    net = inference_model(model) if fast else model
    ctx = current_process_group()
    if ctx is not None and isinstance(data, torch.Tensor):
        return sharded_scores(lambda part: _scores(net, part, batch_size, device, reduction), data, ctx)
    return _scores(net, data, batch_size, device, reduction)


def _scores(
    net: torch.nn.Module, data: torch.Tensor | Dataset, batch_size: int, device: torch.device, reduction: str
) -> np.ndarray:
    batches = (
        (data[i : i + batch_size] for i in range(0, len(data), batch_size))
        if isinstance(data, torch.Tensor)
        else (_inputs(batch) for batch in _ordered(data, batch_size))
    )
    with torch.inference_mode():
        out = [reconstruction_error(x := b.to(device), net(x).output, reduction).cpu() for b in batches]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)
