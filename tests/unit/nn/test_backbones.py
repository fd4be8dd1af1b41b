"""The generic conv net at the sizes users bring: small images, clips, and 96-512 px images."""

import pytest
import torch

from memae import ModelConfig
from memae.nn import build_model
from memae.nn.backbones import LARGE_IMAGE_SIDE, build_backbone, conv_stages, count_parameters


@pytest.mark.parametrize(
    "shape, channels",
    [
        ((1, 28, 28), [32, 64, 128]),
        ((3, 64, 64), [32, 64, 128]),
        ((3, 8, 12), [32, 64]),
        ((1, 8, 32, 32), [32, 64]),  # the 8 frames bound the depth
    ],
)
def test_small_images_and_clips_keep_three_stages_and_a_global_memory(shape, channels) -> None:
    assert conv_stages(shape) == (channels, "global")
    assert build_backbone("conv", shape).addressing == "global"


@pytest.mark.parametrize(
    "shape, stages, encoding",
    [
        ((3, 96, 96), 4, (6, 6)),
        ((3, 128, 128), 4, (8, 8)),
        ((3, 256, 256), 5, (8, 8)),
        ((1, 200, 300), 5, (7, 10)),
        ((3, 512, 512), 6, (8, 8)),
    ],
)
def test_large_images_halve_down_to_an_8x8_encoding_addressed_per_location(shape, stages, encoding) -> None:
    channels, addressing = conv_stages(shape)
    assert len(channels) == stages and channels[-1] == 128 and channels[0] == 16
    assert channels == sorted(channels) and addressing == "location"
    backbone = build_backbone("conv", shape)
    assert backbone.latent_shape == (128, *encoding) and backbone.addressing == "location"


@pytest.mark.parametrize("side", [128, 256])
def test_large_rgb_models_are_small_and_restore_the_input_shape(side: int) -> None:
    model, config = build_model(ModelConfig((3, side, side), backbone="conv"))
    assert config.addressing == "location" and config.memory_size == 100
    # encoder and decoder ~200k weights, the memory 100 slots of 128 numbers
    assert count_parameters(model) < 300_000
    assert model.memory.memory.shape == (100, 128)
    x = torch.rand(2, 3, side, side)
    rec = model(x)
    assert rec.output.shape == x.shape
    assert rec.weights.shape == (2, 100, 8, 8)  # one addressing per position of the encoding


def test_the_global_memory_can_still_be_asked_for() -> None:
    model, config = build_model(ModelConfig((3, 128, 128), backbone="conv", addressing="global"))
    assert config.addressing == "global"
    assert model.memory.memory.shape == (100, 128 * 8 * 8)


def test_the_threshold_between_the_two_nets() -> None:
    assert conv_stages((3, LARGE_IMAGE_SIDE - 1, 200))[1] == "global"
    assert conv_stages((3, LARGE_IMAGE_SIDE, 200))[1] == "location"
