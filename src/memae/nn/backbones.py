"""Encoder/decoder pairs, looked up by name in a registry.

Each builder takes the input shape of one sample (without the batch dimension) and a width
multiplier, and returns a :class:`Backbone`. Conv nets compute their paddings and output
paddings from the input shape so that the decoder returns exactly the input's shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from torch import nn

Addressing = Literal["global", "location"]
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Backbone:
    """An encoder, its mirror decoder, and the defaults the paper pairs with them."""

    encoder: nn.Module
    decoder: nn.Module
    latent_shape: Shape
    addressing: Addressing
    memory_size: int


BackboneBuilder = Callable[[Shape, float], Backbone]
_REGISTRY: dict[str, BackboneBuilder] = {}
_DESCRIPTIONS: dict[str, str] = {}
_ALIASES: dict[str, str] = {}


def register_backbone(
    name: str, description: str, aliases: Sequence[str] = ()
) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Register a builder ``(input_shape, width) -> Backbone`` under ``name`` (and ``aliases``)."""

    def wrap(builder: BackboneBuilder) -> BackboneBuilder:
        for key in (name, *aliases):
            if key in _REGISTRY or key in _ALIASES:
                raise ValueError(f"backbone {key!r} is already registered")
        _REGISTRY[name] = builder
        _DESCRIPTIONS[name] = description + (f" (also: {', '.join(aliases)})" if aliases else "")
        _ALIASES.update(dict.fromkeys(aliases, name))
        return builder

    return wrap


def list_backbones() -> dict[str, str]:
    """Registered backbone names with a one-line description each (aliases in it)."""
    return dict(sorted(_DESCRIPTIONS.items()))


def build_backbone(name: str, input_shape: Sequence[int], width: float = 1.0) -> Backbone:
    """Build the backbone ``name`` (or one of its aliases) for samples of ``input_shape``."""
    builder = _REGISTRY.get(_ALIASES.get(name, name))
    if builder is None:
        known = sorted([*_REGISTRY, *_ALIASES])
        raise ValueError(f"unknown backbone {name!r}; known backbones: {', '.join(known)}")
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return builder(tuple(int(s) for s in input_shape), float(width))


def auto_backbone(input_shape: Sequence[int]) -> str:
    """The backbone ``"auto"`` stands for: the generic net sized from the shape, ``mlp`` for
    features, ``conv`` for images and clips.

    The paper's nets (``mnist``, ``cifar10``, ``kddcup``, ``video``) are chosen by name, as the
    reproduction does: the MNIST net squeezes a 28x28 image into 72 numbers, too few to
    reconstruct strokes closely, and scores users' 28x28 images and their anomaly maps worse
    than ``conv`` (docs/IMAGES.md).
    """
    shape = tuple(input_shape)
    if len(shape) == 1:
        return "mlp"
    if len(shape) in (3, 4):
        return "conv"
    raise ValueError(f"expected samples of shape (features,), (C, H, W) or (C, T, H, W), got {shape}")


# --- building blocks -------------------------------------------------------------------


