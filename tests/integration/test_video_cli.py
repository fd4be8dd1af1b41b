"""`memae train-video` and `memae score-video` end to end on tiny real files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from memae.cli import main

av = pytest.importorskip("av")


def _frames(n: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[:16, :24]
    base = 50 + 5 * seed + 3 * x + 2 * y
    return np.clip(base[None] + 4 * np.arange(n)[:, None, None], 0, 255).astype(np.uint8)


def _write_avi(path: Path, frames: np.ndarray) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            rgb = np.repeat(frame[:, :, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _config(tmp_path: Path) -> Path:
    config = {
        "name": "tiny",
        "frames": {"height": 8, "width": 8, "clip_len": 4, "train_stride": 1},
        "model": {"backbone": "video-small", "variant": "memae", "memory_size": 10, "similarity": "dot"},
        "train": {"epochs": 2, "batch_size": 5, "lr": 1e-3, "validation_fraction": 0.0, "device": "cpu"},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_on_own_videos_then_score_a_video_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_avi = _write_avi(tmp_path / "normal.avi", _frames(14, 0))
    folder = tmp_path / "normal_frames"
    folder.mkdir()
    for k, frame in enumerate(_frames(12, 1)):
        Image.fromarray(frame).save(folder / f"{k:04d}.png")
    model = tmp_path / "model.memae"
    rc = main(
        [
            "train-video",
            "--config",
            str(_config(tmp_path)),
            "--videos",
            str(train_avi),
            str(folder),
            "--out",
            str(model),
        ]
    )
    assert rc == 0 and model.is_file()
    assert "on 26 frames of 2 videos" in capsys.readouterr().out

    test_avi = _write_avi(tmp_path / "test.avi", _frames(10, 2))
    out = tmp_path / "scored"
    rc = main(
        ["score-video", str(model), str(test_avi), "--out", str(out), "--overlays", "3", "--threshold", "0.0"]
    )
    assert rc == 0
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert [int(r["frame"]) for r in rows] == list(range(10))
    normality = np.array([float(r["normality"]) for r in rows])
    assert normality.min() == pytest.approx(0) and normality.max() == pytest.approx(1)
    assert all(r["flagged"] == "1" for r in rows)  # every error exceeds 0
    # The CSV holds the same errors the library computes from the saved model.
    from memae.data.video import user_video
    from memae.video.clips import FrameStore
    from memae.video.experiment import load_video_model
    from memae.video.scoring import frame_errors

    loaded = load_video_model(model)
    store = FrameStore.decode([user_video(test_avi)], (8, 8))
    _, errors = frame_errors(loaded.model, store.frames[0], 4)
    np.testing.assert_allclose([float(r["error"]) for r in rows], errors, rtol=1e-6)
    assert (out / "scores.png").stat().st_size > 0
    overlays = sorted((out / "overlays").glob("*.png"))
    assert len(overlays) == 3
    with Image.open(overlays[0]) as img:
        assert img.size == (24, 16) and img.mode == "RGB"  # the video's own frames, not the model's 8x8


def test_score_video_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["score-video", str(tmp_path / "none.memae"), str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 1
    assert capsys.readouterr().err.startswith("memae: error:")


def test_a_threshold_is_learnt_from_the_training_videos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from memae.data.video import user_video
    from memae.video.clips import FrameStore
    from memae.video.experiment import load_video_model
    from memae.video.scoring import frame_errors

    normal = [_write_avi(tmp_path / f"normal{s}.avi", _frames(12, s)) for s in (0, 1)]
    model = tmp_path / "model.memae"
    argv = ["train-video", "--config", str(_config(tmp_path)), "--videos", *map(str, normal)]
    assert main([*argv, "--out", str(model)]) == 0
    loaded = load_video_model(model)
    store = FrameStore.decode([user_video(p) for p in normal], (8, 8))
    train_errors = np.concatenate([frame_errors(loaded.model, f, 4)[1] for f in store.frames])
    assert loaded.threshold == pytest.approx(np.percentile(train_errors, 99.0), rel=1e-6)
    assert "threshold" in capsys.readouterr().out

    bright = np.full((10, 16, 24), 255, dtype=np.uint8)  # far brighter than any training frame
    out = tmp_path / "scored"
    assert (
        main(["score-video", str(model), str(_write_avi(tmp_path / "odd.avi", bright)), "--out", str(out)])
        == 0
    )
    rows = list(csv.DictReader((out / "scores.csv").open()))
    flagged = [r["flagged"] == "1" for r in rows]
    assert flagged == [float(r["error"]) > loaded.threshold for r in rows]
    assert any(flagged)
    assert "frames over the threshold" in capsys.readouterr().out
