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
    """Prepared samples (the model's input) waiting for their scores."""

    data: torch.Tensor
    future: Future


@dataclass
class _Call:
    """Any other work on the model (anomaly maps), run alone on the worker thread."""

    fn: Callable[[], Any]
    future: Future


class ScoringWorker:
    """A thread that owns ``detector`` and answers :meth:`score` and :meth:`call`.

    Score requests queued within ``batching.wait_ms`` of the first one in the queue are
    concatenated into one forward pass of at most ``batching.max_batch`` samples (a request
    is never split), then each request gets its own slice back. In eval mode a sample's
    score does not depend on its batch, so batching changes the throughput, not the scores.

    Example:
        >>> worker = ScoringWorker(detector, Batching()); worker.start()
        >>> scores = await worker.score(detector._validated(X))
    """

    def __init__(self, detector: MemAEDetector, batching: Batching) -> None:
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

    async def score(self, data: torch.Tensor) -> np.ndarray:
        """Scores of prepared samples ``data`` (N, *input_shape), from the worker."""
        future: Future = Future()
        self._queue.put(_Scores(data, future))
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
        batch, size = [first], len(first.data)
        if not self.batching.enabled:
            return batch, None
        deadline = time.monotonic() + self.batching.wait_ms / 1000.0
        while size < self.batching.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _Scores) or size + len(item.data) > self.batching.max_batch:
                return batch, item
            batch.append(item)
            size += len(item.data)
        return batch, None

    def _score_batch(self, batch: list[_Scores]) -> None:
        data = batch[0].data if len(batch) == 1 else torch.cat([item.data for item in batch])
        try:
            scores = self.detector._score_tensor(data)
        except Exception as err:  # the requests get the error; the worker keeps serving
            for item in batch:
                item.future.set_exception(err)
            return
        self.batches += 1
        self.samples += len(data)
        bounds = np.cumsum([len(item.data) for item in batch])[:-1]
        for item, part in zip(batch, np.split(scores, bounds), strict=True):
            item.future.set_result(part)


def _settle(future: Future, fn: Callable[[], Any]) -> None:
    try:
        future.set_result(fn())
    except Exception as err:
        future.set_exception(err)
