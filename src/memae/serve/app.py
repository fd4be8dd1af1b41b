"""The ASGI application: ``/health``, ``/score`` (and ``/models/{name}/score``), the page at ``/``.

Every request passes two guards before the routes: the bearer token (when the server has
one) and the body-size limit, counted as the body streams in, so a huge body is refused
without being held. Refusals and bad input are JSON ``{"error": ..., "limit": ...}`` answers
with a 4xx status; the server keeps serving after any of them.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import io
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from memae.detector import MemAEDetector
from memae.serve.batching import ScoringWorker
from memae.serve.config import ServeConfig
from memae.serve.inputs import RequestError, Samples, is_image_model, json_samples, upload_samples
from memae.thresholds import ecdf_score
from memae.video.experiment import TrainedVideoModel

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths served without the token: the page itself holds no data (it sends the token it is given).
_OPEN_PATHS = frozenset({"/"})


class ModelInfo(BaseModel):
    kind: str
    input_shape: list[int]
    threshold: float | None
    columns: list[str] | None = None
    batches: int = 0
    samples: int = 0


class Health(BaseModel):
    status: str
    models: dict[str, ModelInfo]


class AnomalyMap(BaseModel):
    map: str
    overlay: str


class ScoreAnswer(BaseModel):
    model: str
    ids: list[str] | None
    scores: list[float | None]
    calibrated: list[float]
    labels: list[int]
    threshold: float
    maps: list[AnomalyMap] | None = None
    map_scale: float | None = None


_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "array",
                        "description": "table rows (lists, or objects keyed by column name) or images "
                        "as nested lists (N, C, H, W)",
                    },
                    "maps": {"type": "boolean", "description": "also return anomaly maps (image models)"},
                },
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "one CSV/Parquet table, or image files",
                    }
                },
            }
        },
    },
}


def create_app(detectors: Mapping[str, MemAEDetector | TrainedVideoModel], config: ServeConfig) -> FastAPI:
    """The service for ``detectors`` (name -> fitted detector, or a video model streamed
    at ``/models/{name}/stream``), each run by its own
    :class:`~memae.serve.batching.ScoringWorker`, started and stopped with the application."""
    if not detectors:
        raise ValueError("expected at least one detector to serve, got none")
    workers = {name: ScoringWorker(det, config.batching) for name, det in detectors.items()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if config.torch_threads is not None:
            import torch

            torch.set_num_threads(config.torch_threads)
        for worker in workers.values():
            worker.start()
        yield
        for worker in workers.values():
            worker.stop()

    app = FastAPI(
        title="memae",
        description="Anomaly scores of memory-augmented autoencoders (MemAE) for tables and images.",
        lifespan=lifespan,
    )
    app.state.workers = workers

    @app.exception_handler(RequestError)
    async def refused(request: Request, err: RequestError) -> JSONResponse:
        return error_response(err.status, err.message, err.limit)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(_BodyTooLarge)
    async def too_large(request: Request, err: _BodyTooLarge) -> JSONResponse:
        return error_response(413, str(err), "max_body_bytes")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("memae.serve").joinpath("page.html").read_text(encoding="utf-8"))

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        """The loaded models: their kind, input shape, threshold, (tables) column names, and
        the forward passes (``batches``) and samples scored since start-up."""
        return Health(
            status="ok", models={name: _info(det, workers[name]) for name, det in detectors.items()}
        )

    async def score_with(name: str, request: Request) -> JSONResponse:
        detector, worker = detectors[name], workers[name]
        if isinstance(detector, TrainedVideoModel):
            raise RequestError(400, f"{name!r} is a video model: stream its frames to /models/{name}/stream")
        maps = request.query_params.get("maps", "false").lower() in ("1", "true", "yes")
        samples, maps = await _read_request(request, detector, config, maps)
        if maps and not is_image_model(detector):
            raise RequestError(400, f"maps are made for image models; {name!r} scores {samples.kind}")
        try:
            scores = await worker.score(samples.X)
        except (ValueError, TypeError) as err:
            raise RequestError(400, str(err)) from err
        answer = _answer(name, detector, samples, scores)
        if maps:
            errors = await worker.call(lambda: detector.anomaly_maps(samples.X))
            answer.update(await run_in_threadpool(_map_pngs, np.asarray(samples.X), errors))
        return JSONResponse(answer)

    @app.post("/score", response_model=ScoreAnswer, openapi_extra={"requestBody": _REQUEST_BODY})
    async def score(request: Request) -> JSONResponse:
        """Score with the only model served (with several, use ``/models/{name}/score``).
        ``?maps=true`` adds each image's anomaly map and overlay as base64 PNGs."""
        if len(detectors) != 1:
            raise RequestError(
                400,
                f"{len(detectors)} models are served: POST to /models/{{name}}/score, name one of "
                f"{sorted(detectors)}",
            )
        return await score_with(next(iter(detectors)), request)

    @app.post(
        "/models/{name}/score", response_model=ScoreAnswer, openapi_extra={"requestBody": _REQUEST_BODY}
    )
    async def score_model(name: str, request: Request) -> JSONResponse:
        """Score with the model ``name`` (see ``/health``)."""
        if name not in detectors:
            raise RequestError(404, f"no model named {name!r}: served are {sorted(detectors)}")
        return await score_with(name, request)

    @app.websocket("/models/{name}/stream")
    async def stream(websocket: WebSocket, name: str) -> None:
        """Video frames in, one encoded image (PNG, JPEG) per binary message, then the text
        ``end``; out, ``{"frame": u, "error": e}`` for each frame once its clip is complete
        (``memae score-video``'s centred alignment), then ``{"done": true, "frames": n}``."""
        from memae.serve.video import FrameStream, clip_error, decode_frame

        await websocket.accept()
        trained = detectors.get(name)
        if not isinstance(trained, TrainedVideoModel):
            await _close_with(
                websocket, f"no video model named {name!r}: video models are {_videos(detectors)}"
            )
            return
        frames = trained.experiment.frames
        state = FrameStream(frames.clip_len)
        limit = config.limits.max_video_frames
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    if message["text"].strip() != "end":
                        await _close_with(websocket, "text messages other than 'end' are not understood")
                        return
                    scored = state.finish()
                    await websocket.send_json({"scores": [s._asdict() for s in scored]})
                    await websocket.send_json({"done": True, "frames": state.received})
                    await websocket.close()
                    return
                if state.received >= limit:
                    await _close_with(
                        websocket,
                        f"more than {limit} frames in one stream (max_video_frames)",
                        "max_video_frames",
                    )
                    return
                frame = decode_frame(message.get("bytes") or b"", frames.size, config.limits.max_pixels)
                clip = state.push(frame)
                if clip is not None:
                    error = await workers[name].call(lambda c=clip: clip_error(trained, c))
                    await websocket.send_json({"scores": [s._asdict() for s in state.scored_by(error)]})
        except OverflowError as err:
            await _close_with(
                websocket,
                f"{err}, more than the {config.limits.max_pixels} allowed (max_pixels)",
                "max_pixels",
            )
        except ValueError as err:
            await _close_with(websocket, str(err))
        except WebSocketDisconnect:
            return

    guarded: ASGIApp = BodyLimit(app, config.limits.max_body_bytes)
    if config.token is not None:
        guarded = BearerToken(guarded, config.token)
    app.state.guarded = guarded
    return app