def _tuple(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


#: One conv layer as SPEC §5 writes it: ``Conv2(k, s, c)`` = (kernel, stride, out channels).
Layer = tuple[int, int | Sequence[int], int]


def conv_net(
    input_shape: Shape,
    encoder_layers: Sequence[Layer],
    decoder_layers: Sequence[Layer],
    activation: Callable[[], nn.Module],
) -> tuple[nn.Sequential, nn.Sequential, Shape]:
    """A conv encoder and a transposed-conv decoder given layer by layer, 2-D or 3-D by the
    input rank.

    Every encoder layer is conv + batch norm + activation; every decoder layer but the last
    is transposed conv + batch norm + activation, the last is a bare transposed conv. The
    decoder has as many layers as the encoder and its layer ``i`` restores the size encoder
    layer ``-1 - i`` took in: paddings are ``k // 2`` and the output paddings are solved for
    that, so the output has the input's shape exactly. The last decoder layer must give the
    input's channels.
    """
    dims = len(input_shape) - 1
    if dims not in (2, 3):
        raise ValueError(f"conv backbones take (C, H, W) or (C, T, H, W) samples, got {input_shape}")
    if len(decoder_layers) != len(encoder_layers) or decoder_layers[-1][2] != input_shape[0]:
        raise ValueError(
            f"the decoder needs {len(encoder_layers)} layers ending in {input_shape[0]} channels, "
            f"got {list(decoder_layers)}"
        )
    conv, deconv, norm = (
        (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)
        if dims == 2
        else (nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d)
    )
    strides = [s for _, s, _ in encoder_layers]
    sizes = [tuple(input_shape[1:])]
    encoder: list[nn.Module] = []
    c_in = input_shape[0]
    for kernel, stride, c_out in encoder_layers:
        step = _tuple(stride, dims)
        size = tuple(_conv_out(n, kernel, s, kernel // 2) for n, s in zip(sizes[-1], step, strict=True))
        if min(size) < 1:
            raise ValueError(f"input of shape {input_shape} is too small for strides {strides}")
        sizes.append(size)
        encoder += [conv(c_in, c_out, kernel, step, kernel // 2), norm(c_out), activation()]
        c_in = c_out

    decoder: list[nn.Module] = []
    for i, (kernel, stride, c_out) in enumerate(decoder_layers):
        step, pad = _tuple(stride, dims), kernel // 2
        src, dst = sizes[-1 - i], sizes[-2 - i]
        out_pad = tuple(t - ((n - 1) * s - 2 * pad + kernel) for n, t, s in zip(src, dst, step, strict=True))
        if any(not 0 <= p < max(s, 1) for p, s in zip(out_pad, step, strict=True)):
            raise ValueError(f"cannot mirror strides {strides} for input shape {input_shape}")
        decoder.append(deconv(c_in, c_out, kernel, step, pad, output_padding=out_pad))
        if i < len(decoder_layers) - 1:
            decoder += [norm(c_out), activation()]
        c_in = c_out
    latent = (encoder_layers[-1][2], *sizes[-1])
    return nn.Sequential(*encoder), nn.Sequential(*decoder), latent


def conv_autoencoder(
    input_shape: Shape,
    channels: Sequence[int],
    strides: Sequence[int | Sequence[int]],
    activation: Callable[[], nn.Module],
    kernel: int = 3,
) -> tuple[nn.Sequential, nn.Sequential, Shape]:
    """:func:`conv_net` with one kernel size and the decoder the encoder's mirror (each
    decoder layer gives the channels the matching encoder layer took in)."""
    in_channels = [input_shape[0], *channels[:-1]]
    encoder = [(kernel, s, c) for s, c in zip(strides, channels, strict=True)]
    decoder = [(kernel, s, c) for s, c in zip(strides, in_channels, strict=True)][::-1]
    return conv_net(input_shape, encoder, decoder, activation)


def mlp_autoencoder(
    n_features: int, hidden: Sequence[int], activation: Callable[[], nn.Module]
) -> tuple[nn.Sequential, nn.Sequential]:
    """Fully connected encoder ``d -> hidden...`` (no activation on the code) and its mirror."""
    sizes = [n_features, *hidden]
    encoder: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        encoder.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            encoder.append(activation())
    back = sizes[::-1]
    decoder: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(back)):
        decoder.append(nn.Linear(a, b))
        if i < len(back) - 2:
            decoder.append(activation())
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


def _scaled(channels: Sequence[int], width: float) -> list[int]:
    return [max(1, round(c * width)) for c in channels]


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


def _features(input_shape: Shape, name: str) -> int:
    if len(input_shape) != 1:
        raise ValueError(f"backbone {name!r} takes (features,) samples, got shape {input_shape}")
    return input_shape[0]


# --- the registered backbones ------------------------------------------------------------


@register_backbone(
    "mnist",
    "MNIST net as SPEC §5's seed note reads the paper: Conv2(3,2,32)-Conv2(3,2,16)-Conv2(3,3,8), "
    "72-d code, N=100, global",
    aliases=("mnist-seed-note",),
)
def _mnist(input_shape: Shape, width: float) -> Backbone:
    enc, dec, latent = conv_autoencoder(input_shape, _scaled([32, 16, 8], width), [2, 2, 3], nn.ReLU)
    return Backbone(enc, dec, latent, "global", 100)


@register_backbone(
    "mnist-paper-text",
    "MNIST net as a published version of the paper's text gives it (SPEC §5): "
    "Conv2(1,2,16)-Conv2(3,2,32)-Conv2(3,2,64) / Dconv2(3,2,64)-Dconv2(3,2,32)-Dconv2(3,2,1), "
    "1024-d code, N=100, global",
)
def _mnist_paper_text(input_shape: Shape, width: float) -> Backbone:
    # paddings are not in the text: k // 2 with solved output paddings gives 28-14-7-4 and back
    c16, c32, c64 = _scaled([16, 32, 64], width)
    enc, dec, latent = conv_net(
        input_shape,
        [(1, 2, c16), (3, 2, c32), (3, 2, c64)],
        [(3, 2, c64), (3, 2, c32), (3, 2, input_shape[0])],
        nn.ReLU,
    )
    return Backbone(enc, dec, latent, "global", 100)


@register_backbone("cifar10", "CIFAR-10 net: Conv2(3,2,64)-Conv2(3,2,128)-Conv2(3,2,256), N=500, global")
def _cifar10(input_shape: Shape, width: float) -> Backbone:
    enc, dec, latent = conv_autoencoder(input_shape, _scaled([64, 128, 256], width), [2, 2, 2], nn.ReLU)
    return Backbone(enc, dec, latent, "global", 500)


@register_backbone("kddcup", "KDDCUP99 FC net: d-60-30-10-3 (tanh) and mirror, N=50, global")
def _kddcup(input_shape: Shape, width: float) -> Backbone:
    hidden = [*_scaled([60, 30, 10], width), 3]
    enc, dec = mlp_autoencoder(_features(input_shape, "kddcup"), hidden, nn.Tanh)
    return Backbone(enc, dec, (3,), "global", 50)


_VIDEO_STRIDES = [(1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)]


@register_backbone("video", "authors' 3-D video net: Conv3 96-128-256-256, N=2000, per location")
def _video(input_shape: Shape, width: float) -> Backbone:
    if len(input_shape) != 4:
        raise ValueError(f"backbone 'video' takes (C, T, H, W) clips, got samples of shape {input_shape}")
    enc, dec, latent = conv_autoencoder(
        input_shape, _scaled([96, 128, 256, 256], width), _VIDEO_STRIDES, _leaky
    )
    return Backbone(enc, dec, latent, "location", 2000)


@register_backbone("video-small", "the video net at a quarter width for CPU work, N=2000, per location")
def _video_small(input_shape: Shape, width: float) -> Backbone:
    return _video(input_shape, width * 0.25)


@register_backbone("mlp", "generic fully connected net sized from the feature count, N=100, global")
def _mlp(input_shape: Shape, width: float) -> Backbone:
    d = _features(input_shape, "mlp")
    code = min(16, max(2, d // 4))
    hidden = [*_scaled([64, 32], width), code]
    enc, dec = mlp_autoencoder(d, hidden, nn.ReLU)
    return Backbone(enc, dec, (code,), "global", 100)


#: Images whose smaller side is at least this many pixels get the large-image conv net.
LARGE_IMAGE_SIDE = 96
#: The large-image net halves the image until its encoding's smaller side is at most this.
LARGE_IMAGE_ENCODING = 8


def conv_stages(input_shape: Shape) -> tuple[list[int], Addressing]:
    """Channels per stride-2 stage and the memory addressing of the generic ``conv`` net.

    Small images and clips (smaller side below :data:`LARGE_IMAGE_SIDE`): up to three stages
    of 32, 64, 128 channels (fewer when the input is tiny) and a global memory, as the
    paper's MNIST and CIFAR-10 nets. Larger images: as many stages as bring the smaller side
    down to :data:`LARGE_IMAGE_ENCODING` (4 at 128 px, 5 at 256 px), the channels doubling
    from 16 to 128 at the last stage so the full-resolution layers stay cheap, and the memory
    addressed per location. A global slot would have to hold a whole encoding (32k numbers at
    128 px with three stages), so the memory could only return whole training images and
    would dominate the parameters; per location, each position of the 8x8 encoding (a patch
    of the image) is rebuilt from N prototypes of normal patches, a memory of N x 128
    numbers, and the reconstruction error stays local, which is what an anomaly map needs.
    """
    smallest = min(input_shape[1:])
    if len(input_shape) == 4 or smallest < LARGE_IMAGE_SIDE:
        depth = min(3, max(1, int(math.log2(max(smallest, 1))) - 1))
        return [32, 64, 128][:depth], "global"
    depth = math.ceil(math.log2(smallest / LARGE_IMAGE_ENCODING))
    return [max(16, 128 >> (depth - 1 - i)) for i in range(depth)], "location"


@register_backbone(
    "conv",
    "generic 2-D/3-D conv net sized from the input shape, N=100: global memory below 96 px, "
    "per location (8x8 encoding) from 96 px",
)
def _conv(input_shape: Shape, width: float) -> Backbone:
    if len(input_shape) not in (3, 4):
        raise ValueError(f"backbone 'conv' takes (C, H, W) or (C, T, H, W) samples, got {input_shape}")
    channels, addressing = conv_stages(input_shape)
    enc, dec, latent = conv_autoencoder(input_shape, _scaled(channels, width), [2] * len(channels), nn.ReLU)
    return Backbone(enc, dec, latent, addressing, 100)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "Addressing",
    "Backbone",
    "Layer",
    "auto_backbone",
    "build_backbone",
    "conv_autoencoder",
    "conv_net",
    "conv_stages",
    "count_parameters",
    "list_backbones",
    "mlp_autoencoder",
    "register_backbone",
]
