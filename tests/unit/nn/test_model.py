import pytest
import torch

from memae import VARIANTS, ModelConfig
from memae.nn import build_backbone, build_model, list_backbones, memae_loss, reconstruction_error

SHAPES = {
    "mnist": (1, 28, 28),
    "mnist-paper-text": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "kddcup": (118,),
    "video": (1, 16, 32, 32),
    "video-small": (1, 16, 32, 32),
    "mlp": (10,),
    "conv": (3, 8, 12),
}


def test_every_registered_backbone_has_a_shape_here() -> None:
    assert set(list_backbones()) == set(SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_backbones_reconstruct_the_input_shape(name: str) -> None:
    shape = SHAPES[name]
    width = 0.25 if name == "video" else 1.0
    model, config = build_model(ModelConfig(shape, backbone=name, width=width))
    x = torch.randn(2, *shape)
    rec = model(x)
    assert rec.output.shape == x.shape
    assert rec.weights is not None and rec.weights.shape[1] == config.memory_size


def test_paper_mnist_encoding_is_8x3x3() -> None:
    assert build_backbone("mnist", (1, 28, 28)).latent_shape == (8, 3, 3)


def test_the_seed_note_name_builds_the_mnist_net() -> None:
    a, b = build_backbone("mnist-seed-note", (1, 28, 28)), build_backbone("mnist", (1, 28, 28))
    assert a.latent_shape == b.latent_shape and str(a.encoder) == str(b.encoder)
    assert str(a.decoder) == str(b.decoder)


def _layers(module: torch.nn.Module, kind: type) -> list[tuple[int, int, int]]:
    return [(m.kernel_size[0], m.stride[0], m.out_channels) for m in module.modules() if isinstance(m, kind)]


def test_paper_text_mnist_net_is_the_layers_the_text_gives() -> None:
    backbone = build_backbone("mnist-paper-text", (1, 28, 28))
    assert backbone.latent_shape == (64, 4, 4)
    assert _layers(backbone.encoder, torch.nn.Conv2d) == [(1, 2, 16), (3, 2, 32), (3, 2, 64)]
    assert _layers(backbone.decoder, torch.nn.ConvTranspose2d) == [(3, 2, 64), (3, 2, 32), (3, 2, 1)]
    x, sizes = torch.randn(3, 1, 28, 28), [28]
    for layer in [*backbone.encoder, *backbone.decoder]:
        x = layer(x)
        if isinstance(layer, torch.nn.modules.conv._ConvNd):
            sizes.append(x.shape[-1])
    assert sizes == [28, 14, 7, 4, 7, 14, 28]


def test_conv_net_refuses_a_decoder_that_cannot_restore_the_input() -> None:
    from memae.nn.backbones import conv_net

    with pytest.raises(ValueError, match="ending in 1 channels"):
        conv_net((1, 28, 28), [(3, 2, 8), (3, 2, 16)], [(3, 2, 8), (3, 2, 3)], torch.nn.ReLU)
    with pytest.raises(ValueError, match="needs 2 layers"):
        conv_net((1, 28, 28), [(3, 2, 8), (3, 2, 16)], [(3, 2, 1)], torch.nn.ReLU)
    with pytest.raises(ValueError, match="cannot mirror"):  # a stride-2 layer cannot undo stride 4
        conv_net((1, 28, 28), [(3, 4, 8)], [(3, 2, 1)], torch.nn.ReLU)


def test_authors_init_draws_the_authors_statistics() -> None:
    torch.manual_seed(0)
    model, config = build_model(ModelConfig((3, 32, 32), backbone="cifar10", weight_init="authors"))
    assert config.weight_init == "authors"
    convs = [m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    weights = torch.cat(convs)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    gamma = torch.cat([m.weight for m in norms])
    assert abs(float(weights.mean())) < 1e-3 and float(weights.std()) == pytest.approx(0.02, rel=0.02)
    assert float(gamma.mean()) == pytest.approx(1.0, abs=3e-3)
    assert float(gamma.std()) == pytest.approx(0.02, rel=0.15)
    assert all(float(m.bias.abs().max()) == 0.0 for m in norms)
    # the memory keeps its own uniform draw in ±1/sqrt(C)
    assert model.memory is not None and float(model.memory.memory.abs().max()) <= 1 / 4096**0.5

    torch.manual_seed(0)
    default, _ = build_model(ModelConfig((3, 32, 32), backbone="cifar10"))
    assert all(bool((m.weight == 1).all()) for m in default.modules() if isinstance(m, torch.nn.BatchNorm2d))
    first = next(m for m in default.modules() if isinstance(m, torch.nn.Conv2d))
    assert float(first.weight.std()) > 0.05  # PyTorch's own draw, not N(0, 0.02)


def test_unknown_weight_init_is_refused() -> None:
    with pytest.raises(ValueError, match="weight_init must be one of"):
        ModelConfig((1, 28, 28), weight_init="xavier")


def test_paper_video_encoding_is_256x2x16x16_and_location_addressing() -> None:
    backbone = build_backbone("video", (1, 16, 256, 256), width=1 / 32)
    assert backbone.latent_shape == (8, 2, 16, 16)
    assert backbone.addressing == "location"
    assert backbone.memory_size == 2000


def test_unknown_backbone_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known backbones: cifar10"):
        build_model(ModelConfig((4,), backbone="resnet"))


def test_gradients_reach_encoder_decoder_and_memory() -> None:
    model, config = build_model(ModelConfig((1, 28, 28), backbone="mnist"))
    x = torch.rand(4, 1, 28, 28)
    memae_loss(x, model(x), config).total.backward()
    assert model.memory is not None and model.memory.memory.grad.abs().sum() > 0
    for part in (model.encoder, model.decoder):
        assert all(p.grad is not None for p in part.parameters())
        assert sum(float(p.grad.abs().sum()) for p in part.parameters()) > 0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_share_encoder_and_decoder(variant: str) -> None:
    ae, _ = build_model(ModelConfig((12,), variant="ae"))
    model, _ = build_model(ModelConfig((12,), variant=variant))
    enc_dec = lambda m: [p.shape for p in [*m.encoder.parameters(), *m.decoder.parameters()]]  # noqa: E731
    assert enc_dec(model) == enc_dec(ae)
    spec = VARIANTS[variant]
    assert (model.memory is not None) == spec.memory
    if spec.memory:
        assert model.memory is not None
        assert (model.memory.shrink_threshold > 0) == spec.shrinkage


def test_variant_terms_enter_the_loss_only_when_switched_on() -> None:
    x = torch.randn(8, 12)
    for name, spec in VARIANTS.items():
        torch.manual_seed(0)
        model, config = build_model(ModelConfig((12,), variant=name, entropy_weight=0.5, l1_weight=0.5))
        terms = memae_loss(x, model(x), config)
        expected = terms.reconstruction
        if spec.entropy:
            expected = expected + 0.5 * terms.entropy
        if spec.latent_l1:
            expected = expected + 0.5 * terms.sparsity
        torch.testing.assert_close(terms.total, expected)
        assert (terms.entropy > 0).item() == spec.memory


def test_paper_titles_are_accepted_as_variant_names() -> None:
    _, config = build_model(ModelConfig((5,), variant="MemAE w/o shrinkage"))
    assert config.variant == "memae-noshrink"
    with pytest.raises(ValueError, match="known variants"):
        ModelConfig((5,), variant="vae")


def test_default_shrink_threshold_is_one_over_n() -> None:
    _, config = build_model(ModelConfig((5,), memory_size=40))
    assert config.shrink_threshold == pytest.approx(1 / 40)


def test_decode_slots_gives_input_shaped_images() -> None:
    model, _ = build_model(ModelConfig((1, 28, 28), backbone="mnist"))
    assert model.decode_slots(torch.tensor([0, 5, 7])).shape == (3, 1, 28, 28)
    video, _ = build_model(ModelConfig((1, 8, 16, 16), backbone="video", width=0.1, memory_size=10))
    assert video.decode_slots().shape == (10, 1, 8, 16, 16)


def test_reconstruction_error_reductions() -> None:
    x, out = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    out[1] *= 2
    torch.testing.assert_close(reconstruction_error(x, out, "mse"), torch.tensor([1.0, 4.0]))
    torch.testing.assert_close(reconstruction_error(x, out, "l2"), torch.tensor([3**0.5, 2 * 3**0.5]))
    with pytest.raises(ValueError, match="reduction"):
        reconstruction_error(x, out, "max")
