"""The score endpoints — ``POST /score`` and ``POST /models/{name}/score`` — as a plain ASGI
application: read the request, prepare its samples, queue them on the model's worker, answer.

The per-request work on the event loop is kept small: a JSON body of a few rows is parsed
and encoded in place (:meth:`memae.preprocessing.TableEncoder.encode_rows`, no DataFrame),
larger bodies, uploads and rows that need the DataFrame path are prepared in a thread, and
the network runs on the worker, once per micro-batch.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from memae.detector import MemAEDetector
from memae.serve.batching import ScoringWorker
from memae.serve.config import Limits, ServeConfig
from memae.serve.guards import BodyTimeout, BodyTooLarge, Receive, Scope, Send, error_response
from memae.serve.inputs import RequestError, Samples, is_image_model, prepared, read_json, upload_samples
from memae.thresholds import ecdf_score
from memae.video.experiment import TrainedVideoModel

_log = logging.getLogger("memae.serve")
_MODEL_SCORE = re.compile(r"/models/([^/]+)/score")

#: JSON bodies up to this size are read on the event loop (a few rows or small images: less
#: work than handing them to a thread); larger ones are parsed in a thread.
_INLINE_JSON_BYTES = 64 * 1024


def score_path(path: str) -> bool:
    """Whether ``path`` is a score endpoint's."""
    return path == "/score" or _MODEL_SCORE.fullmatch(path) is not None


class ScoreEndpoint:
    """Answers score requests for ``detectors`` with their ``workers``.

    :meth:`answer` is the whole of it (the FastAPI routes call it); calling the object is the
    same as a plain ASGI application, its refusals JSON 4xx answers, and any other failure a
    JSON 500 that leaves the server serving.
    """

    def __init__(
        self,
        detectors: Mapping[str, MemAEDetector | TrainedVideoModel],
        workers: Mapping[str, ScoringWorker],
        config: ServeConfig,
    ) -> None:
        self.detectors, self.workers, self.config = detectors, workers, config
        #: each model's normal reference scores, sorted once (the calibration's empirical CDF)
        self.references = {
            name: np.sort(det._reference_scores())
            for name, det in detectors.items()
            if isinstance(det, MemAEDetector)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _MODEL_SCORE.fullmatch(scope["path"])
        try:
            response = JSONResponse(await self.answer(found and found.group(1), Request(scope, receive)))
        except RequestError as err:
            response = error_response(err.status, err.message, err.limit)
        except (BodyTooLarge, BodyTimeout):
            raise  # the body guard answers these
        except ClientDisconnect:
            return  # nobody to answer
        except Exception as err:
            _log.exception("scoring failed")
            response = error_response(500, f"the server failed to score the request: {err}")
        await response(scope, receive, send)

    def model(self, name: str | None) -> str:
        """The model a request names (``None``: ``/score``, the only one served)."""
        if name is None:
            if len(self.detectors) != 1:
                raise RequestError(
                    400,
                    f"{len(self.detectors)} models are served: POST to /models/{{name}}/score, name one "
                    f"of {sorted(self.detectors)}",
                )
            return next(iter(self.detectors))
        if name not in self.detectors:
            raise RequestError(404, f"no model named {name!r}: served are {sorted(self.detectors)}")
        return name

    async def answer(self, name: str | None, request: Request) -> dict[str, Any]:
        """The JSON answer to a score request for model ``name``."""
        name = self.model(name)
        detector, worker = self.detectors[name], self.workers[name]
        if isinstance(detector, TrainedVideoModel):
            raise RequestError(
                400,
                f"{name!r} is a video model: upload a video to /models/{name}/score-video or stream "
                f"its frames to /models/{name}/stream",
            )
        maps = request.query_params.get("maps", "false").lower() in ("1", "true", "yes")
        samples, maps = await self._read(request, detector, maps)
        if maps and not is_image_model(detector):
            raise RequestError(400, f"maps are made for image models; {name!r} scores {samples.kind}")
        assert samples.data is not None
        scores = await worker.score(samples.data)
        answer = _answer(name, detector, self.references[name], samples, scores)
        if maps:
            errors = await worker.call(lambda: detector.anomaly_maps(samples.X))
            answer.update(await run_in_threadpool(_map_pngs, np.asarray(samples.X), errors))
        return answer

    async def _read(self, request: Request, detector: MemAEDetector, maps: bool) -> tuple[Samples, bool]:
        """The request's samples, prepared as the model's input (uploads are read from a
        temporary folder, removed once read), and whether maps are asked for (the query's
        ``maps`` or the JSON body's)."""
        limits = self.config.limits
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            contents = await read_upload(request, limits)
            with tempfile.TemporaryDirectory(prefix="memae-serve-") as folder:
                samples = await run_in_threadpool(
                    lambda: prepared(detector, upload_samples(detector, contents, limits, folder))
                )
            return samples, maps
        if content_type.startswith("application/json"):
            body = await request.body()
            if len(body) <= _INLINE_JSON_BYTES:
                samples, asked = read_json(detector, body, limits)
            else:
                samples, asked = await run_in_threadpool(read_json, detector, body, limits)
            if samples.data is None:  # rows that need the DataFrame path
                samples = await run_in_threadpool(prepared, detector, samples)
            return samples, maps or asked
        raise RequestError(
            415,
            f"expected application/json or multipart/form-data, got {content_type or 'no content type'!r}",
        )


async def read_upload(request: Request, limits: Limits) -> list[tuple[str, bytes]]:
    """The ``(file name, content)`` of each file in a multipart body's field ``file``."""
    try:
        async with request.form(max_files=limits.max_files) as form:
            files = [f for f in form.getlist("file") if hasattr(f, "read")]
            return [(f.filename or "upload", await f.read()) for f in files]
    except (MultiPartException, HTTPException) as err:  # the multipart parser's refusals
        detail = str(err.message if isinstance(err, MultiPartException) else err.detail)
        if detail.startswith("Too many files"):
            raise RequestError(
                413, f"more than {limits.max_files} files in the upload (max_files)", "max_files"
            ) from err
        raise RequestError(400, f"unreadable multipart body: {detail}") from err


def _answer(
    name: str, detector: MemAEDetector, reference: np.ndarray, samples: Samples, scores: np.ndarray
) -> dict[str, Any]:
    """The JSON answer: a score (``null`` where it is not finite: anomalous), its calibrated
    value against the sorted ``reference`` scores and label per sample, in order."""
    calibrated = ecdf_score(reference, scores)
    labels = detector.labels_from_scores(scores)
    return {
        "model": name,
        "ids": None if samples.ids is None else [str(i) for i in samples.ids],
        "scores": [float(s) if np.isfinite(s) else None for s in scores],
        "calibrated": calibrated.tolist(),
        "labels": labels.tolist(),
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
