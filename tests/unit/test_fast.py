import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from memae import ModelConfig, TrainConfig
from memae.fast import (
    CompilerUnavailable,
    compile_unavailable,
    fold_batchnorm,
    inference_model,
    resolve_memory_format,
    train_channels_last,
    use_channels_last,
)
from memae.nn import build_model, memae_loss, reconstruction_error

SHAPES = {
    "mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "video-small": (1, 8, 32, 32),
    "conv": (3, 8, 12),
    "kddcup": (20,),
}


def _trained_looking(name: str) -> tuple[nn.Module, ModelConfig]:
    """A model whose batch norms have non-trivial statistics and affine parameters."""
    width = 0.25 if name == "video-small" else 1.0
    model, config = build_model(ModelConfig(SHAPES[name], backbone=name, width=width, memory_size=20))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval(), config


def _x(name: str, n: int = 3) -> torch.Tensor:
    return torch.randn(n, *SHAPES[name], generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_inference_model_scores_equal_the_plain_model(name: str, memory_format: str) -> None:
    model, _ = _trained_looking(name)
    x = _x(name)
    with torch.inference_mode():
        plain = model(x)
        fast = inference_model(model, memory_format=memory_format)(x)  # type: ignore[arg-type]
    torch.testing.assert_close(fast.output, plain.output, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.weights, plain.weights, rtol=1e-4, atol=1e-6)
    for reduction in ("mse", "l2") if x.dim() > 2 else ("mse",):
        torch.testing.assert_close(
            reconstruction_error(x, fast.output, reduction),
            reconstruction_error(x, plain.output, reduction),
            rtol=1e-4,
            atol=1e-7,
        )


def test_folding_removes_every_batch_norm_and_leaves_the_original_alone() -> None:
    model, _ = _trained_looking("video-small")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("transposed", [True, False])
def test_fold_handles_missing_bias_and_non_affine_norms(affine: bool, transposed: bool) -> None:
    conv = (nn.ConvTranspose2d if transposed else nn.Conv2d)(3, 5, 3, padding=1, bias=False)
    norm = nn.BatchNorm2d(5, affine=affine)
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    net = nn.Sequential(conv, norm).eval()
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(net)(x), net(x), rtol=1e-5, atol=1e-5)


def _biases_before_batchnorm(model: torch.nn.Module) -> set[str]:
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, torch.nn.Sequential):
            for (i, layer), nxt in zip(module.named_children(), list(module)[1:], strict=False):
                if getattr(layer, "bias", None) is not None and isinstance(
                    nxt, torch.nn.modules.batchnorm._BatchNorm
                ):
                    names.add(f"{prefix}.{i}.bias" if prefix else f"{i}.bias")
    return names


@pytest.mark.parametrize(("name", "weights"), [("mnist", False), ("mnist", True), ("video-small", True)])
def test_channels_last_training_gives_the_same_gradients(name: str, weights: bool) -> None:
    model, config = _trained_looking(name)
    model.train()
    x = _x(name, 4)
    memae_loss(x, model(x), config).total.backward()
    expected = {k: p.grad.clone() for k, p in model.named_parameters()}  # type: ignore[union-attr]
    model.zero_grad()
    keys = list(model.state_dict())
    handles = use_channels_last(model, weights=weights)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    layout = _cl(x.dim()) if weights else torch.contiguous_format
    assert all(m.weight.is_contiguous(memory_format=layout) for m in convs)
    memae_loss(x, model(x), config).total.backward()
    assert list(model.state_dict()) == keys
    # A conv bias right before a training-mode batch norm has a gradient of exactly 0 in
    # exact arithmetic, so only rounding noise, which the layout changes (on one thread by
    # up to ~3e-5 of the largest gradient): those must stay at noise level, the rest agree.
    scale = max(float(g.abs().max()) for g in expected.values())
    noise_only = _biases_before_batchnorm(model)
    for k, p in model.named_parameters():
        if k in noise_only:
            assert float(p.grad.abs().max()) < 1e-3 * scale, k  # type: ignore[union-attr]
        else:
            torch.testing.assert_close(p.grad, expected[k], rtol=1e-3, atol=1e-5 * scale, msg=k)
    for handle in handles:
        handle.remove()
    assert not any(m._forward_pre_hooks for m in model.modules())
    assert all(p.is_contiguous() and p.grad.is_contiguous() for p in model.parameters())  # type: ignore[union-attr]