def asgi(app: FastAPI) -> ASGIApp:
    """The application behind its guards (token, body size): what the server runs."""
    return app.state.guarded


async def _read_request(
    request: Request, detector: MemAEDetector, config: ServeConfig, maps: bool
) -> tuple[Samples, bool]:
    """The request's samples (uploads are read from a temporary folder, removed once read)
    and whether maps are asked for (the query's ``maps`` or the JSON body's)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            async with request.form(max_files=config.limits.max_files) as form:
                files = [f for f in form.getlist("file") if hasattr(f, "read")]
                contents = [(f.filename or "upload", await f.read()) for f in files]
        except HTTPException as err:  # the multipart parser's refusals
            if str(err.detail).startswith("Too many files"):
                raise RequestError(
                    413, f"more than {config.limits.max_files} files in the upload (max_files)", "max_files"
                ) from err
            raise RequestError(400, f"unreadable multipart body: {err.detail}") from err
        with tempfile.TemporaryDirectory(prefix="memae-serve-") as folder:
            samples = await run_in_threadpool(upload_samples, detector, contents, config.limits, folder)
        return samples, maps
    if content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RequestError(400, f"the body is not valid JSON: {err}") from err
        if not isinstance(body, dict) or "data" not in body:
            raise RequestError(400, 'expected a JSON object {"data": [...]}')
        maps = maps or bool(body.get("maps", False))
        return json_samples(detector, body["data"], config.limits), maps
    raise RequestError(
        415, f"expected application/json or multipart/form-data, got {content_type or 'no content type'!r}"
    )


def _answer(name: str, detector: MemAEDetector, samples: Samples, scores: np.ndarray) -> dict[str, Any]:
    """The JSON answer: a score (``null`` where it is not finite: anomalous), its calibrated
    value and label per sample, in order."""
    calibrated = ecdf_score(detector._reference_scores(), scores)
    labels = detector.labels_from_scores(scores)
    return {
        "model": name,
        "ids": None if samples.ids is None else [str(i) for i in samples.ids],
        "scores": [float(s) if np.isfinite(s) else None for s in scores],
        "calibrated": [float(c) for c in calibrated],
        "labels": [int(v) for v in labels],
        "threshold": float(detector.threshold_),
    }


def _map_pngs(images: np.ndarray, errors: np.ndarray) -> dict[str, Any]:
    from PIL import Image

    from memae.report_images import map_scale, render_map

    scale = map_scale(errors)
    out = []
    for image, error in zip(images, errors, strict=True):
        levels, overlay = render_map(image, error, scale)
        out.append({"map": _png(Image.fromarray(levels)), "overlay": _png(Image.fromarray(overlay))})
    return {"maps": out, "map_scale": scale}


def _png(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def describe(app: FastAPI) -> dict[str, ModelInfo]:
    """What ``/health`` says of each model served by ``app``."""
    return {name: _info(worker.detector, worker) for name, worker in app.state.workers.items()}


async def _close_with(websocket: WebSocket, message: str, limit: str | None = None) -> None:
    """Tell the client what was wrong, then close (1008: policy; 1009: too big)."""
    await websocket.send_json({"error": message, "limit": limit})
    await websocket.close(code=1009 if limit else 1008)


def _videos(detectors: Mapping[str, Any]) -> list[str]:
    return sorted(n for n, d in detectors.items() if isinstance(d, TrainedVideoModel))


def _info(detector: MemAEDetector | TrainedVideoModel, worker: ScoringWorker) -> ModelInfo:
    if isinstance(detector, TrainedVideoModel):
        frames = detector.experiment.frames
        return ModelInfo(
            kind="video",
            input_shape=[1, frames.clip_len, *frames.size],
            threshold=None,
            batches=worker.batches,
            samples=worker.samples,
        )
    kind = "table" if detector.table_ is not None else "image" if is_image_model(detector) else "array"
    columns = list(getattr(detector, "feature_names_in_", [])) or None
    return ModelInfo(
        kind=kind,
        input_shape=list(detector.input_shape_),
        threshold=float(detector.threshold_),
        columns=columns,
        batches=worker.batches,
        samples=worker.samples,
    )


def error_response(status: int, message: str, limit: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "limit": limit}, status_code=status)


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413: at once when ``Content-Length``
    says so, else as soon as the streamed body passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the request body is larger than the {self.max_bytes} bytes allowed (max_body_bytes)"
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, message, "max_body_bytes")(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> dict[str, Any]:
            nonlocal seen
            event = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge(message)
            return event

        async def tracked(event: dict[str, Any]) -> None:
            nonlocal started
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, counted, tracked)
        except _BodyTooLarge:  # raised where no exception handler of the app saw it
            if not started:
                await error_response(413, message, "max_body_bytes")(scope, receive, send)


class BearerToken:
    """Every request (HTTP and WebSocket) must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = error_response(401, "missing or wrong bearer token (Authorization: Bearer <token>)")
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)
