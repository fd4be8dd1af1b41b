"""The video stream: frames in one at a time over a WebSocket, each frame's error out once its
clip is complete — the same errors as ``memae score-video``'s scoring of the whole video."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("fastapi")
ws_client = pytest.importorskip("websockets.sync.client")

from PIL import Image  # noqa: E402

from memae.cli import main  # noqa: E402
from memae.data.video import user_video  # noqa: E402
from memae.serve.app import asgi, create_app  # noqa: E402
from memae.serve.cli import load_detectors  # noqa: E402
from memae.serve.config import Limits, ServeConfig  # noqa: E402
from memae.serve.video import FrameStream  # noqa: E402
from memae.video.clips import FrameStore  # noqa: E402
from memae.video.scoring import align_frames, frame_errors  # noqa: E402
from tests.serve_helpers import running  # noqa: E402


def _frames(n: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[:16, :24]
    base = 50 + 5 * seed + 3 * x + 2 * y
    return np.clip(base[None] + 4 * np.arange(n)[:, None, None], 0, 255).astype(np.uint8)


def _folder(root: Path, frames: np.ndarray) -> Path:
    root.mkdir()
    for k, frame in enumerate(frames):
        Image.fromarray(frame).save(root / f"{k:04d}.png")
    return root


@pytest.fixture(scope="module")
def video_model(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("video")
    config = {
        "name": "tiny",
        "frames": {"height": 8, "width": 8, "clip_len": 4, "train_stride": 1},
        "model": {"backbone": "video-small", "variant": "memae", "memory_size": 10, "similarity": "dot"},
        "train": {"epochs": 2, "batch_size": 5, "lr": 1e-3, "validation_fraction": 0.0, "device": "cpu"},
    }
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(config))
    folder = _folder(tmp / "normal", _frames(12, 0))
    out = tmp / "street.memae"
    argv = ["train-video", "--videos", str(folder), "--config", str(tmp / "tiny.yaml"), "--out", str(out)]
    assert main([*argv, "--epochs", "2"]) == 0
    return out


@pytest.mark.parametrize(("n", "clip_len"), [(4, 4), (5, 4), (11, 4), (12, 5), (9, 1)])
def test_the_online_alignment_is_score_videos_centred_one(n, clip_len) -> None:
    stream, errors = FrameStream(clip_len), {}
    for k in range(n):
        if stream.push(torch.zeros(2, 2)) is not None:
            for scored in stream.scored_by(float(k - clip_len + 1)):  # a clip's error: its start
                errors[scored.frame] = scored.error
    errors.update({s.frame: s.error for s in stream.finish()})
    expected = align_frames(n, clip_len, "center")
    assert sorted(errors) == expected.frames.tolist()
    assert [errors[u] for u in expected.frames] == expected.starts.astype(float).tolist()


def _png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def test_streamed_frames_get_score_videos_errors(video_model, tmp_path) -> None:
    frames = _frames(10, 3)
    detectors = load_detectors([str(video_model)])
    trained = detectors["street"]
    experiment = trained.experiment
    decoded = FrameStore.decode([user_video(_folder(tmp_path / "clip", frames))], experiment.frames.size)
    index, expected = frame_errors(
        trained.model,
        decoded.frames[0],
        experiment.frames.clip_len,
        "center",
        experiment.scoring.reduction,
        experiment.scoring.batch_size,
        "cpu",
        experiment.scoring.patch_size,
    )
    got: dict[int, float] = {}
    with (
        running(asgi(create_app(detectors, ServeConfig()))) as url,
        ws_client.connect(url.replace("http", "ws") + "/models/street/stream") as ws,
    ):
        for k, frame in enumerate(frames):
            ws.send(_png(frame))
            if k + 1 >= experiment.frames.clip_len:  # each complete clip answers at once
                got.update({s["frame"]: s["error"] for s in json.loads(ws.recv())["scores"]})
                assert max(got) == max(
                    k - experiment.frames.clip_len // 2 + 1, experiment.frames.clip_len // 2
                )
        ws.send("end")
        got.update({s["frame"]: s["error"] for s in json.loads(ws.recv())["scores"]})
        assert json.loads(ws.recv()) == {"done": True, "frames": 10}
    assert sorted(got) == index.tolist()
    np.testing.assert_allclose([got[u] for u in index], expected, rtol=1e-5)


def test_stream_refusals_name_the_problem_and_the_server_stays_up(video_model) -> None:
    import httpx

    detectors = load_detectors([str(video_model)])
    config = ServeConfig(limits=Limits(max_video_frames=3, max_pixels=1000))
    with running(asgi(create_app(detectors, config))) as url:
        base = url.replace("http", "ws")
        for sent, words, limit in [
            ([_png(_frames(1, 0)[0])] * 4, "max_video_frames", "max_video_frames"),
            ([_png(np.zeros((40, 40), np.uint8))], "max_pixels", "max_pixels"),
            ([b"not an image"], "not a readable image", None),
            (["end"], "one clip needs 4", None),
        ]:
            with ws_client.connect(base + "/models/street/stream") as ws:
                for message in sent:
                    ws.send(message)
                answer = json.loads(ws.recv())
                while "scores" in answer:
                    answer = json.loads(ws.recv())
                assert words in answer["error"] and answer["limit"] == limit
        with ws_client.connect(base + "/models/nope/stream") as ws:
            assert "no video model named 'nope'" in json.loads(ws.recv())["error"]
        health = httpx.get(url + "/health", timeout=30).json()
        assert health["models"]["street"]["kind"] == "video"
        refused = httpx.post(url + "/score", json={"data": [[1.0]]}, timeout=30)
        assert refused.status_code == 400 and "/models/street/stream" in refused.json()["error"]
