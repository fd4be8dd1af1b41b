"""``memae serve`` end to end: a real server on a loopback port, every endpoint, the token,
every limit and bad request (the server answering afterwards), scores equal to the detector's."""

from __future__ import annotations

import base64
import io
import json
import select
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from PIL import Image  # noqa: E402

from memae.cli import main  # noqa: E402
from memae.data import read_data  # noqa: E402
from memae.detector import MemAEDetector  # noqa: E402
from memae.serve.app import asgi, create_app  # noqa: E402
from memae.serve.config import Batching, Limits, ServeConfig  # noqa: E402
from tests.serve_helpers import blob_images, running, table_frame, train_checkpoints  # noqa: E402


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    return train_checkpoints(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def detectors(checkpoints) -> dict[str, MemAEDetector]:
    return {name: MemAEDetector.load(path) for name, path in checkpoints.items()}


@pytest.fixture(scope="module")
def url(detectors) -> str:
    with running(asgi(create_app(detectors, ServeConfig()))) as base:
        yield base


def _post_json(url: str, path: str, body: object) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=60)


def _assert_answer_matches(answer: dict, detector: MemAEDetector, X: object) -> None:
    expected = detector.decision_function(X)
    np.testing.assert_allclose(answer["scores"], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(answer["calibrated"], detector.calibrated_score(X), atol=1e-12)
    assert answer["labels"] == detector.predict(X).tolist()
    assert answer["threshold"] == pytest.approx(detector.threshold_)


def _healthy(url: str) -> None:
    response = httpx.get(url + "/health", timeout=30)
    assert response.status_code == 200, response.text


def test_health_lists_the_models(url, detectors) -> None:
    body = httpx.get(url + "/health", timeout=30).json()
    assert body["status"] == "ok"
    assert body["models"]["table"]["kind"] == "table"
    assert body["models"]["table"]["columns"] == ["duration", "bytes", "protocol"]
    image = body["models"]["image"]
    assert {k: image[k] for k in ("kind", "input_shape", "columns")} == {
        "kind": "image",
        "input_shape": [1, 16, 16],
        "columns": None,
    }
    assert image["threshold"] == pytest.approx(detectors["image"].threshold_)
    before = image["samples"]
    assert (
        _post_json(url, "/models/image/score", {"data": blob_images(2, seed=9).tolist()}).status_code == 200
    )
    assert httpx.get(url + "/health", timeout=30).json()["models"]["image"]["samples"] == before + 2


def test_table_rows_by_name_and_by_position_score_as_the_detector(url, detectors) -> None:
    frame = table_frame(7, seed=1)
    by_name = _post_json(url, "/models/table/score", {"data": frame.to_dict(orient="records")})
    assert by_name.status_code == 200, by_name.text
    _assert_answer_matches(by_name.json(), detectors["table"], frame)
    # columns given in another order are matched by name
    shuffled = frame[["protocol", "duration", "bytes"]].to_dict(orient="records")
    np.testing.assert_allclose(
        _post_json(url, "/models/table/score", {"data": shuffled}).json()["scores"], by_name.json()["scores"]
    )
    by_position = _post_json(url, "/models/table/score", {"data": frame.values.tolist()})
    assert by_position.status_code == 200, by_position.text
    np.testing.assert_allclose(by_position.json()["scores"], by_name.json()["scores"], rtol=1e-6)


def test_csv_and_parquet_uploads_score_as_the_detector(url, detectors, tmp_path) -> None:
    frame = table_frame(9, seed=2)
    frame.index = [f"row{i}" for i in range(9)]
    csv_text = frame.to_csv()
    response = httpx.post(
        url + "/models/table/score", files={"file": ("records.csv", csv_text.encode())}, timeout=60
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    _assert_answer_matches(answer, detectors["table"], frame.reset_index(drop=True))
    assert answer["ids"] == list(frame.index)
    pytest.importorskip("pyarrow")
    parquet = tmp_path / "records.parquet"
    frame.reset_index(drop=True).to_parquet(parquet)
    response = httpx.post(
        url + "/models/table/score", files={"file": ("records.parquet", parquet.read_bytes())}, timeout=60
    )
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["scores"], answer["scores"], rtol=1e-6)


def test_images_as_nested_lists_with_maps(url, detectors) -> None:
    images = blob_images(3, seed=3)
    images[2, 0, 2:5, 3:12] = 255  # a scratch
    response = _post_json(url, "/models/image/score?maps=true", {"data": images.tolist()})
    assert response.status_code == 200, response.text
    answer = response.json()
    detector = detectors["image"]
    _assert_answer_matches(answer, detector, images)
    expected = detector.anomaly_maps(images)
    assert answer["map_scale"] == pytest.approx(float(expected.max()), rel=1e-5)
    for item, error in zip(answer["maps"], expected, strict=True):
        levels = np.asarray(Image.open(io.BytesIO(base64.b64decode(item["map"]))))
        assert levels.shape == (16, 16)
        np.testing.assert_allclose(
            levels / 65535 * answer["map_scale"], error[0], atol=answer["map_scale"] / 60000
        )
        overlay = Image.open(io.BytesIO(base64.b64decode(item["overlay"])))
        assert (overlay.mode, overlay.size) == ("RGB", (16, 16))
    # (N, H, W) for a one-channel model, and the maps flag in the body
    flat = _post_json(url, "/models/image/score", {"data": images[:, 0].tolist(), "maps": True}).json()
    np.testing.assert_allclose(flat["scores"], answer["scores"], rtol=1e-6)
    assert len(flat["maps"]) == 3


def test_image_file_uploads_are_read_at_the_model_size(url, detectors, tmp_path) -> None:
    images = blob_images(2, seed=4, size=32)  # resized to the model's 16 x 16 on reading
    files = []
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image[0]).save(buffer, format="PNG")
        files.append(("file", (f"cam{i}.png", buffer.getvalue(), "image/png")))
        Image.fromarray(image[0]).save(tmp_path / f"cam{i}.png")
    response = httpx.post(url + "/models/image/score", files=files, timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ids"] == ["cam0.png", "cam1.png"]
    expected = read_data(tmp_path, images=_image_options()).X
    _assert_answer_matches(answer, detectors["image"], expected)


def _image_options():  # type: ignore[no-untyped-def]
    from memae.data import ImageOptions

    return ImageOptions(image_size=(16, 16), channels=1)


def test_score_names_the_models_when_several_are_served(url) -> None:
    response = _post_json(url, "/score", {"data": [[1.0, 2.0, "tcp"]]})
    assert response.status_code == 400
    assert "['image', 'table']" in response.json()["error"]
    response = _post_json(url, "/models/nope/score", {"data": [[1.0]]})
    assert response.status_code == 404
    assert "'nope'" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "words"),
    [
        ("/models/table/score", {"json": {"data": [{"duration": 1.0, "bytes": 2.0}]}}, 400, "protocol"),
        ("/models/table/score", {"json": {"data": [[1.0, 2.0]]}}, 400, "has 2 features"),
        ("/models/table/score", {"json": {"data": [[1.0, 2.0, "tcp"], [1.0]]}}, 400, "same length"),
        ("/models/table/score", {"json": {"data": [[1.0, "x", "tcp"]]}}, 400, "'bytes' held numbers"),
        ("/models/table/score", {"json": {"data": []}}, 400, "non-empty list"),
        ("/models/table/score", {"json": {"rows": []}}, 400, '{"data"'),
        ("/models/table/score", {"json": {"data": [[1, 2, "tcp"]], "maps": True}}, 400, "image models"),
        ("/models/image/score", {"json": {"data": np.zeros((1, 1, 8, 8)).tolist()}}, 400, "16, 16"),
        ("/models/image/score", {"json": {"data": [[["a"]]]}}, 400, "nested lists of numbers"),
        ("/models/image/score", {"json": {"data": np.full((1, 16, 16), 300).tolist()}}, 400, "0..255"),
        ("/models/image/score", {"files": {"file": ("x.png", b"not a png")}}, 400, "x.png is not a readable"),
        ("/models/image/score", {"files": {"other": ("x.png", b"")}}, 400, "field 'file'"),
        ("/models/image/score", {"files": {"file": ("x.exe", b"MZ")}}, 400, "unsupported data file"),
        (
            "/models/table/score",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "JSON",
        ),
        (
            "/models/table/score",
            {"content": b"1,2", "headers": {"content-type": "text/csv"}},
            415,
            "text/csv",
        ),
    ],
)
def test_bad_requests_are_4xx_json_and_the_server_stays_up(url, path, kwargs, status, words) -> None:
    response = httpx.post(url + path, timeout=60, **kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    _healthy(url)


@pytest.fixture(scope="module")
def limited_url(detectors) -> str:
    limits = Limits(max_body_bytes=60_000, max_samples=4, max_pixels=32 * 32, max_files=2)
    with running(asgi(create_app(detectors, ServeConfig(limits=limits)))) as base:
        yield base


def _png_bytes(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((size, size), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("path", "kwargs", "limit"),
    [
        ("/models/table/score", {"json": {"data": [[1.0, 2.0, "tcp"]] * 5}}, "max_samples"),
        (
            "/models/table/score",
            {"files": {"file": ("t.csv", b"duration,bytes,protocol\n" + b"1,2,tcp\n" * 5)}},
            "max_samples",
        ),
        ("/models/image/score", {"json": {"data": np.zeros((1, 1, 40, 40), int).tolist()}}, "max_pixels"),
        ("/models/image/score", {"files": {"file": ("big.png", _png_bytes(40))}}, "max_pixels"),
        (
            "/models/image/score",
            {"files": [("file", (f"{i}.png", _png_bytes(16))) for i in range(3)]},
            "max_files",
        ),
        (
            "/models/table/score",
            {"content": b"x" * 70_000, "headers": {"content-type": "application/json"}},
            "max_body_bytes",
        ),
    ],
)
def test_each_limit_is_a_413_naming_it(limited_url, path, kwargs, limit) -> None:
    response = httpx.post(limited_url + path, timeout=60, **kwargs)
    assert response.status_code == 413, response.text
    assert response.json()["limit"] == limit
    assert limit in response.json()["error"]
    _healthy(limited_url)


def test_a_streamed_body_without_length_is_cut_at_the_limit(limited_url) -> None:
    sent = []

    def chunks():  # no Content-Length: the body is counted as it streams in
        for _ in range(100):
            sent.append(1)
            yield b" " * 10_000

    response = httpx.post(
        limited_url + "/models/table/score",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413, response.text
    assert response.json()["limit"] == "max_body_bytes"
    _healthy(limited_url)


def test_the_token_guards_every_request_the_page_included(detectors) -> None:
    config = ServeConfig(host="127.0.0.1", token="s3cret")
    row = {"data": [[1.0, 2.0, "tcp"]]}
    with running(asgi(create_app({"table": detectors["table"]}, config)), config) as base:
        for method, path in [("GET", "/"), ("GET", "/health"), ("GET", "/openapi.json"), ("POST", "/score")]:
            refused = httpx.request(method, base + path, json=row if method == "POST" else None, timeout=30)
            assert refused.status_code == 401, (path, refused.text)
            assert "/?token=<token>" in refused.json()["error"]
        wrong = httpx.get(base + "/health", headers={"Authorization": "Bearer nope"}, timeout=30)
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret"}
        assert httpx.get(base + "/health", headers=good, timeout=30).status_code == 200
        assert httpx.post(base + "/score", json=row, headers=good, timeout=30).status_code == 200
        page = httpx.get(base + "/", headers=good, timeout=30)
        assert page.status_code == 200 and "<html" in page.text


def test_the_page_takes_the_token_from_the_address_once_and_keeps_it_in_a_cookie(detectors) -> None:
    """As Jupyter does: ``/?token=`` checks it, sets an HttpOnly, SameSite=Strict cookie and
    redirects to ``/``, so the token leaves the address bar and the page's requests carry the cookie."""
    config = ServeConfig(host="127.0.0.1", token="s3cret")
    with running(asgi(create_app({"table": detectors["table"]}, config)), config) as base:
        assert httpx.get(base + "/?token=nope", timeout=30).status_code == 401
        handed = httpx.get(base + "/?token=s3cret", timeout=30)
        assert handed.status_code == 303 and handed.headers["location"] == "/"
        set_cookie = handed.headers["set-cookie"]
        name, value = set_cookie.split(";")[0].split("=", 1)
        assert name == f"memae_token_{base.rsplit(':', 1)[1]}"  # one cookie per port of the host
        assert "s3cret" not in value
        assert {"httponly", "samesite=strict", "path=/"} <= {f.strip().lower() for f in set_cookie.split(";")}
        with httpx.Client(base_url=base, cookies={name: value}, timeout=30) as browser:
            assert browser.get("/").status_code == 200
            assert browser.get("/health").status_code == 200
            assert browser.post("/score", json={"data": [[1.0, 2.0, "tcp"]]}).status_code == 200
        forged = httpx.get(base + "/health", cookies={name: value[:-1] + "0"}, timeout=30)
        assert forged.status_code == 401
        ws = pytest.importorskip("websockets.sync.client")
        stream = base.replace("http", "ws") + "/models/table/stream"
        with ws.connect(stream, additional_headers={"Cookie": f"{name}={value}"}) as accepted:
            assert "no video model named 'table'" in json.loads(accepted.recv())["error"]
        with pytest.raises(Exception, match="403"):  # the handshake is refused
            ws.connect(stream)
        followed = httpx.get(base + "/?token=s3cret", follow_redirects=True, timeout=30)
        assert followed.status_code == 200 and str(followed.url) == base + "/"


def _raw(url: str) -> socket.socket:
    """A plain TCP connection to the server at ``url``, to send it requests byte by byte."""
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=60)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _answered(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_a_slow_body_is_refused_with_408_and_others_are_served_meanwhile(detectors) -> None:
    config = ServeConfig(body_timeout=5.0)
    row = {"data": [[1.0, 2.0, "tcp"]]}
    with running(asgi(create_app({"table": detectors["table"]}, config)), config) as base:
        slow = _raw(base)
        slow.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        slow.sendall(b'Content-Length: 500\r\n\r\n{"data": [')  # and never the rest
        served = httpx.post(base + "/score", json=row, timeout=30)
        assert served.status_code == 200, served.text
        assert not _answered(slow), "the slow request was answered before the other one"
        answer = _read_all(slow)  # the 408, then the connection is closed
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 408 Request Timeout", answer
        body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
        assert body == {
            "error": "the request body did not arrive within 5 s (body_timeout)",
            "limit": "body_timeout",
        }
        assert httpx.post(base + "/score", json=row, timeout=30).status_code == 200


def test_connections_beyond_max_connections_get_503_until_others_close(detectors) -> None:
    config = ServeConfig(max_connections=2)
    row = {"data": [[1.0, 2.0, "tcp"]]}
    with running(asgi(create_app({"table": detectors["table"]}, config)), config) as base:
        idle = [_raw(base) for _ in range(2)]  # connected, saying nothing yet
        time.sleep(0.2)
        refused = httpx.post(base + "/score", json=row, timeout=30)
        assert refused.status_code == 503, refused.text
        for sock in idle:
            sock.close()
        time.sleep(0.2)
        assert httpx.post(base + "/score", json=row, timeout=30).status_code == 200


def test_a_trickling_body_and_a_slow_head_are_cut_at_the_deadline(detectors) -> None:
    config = ServeConfig(body_timeout=1.0)
    with running(asgi(create_app({"table": detectors["table"]}, config)), config) as base:
        trickling = _raw(base)
        trickling.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        trickling.sendall(b"Content-Length: 100000\r\n\r\n")
        got = b""
        for _ in range(200):  # a byte every 50 ms: each arrives well within the deadline, all of them never
            try:
                trickling.sendall(b" ")
            except OSError:  # the server closed the connection
                break
            if _answered(trickling):
                got = _read_all(trickling)
                break
            time.sleep(0.05)
        assert got.startswith(b"HTTP/1.1 408 "), got
        slow_head = _raw(base)
        slow_head.sendall(b"POST /score HTTP/1.1\r\nHost:")  # the headers never end
        answer = _read_all(slow_head)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"headers did not arrive within 1 s" in answer
        idle = _raw(base)  # connects and says nothing: closed, nothing sent
        assert _read_all(idle) == b""
        _healthy(base)


def test_a_client_gone_mid_body_leaves_the_server_serving(detectors, caplog) -> None:
    with running(asgi(create_app({"table": detectors["table"]}, ServeConfig()))) as base:
        for path in ("/score", "/health"):
            sock = _raw(base)
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode())
            sock.sendall(b'Content-Length: 500\r\n\r\n{"data": [')
            sock.close()
        row = {"data": [[1.0, 2.0, "tcp"]]}
        assert httpx.post(base + "/score", json=row, timeout=30).status_code == 200
    assert "scoring failed" not in caplog.text


def test_an_answer_before_the_whole_body_closes_the_connection(detectors) -> None:
    """A refused request's body is never read: the connection ends, else its sender could
    trickle it forever."""
    with running(asgi(create_app({"table": detectors["table"]}, ServeConfig()))) as base:
        sock = _raw(base)
        sock.sendall(b"POST /models/nope/score HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
        answer = sock.recv(65536)
        while b"}" not in answer:  # the head and the JSON body may come in two pieces
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 404 ") and b"no model named 'nope'" in answer, answer
        closed = False
        for _ in range(200):  # longer than the keep-alive timeout, which each byte would restart
            try:
                sock.sendall(b" ")
                closed = _answered(sock) and sock.recv(1) == b""
            except OSError:
                closed = True
            if closed:
                break
            time.sleep(0.05)
        assert closed, "the connection of the unread body stayed open"
        _healthy(base)


def test_the_openapi_page_documents_the_endpoints(url) -> None:
    spec = httpx.get(url + "/openapi.json", timeout=30).json()
    assert {"/health", "/score", "/models/{name}/score"} <= set(spec["paths"])
    body = spec["paths"]["/score"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    assert httpx.get(url + "/docs", timeout=30).status_code == 200


def test_concurrent_requests_score_as_one_by_one(detectors) -> None:
    detector = detectors["table"]
    frames = [table_frame(1 + i % 3, seed=10 + i) for i in range(16)]
    config = ServeConfig(batching=Batching(max_batch=64, wait_ms=300))
    app = create_app({"table": detector}, config)
    answers: dict[int, list[float]] = {}
    barrier = threading.Barrier(len(frames))

    def client(i: int) -> None:
        barrier.wait()
        response = httpx.post(url + "/score", json={"data": frames[i].values.tolist()}, timeout=120)
        answers[i] = response.json()["scores"]

    with running(asgi(app)) as url:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(frames))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    worker = app.state.workers["table"]
    assert worker.samples == sum(len(f) for f in frames)
    assert worker.batches < len(frames), "no two concurrent requests were scored together"
    for i, frame in enumerate(frames):
        np.testing.assert_allclose(answers[i], detector.decision_function(frame), rtol=1e-5, atol=1e-7)


def test_cli_refuses_a_public_host_without_token_and_a_bad_checkpoint(checkpoints, tmp_path, capsys) -> None:
    assert main(["serve", str(checkpoints["table"]), "--host", "0.0.0.0"]) == 1
    assert "needs --token" in capsys.readouterr().err
    broken = tmp_path / "broken.memae"
    broken.write_bytes(b"not a checkpoint")
    assert main(["serve", str(checkpoints["table"]), str(broken)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.memae" in err[0], err


def test_memae_serve_runs_until_stopped(checkpoints) -> None:
    """The command itself: loads both checkpoints, answers on its port, stops on SIGTERM."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, "-m", "memae.cli", "serve", *map(str, checkpoints.values()), "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "memae serve did not answer"
                time.sleep(0.2)
        assert sorted(health["models"]) == ["image", "table"]
        scored = httpx.post(
            f"http://127.0.0.1:{port}/models/table/score", json={"data": [[1.0, 100.0, "udp"]]}, timeout=30
        )
        assert scored.status_code == 200, scored.text
    finally:
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then re-raises the signal it caught: killed by SIGTERM, after a clean stop
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)
    assert f"the page at http://127.0.0.1:{port}," in server.stderr.read()