def test_channels_last_training_is_automatic_for_2d_conv_nets_on_the_cpu() -> None:
    conv, _ = _trained_looking("mnist")
    mlp, _ = _trained_looking("kddcup")
    video, _ = _trained_looking("video-small")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert train_channels_last("auto", conv, cpu)
    assert not train_channels_last("auto", mlp, cpu)
    assert not train_channels_last("auto", video, cpu)  # 3-D: no faster (docs/PERFORMANCE.md)
    assert not train_channels_last("auto", conv, cuda)  # unmeasured there: left alone
    assert not train_channels_last(False, conv, cpu) and train_channels_last(True, conv, cuda)
    with pytest.raises(ValueError, match="channels_last must be True, False or 'auto', got 'nhwc'"):
        TrainConfig(channels_last="nhwc")  # type: ignore[arg-type]


def test_auto_memory_format() -> None:
    conv, _ = _trained_looking("mnist")
    mlp, _ = _trained_looking("kddcup")
    cpu = torch.device("cpu")
    assert resolve_memory_format("auto", conv, cpu) == "channels_last"
    assert resolve_memory_format("auto", mlp, cpu) == "contiguous"
    with pytest.raises(ValueError, match="memory_format must be"):
        resolve_memory_format("nhwc", conv, cpu)  # type: ignore[arg-type]


def test_bf16_inference_is_close_and_returns_float32() -> None:
    model, _ = _trained_looking("mnist")
    x = _x("mnist")
    with torch.inference_mode():
        plain = model(x)
        low = inference_model(model, precision="bf16")(x)
    assert low.output.dtype == torch.float32
    torch.testing.assert_close(low.output, plain.output, rtol=5e-2, atol=5e-2)
    with pytest.raises(ValueError, match="precision must be"):
        inference_model(model, precision="int8")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["mnist", "video-small", "kddcup"])
def test_library_scoring_fast_path_equals_the_plain_path(name: str) -> None:
    from torch.utils.data import TensorDataset

    from memae.training import score

    model, _ = _trained_looking(name)
    x = _x(name, 7)
    reduction = "l2" if name == "video-small" else "mse"
    plain = score(model, x, batch_size=3, reduction=reduction, fast=False)
    np.testing.assert_allclose(
        score(model, x, batch_size=3, reduction=reduction), plain, rtol=1e-4, atol=1e-7
    )
    np.testing.assert_allclose(
        score(model, TensorDataset(x), batch_size=3, reduction=reduction), plain, rtol=1e-4, atol=1e-7
    )
    assert model.training is False and any(p.requires_grad for p in model.parameters())


def test_video_clip_errors_equal_the_plain_models() -> None:
    from memae.video.scoring import clip_error, clip_errors

    model, _ = _trained_looking("video-small")
    frames = torch.rand(12, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    starts = [0, 2, 4]
    got = clip_errors(model, frames, starts, clip_len=8, reduction="l2", batch_size=2)
    clips = torch.stack([frames[s : s + 8] for s in starts]).unsqueeze(1)
    with torch.inference_mode():
        expected = clip_error(clips, model(clips).output, "l2").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)


