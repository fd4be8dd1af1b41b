"""Faster execution of the same network.

Nothing here changes the maths: :func:`inference_model` returns a copy of a trained
:class:`~memae.nn.MemAE` (batch norm folded into the convolutions, channels-last layouts,
one-channel output layers as :class:`ThinConvTranspose`) whose scores equal the original's
in eval mode within float rounding; :func:`use_channels_last` only changes how activations
are laid out in memory; :func:`keep_freed_memory` only changes how the C library recycles
memory. The tests in ``tests/unit/test_fast.py`` hold each path to that; ``benchmarks/``
measures what each one is worth (``docs/PERFORMANCE.md``).
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import itertools
import sys
from typing import Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from memae.nn.model import MemAE, Reconstruction

MemoryFormat = Literal["contiguous", "channels_last", "auto"]
Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_DECONVS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every batch norm that directly follows a
    (transposed) convolution in an ``nn.Sequential`` folded into that convolution.

    In eval mode ``BN(conv(x)) = γ (conv(x) − μ) / sqrt(σ² + ε) + β`` is itself a
    convolution: its weights scaled per output channel by ``s = γ / sqrt(σ² + ε)`` and its
    bias ``(b − μ) s + β``. The folded batch norm becomes ``nn.Identity``.
    """
    folded = copy.deepcopy(model).eval()
    for seq in folded.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, norm = seq[i], seq[i + 1]
            if isinstance(conv, _CONVS + _DECONVS) and isinstance(norm, _NORMS) and _foldable(conv, norm):
                _fold_into(conv, norm)
                seq[i + 1] = nn.Identity()
    return folded


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (
        norm.running_mean is not None
        and norm.running_var is not None
        and conv.groups == 1
        and norm.num_features == conv.out_channels
    )


def _fold_into(conv: nn.Module, norm: nn.Module) -> None:
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.affine:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale + (norm.bias if norm.affine else 0.0)
    # Conv weights are (out, in, *k); transposed-conv weights are (in, out, *k).
    axis = 1 if isinstance(conv, _DECONVS) else 0
    shape = [1] * conv.weight.dim()
    shape[axis] = -1
    conv.weight.mul_(scale.view(shape))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    conv.bias = nn.Parameter(bias * scale + shift, requires_grad=conv.bias is not None)


#: Transposed convolutions with at most this many output channels (the grayscale output
#: layers) run as one matrix product and k^d strided adds (ThinConvTranspose); with three
#: (RGB) it was no faster on the CPU benchmarks.
THIN_DECONV_MAX_CHANNELS = 1


class ThinConvTranspose(nn.Module):
    """A transposed convolution with few output channels, computed as ``cols = Wᵀ x`` (one
    matrix product over every input position) and a col2im: each kernel tap's plane of
    ``cols`` added into the output at its strided offset.

    PyTorch's CPU kernels run such layers (the autoencoders' output layers) on a generic
    path; this computes the same sums in another order. It takes the parameters of
    ``deconv`` (the same ``weight`` and ``bias``, so the same ``state_dict`` keys) and works
    on contiguous and channels-last inputs alike. For inference: in training it is slower.
    """

    def __init__(self, deconv: nn.Module) -> None:
        super().__init__()
        self.weight = deconv.weight
        self.bias = deconv.bias
        self.out_channels = int(deconv.out_channels)
        self.kernel_size = tuple(deconv.kernel_size)
        self.stride = tuple(deconv.stride)
        self.padding = tuple(deconv.padding)
        self.output_padding = tuple(deconv.output_padding)

    @staticmethod
    def accepts(m: nn.Module) -> bool:
        return (
            isinstance(m, nn.ConvTranspose2d | nn.ConvTranspose3d)
            and m.out_channels <= THIN_DECONV_MAX_CHANNELS
            and m.groups == 1
            and all(d == 1 for d in m.dilation)
            and m.padding_mode == "zeros"
            and all(op <= p for op, p in zip(m.output_padding, m.padding, strict=True))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, c_in, *size = x.shape
        kernel, stride, c_out = self.kernel_size, self.stride, self.out_channels
        weight_t = self.weight.reshape(c_in, -1).t()  # (c_out * taps, c_in)
        if x.is_contiguous():
            # (batch, c_out * taps, positions) -> (c_out, *kernel, batch, *size) planes
            cols = (weight_t @ x.reshape(batch, c_in, -1)).view(batch, c_out, *kernel, *size)
            cols = cols.movedim(0, 1 + len(kernel))
        else:  # channels-last: positions are rows
            rows = x.movedim(1, -1).reshape(-1, c_in)
            cols = (weight_t @ rows.t()).view(c_out, *kernel, batch, *size)
        spans = [(n - 1) * s + k for n, s, k in zip(size, stride, kernel, strict=True)]
        full = x.new_zeros(c_out, batch, *spans)
        for tap in itertools.product(*(range(k) for k in kernel)):
            steps = zip(tap, size, stride, strict=True)
            window = tuple(slice(t, t + (n - 1) * s + 1, s) for t, n, s in steps)
            full[(slice(None), slice(None), *window)] += cols[(slice(None), *tap)]
        crop = tuple(
            slice(p, p + (n - 1) * s - 2 * p + k + op)
            for n, s, p, k, op in zip(size, stride, self.padding, kernel, self.output_padding, strict=True)
        )
        out = full[(slice(None), slice(None), *crop)].transpose(0, 1)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, *([1] * len(size)))
        return out


