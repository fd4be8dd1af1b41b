"""The ASGI application: ``/health``, ``/score`` (and ``/models/{name}/score``), a video model's
``/models/{name}/score-video`` and ``/models/{name}/stream``, the page at ``/``.

Every request passes the guards of :mod:`memae.serve.guards` before the routes: the token
(when the server has one), then the body's size limit and deadline, checked as the body
streams in, so a huge or slow body is refused without being held. Refusals and bad input
are JSON ``{"error": ..., "limit": ...}`` answers with a 4xx status; the server keeps serving
after any of them.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from memae.detector import MemAEDetector
from memae.serve.batching import ScoringWorker
from memae.serve.config import ServeConfig
from memae.serve.guards import (
    ASGIApp,
    BodyGuard,
    BodyTimeout,
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    TokenGuard,
    error_response,
)
from memae.serve.inputs import RequestError, batch_join, is_image_model
from memae.serve.scoring import ScoreEndpoint, read_upload, score_path
from memae.video.experiment import TrainedVideoModel


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


class VideoAnswer(BaseModel):
    model: str
    video: str
    frames: list[int]
    errors: list[float | None]
    threshold: float | None
    labels: list[int] | None


def _upload(description: str) -> dict[str, Any]:
    """The OpenAPI schema of a multipart upload of files in field ``file``."""
    files = {"type": "array", "items": {"type": "string", "format": "binary"}, "description": description}
    return {"schema": {"type": "object", "properties": {"file": files}}}


_VIDEO_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": _upload("one video file, or its frames as image files (ordered by name)")
    },
}

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
        "multipart/form-data": _upload("one CSV/Parquet table, or image files"),
    },
}


def create_app(detectors: Mapping[str, MemAEDetector | TrainedVideoModel], config: ServeConfig) -> FastAPI:
    """The service for ``detectors`` (name -> fitted detector, or a video model streamed
    at ``/models/{name}/stream``), each run by its own
    :class:`~memae.serve.batching.ScoringWorker`, started and stopped with the application."""
    if not detectors:
        raise ValueError("expected at least one detector to serve, got none")
    workers = {
        name: ScoringWorker(det, config.batching, batch_join(det))
        if isinstance(det, MemAEDetector)
        else ScoringWorker(det, config.batching)
        for name, det in detectors.items()
    }
    scoring = ScoreEndpoint(detectors, workers, config)

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
        description="Anomaly scores of memory-augmented autoencoders (MemAE) for tables, images and videos.",
        lifespan=lifespan,
    )
    app.state.workers = workers

    @app.exception_handler(RequestError)
    async def refused(request: Request, err: RequestError) -> JSONResponse:
        return error_response(err.status, err.message, err.limit)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(BodyTooLarge)
    @app.exception_handler(BodyTimeout)
    async def body_refused(request: Request, err: BodyTooLarge | BodyTimeout) -> Response:
        return BodyGuard.refusal(err)

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

    @app.post("/score", response_model=ScoreAnswer, openapi_extra={"requestBody": _REQUEST_BODY})
    async def score(request: Request) -> JSONResponse:
        """Score with the only model served (with several, use ``/models/{name}/score``).
        ``?maps=true`` adds each image's anomaly map and overlay as base64 PNGs."""
        return JSONResponse(await scoring.answer(None, request))

    @app.post(
        "/models/{name}/score", response_model=ScoreAnswer, openapi_extra={"requestBody": _REQUEST_BODY}
    )
    async def score_model(name: str, request: Request) -> JSONResponse:
        """Score with the model ``name`` (see ``/health``)."""
        return JSONResponse(await scoring.answer(name, request))

    @app.post(
        "/models/{name}/score-video", response_model=VideoAnswer, openapi_extra={"requestBody": _VIDEO_BODY}
    )
    async def score_video(name: str, request: Request) -> JSONResponse:
        """Score an uploaded video with the video model ``name``, as ``memae score-video``
        does: each frame's clip error ``e_u`` (the clip centred on it), the model's threshold
        and each frame's label (1: over the threshold; ``null`` without a threshold)."""
        from memae.serve.video import upload_frames

        trained = detectors.get(name)
        if not isinstance(trained, TrainedVideoModel):
            raise RequestError(404, f"no video model named {name!r}: video models are {_videos(detectors)}")
        files = await read_upload(request, config.limits)
        with tempfile.TemporaryDirectory(prefix="memae-serve-") as folder:
            video, frames = await run_in_threadpool(upload_frames, trained, files, config.limits, folder)
        index, errors = await workers[name].call(lambda: trained.frame_errors(frames))
        threshold = trained.threshold
        return JSONResponse(
            {
                "model": name,
                "video": video,
                "frames": index.tolist(),
                "errors": [float(e) if np.isfinite(e) else None for e in errors],
                "threshold": threshold,
                "labels": None if threshold is None else (errors > threshold).astype(int).tolist(),
            }
        )

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

    guarded: ASGIApp = BodyGuard(ScoreFirst(app, scoring), config.limits.max_body_bytes, config.body_timeout)
    if config.token is not None:
        guarded = TokenGuard(guarded, config.token)
    app.state.guarded = guarded
    return app


def asgi(app: FastAPI) -> ASGIApp:
    """The application behind its guards (token, body size and deadline): what the server runs."""
    return app.state.guarded


class ScoreFirst:
    """Score requests (``POST /score``, ``POST /models/{name}/score``) straight to the
    :class:`~memae.serve.scoring.ScoreEndpoint`, everything else to the FastAPI application.

    FastAPI's router, dependency solving and middleware cost the event loop more than
    preparing and answering a single-row request (docs/SERVING.md); the FastAPI routes of
    these paths document them and answer the same way through the same endpoint.
    """

    def __init__(self, app: ASGIApp, scoring: ScoreEndpoint) -> None:
        self.app, self.scoring = app, scoring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and score_path(scope["path"]):
            await self.scoring(scope, receive, send)
        else:
            await self.app(scope, receive, send)


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
            threshold=detector.threshold,
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