def test_fused_adam_trains_to_the_weights_of_the_for_loop_adam(monkeypatch: pytest.MonkeyPatch) -> None:
    import copy

    from torch.utils.data import TensorDataset

    import memae.training as training
    from memae.config import TrainConfig

    model, config = _trained_looking("kddcup")
    plain = copy.deepcopy(model)
    data = TensorDataset(_x("kddcup", 40))
    train = TrainConfig(epochs=2, batch_size=8, lr=1e-3, validation_fraction=0.0, device="cpu")
    optimizer, _ = training.make_optimizer(model, train)
    assert optimizer.defaults["fused"]
    training.fit_model(model, config, train, data)
    monkeypatch.setattr(
        training, "make_optimizer", lambda m, t: (torch.optim.Adam(m.parameters(), lr=t.lr), None)
    )
    training.fit_model(plain, config, train, data)
    # Adam divides by the root of the squared gradients, so on parameters with almost no
    # gradient (rarely addressed slots) the two kernels' rounding shows up as a fraction of
    # one step (lr); over 10 steps the weights move by up to 10 lr.
    for (key, a), b in zip(model.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=0.1 * train.lr, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.slow
@pytest.mark.skipif(compile_unavailable("cpu") is not None, reason=str(compile_unavailable("cpu")))
def test_compiled_training_follows_the_eager_run() -> None:
    """``TrainConfig.compile`` changes how the step runs, not what it computes: the same
    per-epoch losses and weights within float rounding."""
    import copy

    from torch.utils.data import TensorDataset

    from memae.config import TrainConfig
    from memae.training import fit_model

    model, config = _trained_looking("kddcup")
    model.train()
    compiled = copy.deepcopy(model)
    data = TensorDataset(_x("kddcup", 16))
    train = TrainConfig(epochs=2, batch_size=8, lr=1e-3, validation_fraction=0.0, device="cpu")
    eager_history = fit_model(model, config, train, data)
    history = fit_model(compiled, config, dataclasses.replace(train, compile=True), data)
    np.testing.assert_allclose(history.train_loss, eager_history.train_loss, rtol=1e-5)
    np.testing.assert_allclose(history.entropy, eager_history.entropy, rtol=1e-4)
    for (key, a), b in zip(compiled.state_dict().items(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=0.1 * train.lr, msg=lambda m, k=key: f"{k}: {m}")


def test_compiled_training_without_a_cpp_compiler_says_so_before_training() -> None:
    from torch._inductor import config as inductor_config
    from torch.utils.data import TensorDataset

    from memae.config import TrainConfig
    from memae.training import fit_model

    model, config = _trained_looking("kddcup")
    before = copy.deepcopy(model.state_dict())
    train = TrainConfig(epochs=1, batch_size=8, validation_fraction=0.0, device="cpu", compile=True)
    expected = r"compile=True: torch\.compile needs a C\+\+ compiler .*compile=False"
    # torch's own patching: pytest's monkeypatch deletes a config entry on undo
    missing = inductor_config.patch({"cpp.cxx": ("no-such-c++-compiler",)})
    with missing, pytest.raises(CompilerUnavailable, match=expected):
        fit_model(model, config, train, TensorDataset(_x("kddcup", 16)))
    for key, value in model.state_dict().items():  # not a step was taken
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


@pytest.mark.parametrize(
    "conv",
    [
        nn.ConvTranspose2d(5, 1, 3, 2, 1, output_padding=1),
        nn.ConvTranspose2d(4, 1, 3, 3, 1, output_padding=0, bias=False),
        nn.ConvTranspose3d(6, 1, 3, (1, 2, 2), 1, output_padding=(0, 1, 1)),
        nn.ConvTranspose3d(3, 1, 3, 2, 1, output_padding=1),
    ],
)
def test_thin_transposed_conv_as_matmul_and_col2im_equals_torchs(conv: nn.Module) -> None:
    # ThinConvTranspose takes over the output layers in inference_model (on the CPU); the
    # inference tests above cover it inside whole networks.
    from memae.fast import ThinConvTranspose

    assert ThinConvTranspose.accepts(conv)
    thin = ThinConvTranspose(conv)
    assert list(thin.state_dict()) == list(conv.state_dict())
    x = torch.randn(2, conv.in_channels, *([5] * (conv.weight.dim() - 2)))
    expected = conv(x)
    for layout in (x, x.contiguous(memory_format=_cl(x.dim()))):
        torch.testing.assert_close(thin(layout), expected, rtol=1e-5, atol=1e-6)
    got = thin(x.requires_grad_())
    grads = torch.autograd.grad(got.square().sum(), [x, conv.weight])
    x.grad = None
    want = torch.autograd.grad(conv(x).square().sum(), [x, conv.weight])
    for g, w in zip(grads, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def _cl(dims: int) -> torch.memory_format:
    return torch.channels_last if dims == 4 else torch.channels_last_3d