def thin_transposed_convs(model: nn.Module) -> None:
    """Replace, in place, each transposed convolution of ``model`` that
    :class:`ThinConvTranspose` accepts by one (sharing its parameters)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if ThinConvTranspose.accepts(child):
                setattr(parent, name, ThinConvTranspose(child))


def _inplace_activations(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.ReLU | nn.LeakyReLU):
            module.inplace = True


def _channels_last_format(dims: int) -> torch.memory_format:
    return torch.channels_last if dims == 4 else torch.channels_last_3d


def use_channels_last(model: nn.Module, weights: bool = False) -> list[RemovableHandle | _Relayout]:
    """Run every 2-D/3-D (transposed) convolution of ``model`` on channels-last inputs.

    Adds a forward pre-hook to each convolution that re-lays its input out as
    ``channels_last`` (4-D) or ``channels_last_3d`` (5-D). The layers between convolutions
    keep whatever layout they are given, so the hooks are no-ops after the first. With
    ``weights`` the convolutions' weights are re-laid out the same way, in place: oneDNN
    then runs them without reordering the weights at every call (what training on the CPU
    gains most from, ``benchmarks/run.py``). Values, names and the ``state_dict`` are
    untouched. Returns handles whose ``remove()`` undoes it (the weights go back to the
    contiguous layout).
    """

    def to_channels_last(_: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = args[0]
        if x.dim() not in (4, 5):
            return args
        return (x.contiguous(memory_format=_channels_last_format(x.dim())), *args[1:])

    handles: list[RemovableHandle | _Relayout] = []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            handles.append(module.register_forward_pre_hook(to_channels_last))
            if weights:
                handles.append(_Relayout(module.weight))
    return handles


class _Relayout:
    """A parameter re-laid out channels-last in place until :meth:`remove`."""

    def __init__(self, param: nn.Parameter) -> None:
        self.param = param
        with torch.no_grad():
            param.data = param.data.contiguous(memory_format=_channels_last_format(param.dim()))

    def remove(self) -> None:
        with torch.no_grad():
            self.param.data = self.param.data.contiguous()
            if self.param.grad is not None:
                self.param.grad = self.param.grad.contiguous()


def _has_convs(model: nn.Module) -> bool:
    return any(isinstance(m, _CONVS + _DECONVS) for m in model.modules())


def train_channels_last(setting: bool | Literal["auto"], model: nn.Module, device: torch.device) -> bool:
    """Whether training uses :func:`use_channels_last` (with ``weights``). ``"auto"`` says yes
    for 2-D conv nets on the CPU, where the MNIST and CIFAR-10 nets trained faster with it
    (``benchmarks/run.py``); no for the 3-D video nets, which it did not speed up, and on
    other devices, where it is unmeasured."""
    if setting == "auto":
        return device.type == "cpu" and any(
            isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules()
        )
    return bool(setting)


def resolve_memory_format(memory_format: MemoryFormat, model: nn.Module, device: torch.device) -> str:
    """``"auto"``: channels-last for conv nets on CUDA and CPU, contiguous otherwise."""
    if memory_format not in ("contiguous", "channels_last", "auto"):
        raise ValueError(
            f"memory_format must be 'contiguous', 'channels_last' or 'auto', got {memory_format!r}"
        )
    if memory_format != "auto":
        return memory_format
    return "channels_last" if _has_convs(model) and device.type in ("cpu", "cuda") else "contiguous"


class _Autocast(nn.Module):
    """Runs a :class:`MemAE` under ``torch.autocast`` and returns float32 results."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> Reconstruction:
        with torch.autocast(x.device.type, dtype=self.dtype):
            rec = self.model(x)
        weights = None if rec.weights is None else rec.weights.float()
        return Reconstruction(rec.output.float(), rec.latent.float(), weights)


