from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from video_formats import frames_of, write_images

from memae.config import ModelConfig
from memae.data.video import VideoSource, decode_frames
from memae.nn.model import build_model
from memae.video.clips import ClipDataset, FrameStore, clip_starts
from memae.video.config import ScoringConfig
from memae.video.evaluate import evaluate
from memae.video.scoring import (
    align_frames,
    clip_errors,
    error_maps,
    frame_errors,
    normality,
    pooled_auc,
)


def _store(lengths: tuple[int, ...] = (20, 18), size: tuple[int, int] = (8, 8)) -> FrameStore:
    gen = torch.Generator().manual_seed(0)
    frames = tuple(torch.rand(n, *size, generator=gen) * 2 - 1 for n in lengths)
    labels = tuple((np.arange(n) >= n // 2).astype(np.int64) for n in lengths)
    return FrameStore(tuple(f"v{i}" for i in range(len(lengths))), frames, labels)


def _model(clip_len: int = 4, size: tuple[int, int] = (8, 8), variant: str = "memae"):
    torch.manual_seed(0)
    model, _ = build_model(
        ModelConfig(input_shape=(1, clip_len, *size), backbone="video-small", variant=variant, memory_size=20)
    )
    return model.eval()


def test_frame_store_decodes_each_video_once(tmp_path: Path) -> None:
    videos = [
        VideoSource(
            f"v{i}", tuple(write_images(tmp_path / f"v{i}", frames_of(n, i), [f"{k}.png" for k in range(n)]))
        )
        for i, n in enumerate((6, 9))
    ]
    calls: list[str] = []

    def counting(video: VideoSource, size: tuple[int, int]) -> np.ndarray:
        calls.append(video.name)
        return decode_frames(video, size)

    store = FrameStore.decode(videos, size=(8, 12), decoder=counting)
    clips = ClipDataset(store.frames, clip_len=4)
    batch = [clips[i] for i in range(len(clips))] * 3  # serving clips decodes nothing more
    assert calls == ["v0", "v1"] and len(batch) == 3 * len(clips)
    assert store.n_frames == 15 and store.frame_shape == (8, 12)
    assert store.frames[0].dtype == torch.float32
    assert float(store.frames[0].min()) >= -1 and float(store.frames[0].max()) <= 1
    threaded = FrameStore.decode(videos, size=(8, 12), workers=2)
    for a, b in zip(store.frames, threaded.frames, strict=True):
        assert torch.equal(a, b)


def test_clips_are_views_into_the_decoded_frames() -> None:
    store = _store()
    clips = ClipDataset(store.frames, clip_len=4, stride=3)
    assert len(clips) == len(clip_starts(20, 4, 3)) + len(clip_starts(18, 4, 3)) == 6 + 5
    clip = clips[1]
    assert clip.shape == (1, 4, 8, 8)
    assert clip.untyped_storage().data_ptr() == store.frames[0].untyped_storage().data_ptr()
    assert torch.equal(clip[0], store.frames[0][3:7])
    last = clips[len(clips) - 1]
    assert torch.equal(last[0], store.frames[1][12:16])


def test_clip_starts_fit_inside_the_video() -> None:
    np.testing.assert_array_equal(clip_starts(10, 4), np.arange(7))
    np.testing.assert_array_equal(clip_starts(10, 4, stride=3), [0, 3, 6])
    assert clip_starts(3, 4).size == 0
    with pytest.raises(ValueError, match="no video"):
        ClipDataset([torch.zeros(3, 2, 2)], clip_len=4)


def test_center_alignment_scores_every_frame_with_the_clip_around_it() -> None:
    aligned = align_frames(40, 16, "center")
    np.testing.assert_array_equal(aligned.frames, np.arange(40))
    assert aligned.starts.min() == 0 and aligned.starts.max() == 40 - 16
    for u in range(8, 40 - 7):
        assert aligned.starts[u] == u - 8  # frame u is the 9th frame of its clip
    assert aligned.starts[0] == 0 and aligned.starts[39] == 24


def test_authors_alignment_leaves_out_the_first_8_and_last_7_frames() -> None:
    n = 40
    aligned = align_frames(n, 16, "authors")
    np.testing.assert_array_equal(aligned.frames, np.arange(n)[8:-7])
    np.testing.assert_array_equal(aligned.starts, np.arange(n - 16 + 1))  # one frame per clip
    with pytest.raises(ValueError, match="alignment"):
        align_frames(n, 16, "start")
    with pytest.raises(ValueError, match="shorter than one clip"):
        align_frames(10, 16)


def test_normality_is_per_video_min_max() -> None:
    p = normality(np.array([2.0, 4.0, 3.0]))
    np.testing.assert_allclose(p, [1.0, 0.0, 0.5])
    np.testing.assert_array_equal(normality(np.full(4, 7.0)), np.ones(4))


def test_pooled_auc_is_sklearns_on_the_concatenation_and_matches_the_authors_convention() -> None:
    rng = np.random.default_rng(0)
    scores = [rng.random(30), rng.random(20)]
    labels = [rng.integers(0, 2, 30), rng.integers(0, 2, 20)]
    ours = pooled_auc(scores, labels)
    assert ours == pytest.approx(roc_auc_score(np.concatenate(labels), np.concatenate(scores)))
    # The authors score normality p = 1 - anomaly with "normal" as the positive class: same AUC.
    p = [1 - s for s in scores]
    assert ours == pytest.approx(roc_auc_score(1 - np.concatenate(labels), np.concatenate(p)))


def test_clip_errors_do_not_depend_on_the_batch() -> None:
    model, store = _model(), _store()
    starts = np.arange(0, 17)
    one = clip_errors(model, store.frames[0], starts, 4, "l2", batch_size=1)
    seven = clip_errors(model, store.frames[0], starts, 4, "l2", batch_size=7)
    np.testing.assert_allclose(one, seven, rtol=1e-5, atol=1e-7)


def test_clip_error_reductions() -> None:
    model, store = _model(), _store()
    clip = store.frames[0][2:6][None, None]
    with torch.no_grad():
        diff = model(clip).output - clip
    l2 = clip_errors(model, store.frames[0], [2], 4, "l2")[0]
    mse = clip_errors(model, store.frames[0], [2], 4, "mse")[0]
    # One channel: the per-pixel l2 norm over channels is |diff|.
    assert l2 == pytest.approx(float(diff.abs().mean()), rel=1e-5)
    assert mse == pytest.approx(float(diff.pow(2).mean()), rel=1e-5)


def test_patch_max_reduction_finds_a_small_error_the_mean_dilutes() -> None:
    from memae.video.scoring import clip_error

    x = torch.zeros(2, 1, 4, 16, 16)
    out = torch.zeros_like(x)
    out[0, 0, :, 2:6, 8:12] = 1.0  # a 4x4 error in every frame
    out[1] += 0.0625  # the same total error spread over the frame
    mean = clip_error(x, out, "l2")
    patch = clip_error(x, out, "patch-max", patch_size=4)
    assert mean[0] == pytest.approx(mean[1])
    assert patch[0] == pytest.approx(1.0) and patch[1] == pytest.approx(0.0625)
    # A window at half-window stride: the 4x4 block at rows 2-5 straddles windows; 8x8 windows see 16/64.
    assert clip_error(x, out, "patch-max", patch_size=8)[0] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="reduction"):
        ScoringConfig(reduction="max")  # type: ignore[arg-type]


def test_frame_errors_reuse_the_clip_of_each_frame() -> None:
    model, store = _model(), _store()
    frames, errors = frame_errors(model, store.frames[0], 4, "center", "l2")
    np.testing.assert_array_equal(frames, np.arange(20))
    per_clip = clip_errors(model, store.frames[0], np.arange(17), 4, "l2")
    np.testing.assert_allclose(errors, per_clip[align_frames(20, 4, "center").starts], rtol=1e-6)
    frames_a, errors_a = frame_errors(model, store.frames[0], 4, "authors", "l2")
    np.testing.assert_array_equal(frames_a, np.arange(2, 19))
    np.testing.assert_allclose(errors_a, per_clip, rtol=1e-6)


def test_evaluate_pools_videos_and_states_what_it_scored() -> None:
    model, store = _model(), _store()
    center = evaluate(model, store, 4, ScoringConfig("center", "l2"))
    authors = evaluate(model, store, 4, ScoringConfig("authors", "l2"))
    assert center.n_frames == center.n_scored == 38
    assert authors.n_scored == (20 - 3) + (18 - 3)
    for video in center.videos:
        assert video.normality.max() == pytest.approx(1.0) and video.normality.min() == pytest.approx(0.0)
        np.testing.assert_allclose(video.anomaly, 1 - video.normality)
    labels = np.concatenate([v.labels for v in center.videos])
    expected = roc_auc_score(labels, np.concatenate([v.anomaly for v in center.videos]))
    assert center.auc() == pytest.approx(expected)
    no_labels = FrameStore(store.names, store.frames, (None, None))
    with pytest.raises(ValueError, match="no labels"):
        evaluate(model, no_labels, 4, ScoringConfig()).auc()


def test_error_maps_are_the_frames_pixel_errors_inside_its_clip() -> None:
    model, store = _model(), _store()
    errors, recs = error_maps(model, store.frames[0], [0, 10, 19], 4)
    assert errors.shape == recs.shape == (3, 8, 8)
    clip = store.frames[0][8:12][None, None]  # frame 10 sits at offset 2 of the clip [8, 12)
    with torch.no_grad():
        out = model(clip).output
    np.testing.assert_allclose(errors[1], (out - clip)[0, 0, 2].abs().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(recs[1], out[0, 0, 2].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        error_maps(model, store.frames[0], [20], 4)
