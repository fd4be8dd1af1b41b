"""The benchmarks' reference implementation does the same work as memae: same outputs,
same loss, same gradients, same scores, same decoded clips."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memae import ModelConfig
from memae.data.video import VideoSource
from memae.fast import inference_model
from memae.nn import build_model, memae_loss, reconstruction_error
from memae.training import score
from memae.video.clips import ClipDataset, FrameStore
from tests.fixtures import load_benchmark

ref = load_benchmark("reference")

CASES = {
    "mnist": ((1, 28, 28), "memae"),
    "kddcup": ((20,), "memae"),
    "video-small": ((1, 4, 16, 16), "memae"),
    "conv": ((1, 4, 8, 8), "memae-nonspar"),
}


def _pair(name: str):
    shape, variant = CASES[name]
    model, config = build_model(
        ModelConfig(shape, backbone=name, variant=variant, memory_size=30, shrink_threshold=0.02)
    )
    reference = ref.RefMemAE(
        shape,
        name,
        mem_dim=30,
        shrink_thres=0.02 if variant == "memae" else 0.0,
        addressing=config.addressing,
    )
    reference.load_memae_state(model.state_dict())
    return model, config, reference


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_training_step_is_memaes(name: str) -> None:
    model, config, reference = _pair(name)
    x = torch.randn(3, *CASES[name][0])
    rec = model(x)
    out, att = reference(x)
    torch.testing.assert_close(out, rec.output)
    torch.testing.assert_close(att, rec.weights)
    entropy_weight = config.entropy_weight if name != "conv" else 0.0
    memae_loss(x, rec, config).total.backward()
    loss = torch.nn.functional.mse_loss(out, x) + entropy_weight * ref.entropy_loss(att)
    loss.backward()
    grads = dict(reference.named_parameters())
    # conv biases before a training-mode batch norm have a true gradient of 0: rounding
    # noise only, so the absolute tolerance is on the scale of all gradients
    scale = max(float(p.grad.abs().max()) for p in model.parameters())  # type: ignore[union-attr]
    for key, p in model.named_parameters():
        other = grads[key.replace("memory.memory", "mem.unit.memory")].grad
        torch.testing.assert_close(
            p.grad, other, rtol=1e-4, atol=1e-5 * scale, msg=lambda m, key=key: f"{key}: {m}"
        )


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_scores_equal_memae_and_its_fast_path(name: str) -> None:
    model, _, reference = _pair(name)
    x = torch.randn(5, *CASES[name][0])
    model.train()
    model(torch.randn(8, *CASES[name][0]))  # move the batch-norm statistics off their defaults
    reference.load_memae_state(model.state_dict())
    reduction = "l2" if name == "video-small" else "mse"
    expected = ref.score(reference, x, reduction)
    np.testing.assert_allclose(score(model, x, reduction=reduction), expected, rtol=1e-5, atol=1e-7)
    with torch.inference_mode():
        fast = inference_model(model)(x).output
    got = reconstruction_error(x, fast, reduction)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_reference_clips_equal_the_frame_store_clips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for t in range(6):
        path = tmp_path / f"{t:03d}.jpg"
        Image.fromarray(rng.integers(0, 256, (15, 21, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    clips = ref.RefClipDataset([paths], [(0, 0), (0, 2)], size=(8, 12), clip_len=4)
    store = FrameStore.decode([VideoSource("v", tuple(paths))], size=(8, 12))
    views = ClipDataset(store.frames, clip_len=4, stride=2)
    for i in range(2):
        torch.testing.assert_close(clips[i], views[i], rtol=0, atol=1e-6)
