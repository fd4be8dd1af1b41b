"""The scoring worker: one thread owns a detector's model and scores queued requests,
several at once when they arrive together (micro-batching)."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from memae.detector import MemAEDetector
from memae.serve.config import Batching


@dataclass
class _Scores:
    """Samples of one request (a DataFrame or an array, as the detector takes them) waiting for scores."""

    X: Any
    future: Future


@dataclass
class _Call:
    """Any other work on the model (anomaly maps), run alone on the worker thread."""

    fn: Callable[[], Any]
    future: Future


class ScoringWorker:
    """A thread that owns ``detector`` and answers :meth:`score` and :meth:`call` (a video
    model, which is streamed rather than batched, is served by :meth:`call` alone).

    Score requests queued within ``batching.wait_ms`` of the first one in the queue are
    concatenated (at most ``batching.max_batch`` samples; a request is never split), prepared
    by the detector's preprocessing in one call and scored in one forward pass; each request
    gets its own slice back. Preprocessing is per row and a sample's score in eval mode does
    not depend on its batch, so batching changes the throughput, not the scores. When the
    batch cannot be prepared as one (a request with wrong columns or shape), each request is
    prepared alone, so the bad one gets its own error and the others their scores.

    Example:
        >>> worker = ScoringWorker(detector, Batching()); worker.start()
        >>> scores = await worker.score(X)
    """

    def __init__(self, detector: MemAEDetector | Any, batching: Batching) -> None:
        self.detector = detector
        self.batching = batching
        self._queue: queue.Queue[_Scores | _Call | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="memae-scoring", daemon=True)
        self.batches = 0
        self.samples = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    async def score(self, X: Any) -> np.ndarray:
        """Scores of the samples ``X`` (anything :meth:`MemAEDetector.decision_function` takes);
        raises the detector's ``ValueError``/``TypeError`` for input it refuses."""
        future: Future = Future()
        self._queue.put(_Scores(X, future))
        return await asyncio.wrap_future(future)

    async def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run on the worker thread (between batches), its result or its exception."""
        future: Future = Future()
        self._queue.put(_Call(fn, future))
        return await asyncio.wrap_future(future)

    def _run(self) -> None:
        held: _Scores | _Call | None = None
        while True:
            item = held if held is not None else self._queue.get()
            held = None
            if item is None:
                return
            if isinstance(item, _Call):
                _settle(item.future, item.fn)
                continue
            batch, held = self._gather(item)
            self._score_batch(batch)

    def _gather(self, first: _Scores) -> tuple[list[_Scores], _Scores | _Call | None]:
        """``first`` and the score requests that follow within the wait, up to the batch size;
        the first item that does not fit is handed back to be served next."""
        batch, size = [first], len(first.X)
        if not self.batching.enabled:
            return batch, None
        deadline = time.monotonic() + self.batching.wait_ms / 1000.0
        while size < self.batching.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _Scores) or size + len(item.X) > self.batching.max_batch:
                return batch, item
            batch.append(item)
            size += len(item.X)
        return batch, None

    def _score_batch(self, batch: list[_Scores]) -> None:
        joined, data, ready = _concat([item.X for item in batch]), None, batch
        if joined is not None:
            try:
                data = self.detector._validated(joined)
            except (ValueError, TypeError):
                data = None  # someone's input is refused: find whose below
        if data is None:
            ready, parts = [], []
            for item in batch:
                try:
                    parts.append(self.detector._validated(item.X))
                    ready.append(item)
                except Exception as err:
                    item.future.set_exception(err)
            if not ready:
                return
            data = torch.cat(parts)
        try:
            scores = self.detector._score_tensor(data)
        except Exception as err:  # the requests get the error; the worker keeps serving
            for item in ready:
                item.future.set_exception(err)
            return
        self.batches += 1
        self.samples += len(data)
        bounds = np.cumsum([len(item.X) for item in ready])[:-1]
        for item, part in zip(ready, np.split(scores, bounds), strict=True):
            item.future.set_result(part)


def _concat(parts: list[Any]) -> Any:
    """The requests' samples as one input when they are alike — DataFrames of the same column
    names, or arrays of one type and sample shape — else ``None`` (prepared one by one).
    Requests with different columns are never joined: the gaps would read as missing values."""
    if len(parts) == 1:
        return parts[0]
    from memae.data.tables import is_frame

    if all(is_frame(p) for p in parts):
        names = {tuple(sorted(map(str, p.columns))) for p in parts}
        if len(names) != 1 or any(p.columns.has_duplicates for p in parts):
            return None
        import pandas as pd

        return pd.concat(parts, ignore_index=True)
    if all(isinstance(p, np.ndarray) for p in parts):
        if len({(p.dtype, p.shape[1:]) for p in parts}) != 1:
            return None
        return np.concatenate(parts)
    return None


def _settle(future: Future, fn: Callable[[], Any]) -> None:
    try:
        future.set_result(fn())
    except Exception as err:
        future.set_exception(err)