def inference_model(
    model: MemAE,
    *,
    fold: bool = True,
    memory_format: MemoryFormat = "auto",
    precision: Precision = "fp32",
    compile: bool = False,
) -> nn.Module:
    """A copy of ``model`` for scoring: eval mode, batch norm folded, in-place activations,
    channels-last convolutions where ``memory_format`` says so, optionally mixed precision
    (``"bf16"``/``"fp16"`` autocast, for GPUs) and ``torch.compile``.

    In float32 the scores equal ``model``'s in eval mode within float rounding; mixed
    precision trades that for speed (about 1e-2 relative in bf16). The copy shares nothing
    with ``model``: train the original further and call this again.
    """
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'fp16', got {precision!r}")
    device = next(model.parameters()).device
    fast = fold_batchnorm(model) if fold else copy.deepcopy(model).eval()
    _inplace_activations(fast)
    if device.type == "cpu":
        thin_transposed_convs(fast)
    if resolve_memory_format(memory_format, fast, device) == "channels_last":
        use_channels_last(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    net: nn.Module = fast if precision == "fp32" else _Autocast(fast, _DTYPES[precision]).eval()
    if compile:
        return torch.compile(net)  # type: ignore[return-value]
    return net


class CompilerUnavailable(RuntimeError):
    """``compile=True`` was asked for where ``torch.compile`` cannot build kernels."""


def compile_unavailable(device: torch.device | str) -> str | None:
    """Why ``torch.compile`` cannot build kernels for ``device``, or ``None`` when it can.

    On the CPU its inductor backend writes C++ and needs a working compiler (``g++`` on
    Linux); this asks torch the way inductor itself will, before any work is done.
    """
    if torch.device(device).type != "cpu":
        return None
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # a torch without inductor's C++ builder: let torch.compile decide
        return None
    try:
        get_cpp_compiler()
    except Exception as err:  # inductor's InvalidCxxCompiler, or anything on the way to it
        return f"torch.compile needs a C++ compiler for its CPU kernels and found none ({err})"
    return None


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 - glibc has it, musl does not
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory(enable: bool = True) -> bool:
    """Let glibc's ``malloc`` keep freed memory for the next tensor instead of returning it
    to the operating system. Process-wide; the ``memae`` command turns it on.

    By default glibc serves every block above 32 MB (and, until it has seen one freed,
    above 128 kB) with a fresh ``mmap`` and unmaps it on free, so each large activation of
    every step is page-faulted in anew, which costs as much as the arithmetic on it on a
    virtual machine. Enabled: no ``mmap``, no trimming, freed blocks are reused; the peak
    memory is unchanged but the process keeps it until exit. ``enable=False`` restores
    glibc's steady state (32 MB threshold, 64 MB trim) and returns free memory. Returns
    ``False`` (and does nothing) where the C library is not glibc.
    """
    libc = _glibc()
    if libc is None:
        return False
    if enable:
        ok = libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    else:
        ok = (
            libc.mallopt(_M_MMAP_MAX, 65536)
            and libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
            and libc.mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)
        )
        libc.malloc_trim(0)
    return bool(ok)


__all__ = [
    "CompilerUnavailable",
    "ThinConvTranspose",
    "compile_unavailable",
    "fold_batchnorm",
    "inference_model",
    "keep_freed_memory",
    "resolve_memory_format",
    "thin_transposed_convs",
    "train_channels_last",
    "use_channels_last",
]
