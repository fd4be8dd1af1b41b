"""The video stream: frames in one at a time over a WebSocket, each frame's error out once its
clip is complete — the same errors as ``memae score-video``'s scoring of the whole video."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

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
from tests.serve_helpers import frame_folder, running, street_frames, train_video_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def video_model(tmp_path_factory) -> Path:
    return train_video_checkpoint(tmp_path_factory.mktemp("video"))


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
    frames = street_frames(10, 3)
    detectors = load_detectors([str(video_model)])
    trained = detectors["street"]
    experiment = trained.experiment
    decoded = FrameStore.decode([user_video(frame_folder(tmp_path / "clip", frames))], experiment.frames.size)
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
            ([_png(street_frames(1, 0)[0])] * 4, "max_video_frames", "max_video_frames"),
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


def _score_video_csv(video_model: Path, video: Path, out: Path) -> dict[int, tuple[float, int]]:
    """``memae score-video``'s scores.csv: frame -> (error, flagged)."""
    assert main(["score-video", str(video_model), str(video), "--out", str(out), "--overlays", "0"]) == 0
    lines = (out / "scores.csv").read_text().splitlines()[1:]
    return {int(f[0]): (float(f[1]), int(f[4])) for f in (line.split(",") for line in lines)}


def _upload(url: str, files: list[tuple[str, bytes]]):  # type: ignore[no-untyped-def]
    import httpx

    return httpx.post(
        url + "/models/street/score-video", files=[("file", (n, c)) for n, c in files], timeout=120
    )


def test_an_uploaded_video_is_scored_as_score_video_scores_it(video_model, tmp_path) -> None:
    from tests.unit.video.video_formats import write_avi

    frames = street_frames(11, 4)
    frames[6:8, 2:9, 3:12] = 255  # something bright crosses the street
    avi = write_avi(tmp_path / "street cam.avi", frames)
    expected = _score_video_csv(video_model, avi, tmp_path / "cli")
    detectors = load_detectors([str(video_model)])
    with running(asgi(create_app(detectors, ServeConfig()))) as url:
        answer = _upload(url, [(avi.name, avi.read_bytes())])
        assert answer.status_code == 200, answer.text
        # its frames as image files, in any order: ordered by name
        pngs = [(f"{k:03d}.png", _png(frame)) for k, frame in enumerate(frames)]
        as_frames = _upload(url, pngs[::-1])
    body = answer.json()
    assert body["model"] == "street" and body["video"] == "street_cam.avi"
    assert body["frames"] == sorted(expected) == list(range(11))
    np.testing.assert_allclose(body["errors"], [expected[u][0] for u in body["frames"]], rtol=1e-6)
    assert body["threshold"] == pytest.approx(detectors["street"].threshold)
    assert body["labels"] == [expected[u][1] for u in body["frames"]]
    by_frames = _score_video_csv(video_model, frame_folder(tmp_path / "frames", frames), tmp_path / "cli2")
    assert as_frames.status_code == 200, as_frames.text
    assert as_frames.json()["video"] == "11 frames"
    np.testing.assert_allclose(as_frames.json()["errors"], [by_frames[u][0] for u in range(11)], rtol=1e-6)


def test_video_uploads_refused_name_the_problem_and_the_server_stays_up(video_model, tmp_path) -> None:
    import httpx

    from tests.unit.video.video_formats import write_avi

    detectors = load_detectors([str(video_model)])
    config = ServeConfig(limits=Limits(max_video_frames=8, max_pixels=1000))
    long_video = write_avi(tmp_path / "long.avi", street_frames(9, 0)).read_bytes()
    wide_video = write_avi(tmp_path / "wide.avi", np.zeros((4, 40, 40), np.uint8)).read_bytes()
    frame = _png(street_frames(1, 0)[0])
    with running(asgi(create_app(detectors, config))) as url:
        for files, status, words, limit in [
            ([("long.avi", long_video)], 413, "more than the 8 frames allowed", "max_video_frames"),
            (
                [(f"{k}.png", frame) for k in range(9)],
                413,
                "more than the 8 frames allowed",
                "max_video_frames",
            ),
            ([("wide.avi", wide_video)], 413, "40x40 = 1600 pixels", "max_pixels"),
            ([("clip.avi", b"not a video")], 400, "clip.avi is not a readable video", None),
            ([("one.png", frame)], 400, "single image", None),
            ([(f"{k}.png", frame) for k in range(3)], 400, "the model needs at least 4", None),
            ([("a.png", frame), ("a.png", b"")], 400, "two frames are named 'a.png'", None),
        ]:
            refused = _upload(url, files)
            assert refused.status_code == status, refused.text
            assert words in refused.json()["error"] and refused.json()["limit"] == limit
        unknown = httpx.post(url + "/models/nope/score-video", files={"file": ("a.avi", b"")}, timeout=30)
        assert unknown.status_code == 404 and "no video model named 'nope'" in unknown.json()["error"]
        assert httpx.get(url + "/health", timeout=30).json()["models"]["street"]["kind"] == "video"
