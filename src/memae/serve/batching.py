"""The scoring worker: one thread owns a detector's model and scores queued requests,
several at once when they arrive together (micro-batching)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from memae.detector import MemAEDetector
from memae.serve.config import Batching

#: Joins the requests' samples of one batch into the model's input (N, *input_shape_).
Join = Callable[[Sequence[Any]], torch.Tensor]


@dataclass
class _Scores:
    """One request's samples (in the form ``join`` takes) waiting for their scores."""

    data: Any
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class _Call:
    """Any other work on the model (anomaly maps, video clips), run alone on the worker thread."""

    fn: Callable[[], Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class ScoringWorker:
    """A thread that owns ``detector`` and answers :meth:`score` and :meth:`call` (a video
    model, which is streamed rather than batched, is served by :meth:`call` alone).

    Requests come checked and prepared where they are read (a bad request is refused there,
    alone); the worker runs the network. Score requests queued within ``batching.wait_ms`` of
    the first one in the queue make one batch (at most ``batching.max_batch`` samples; a
    request is never split): ``join`` makes their samples one input — for a table model, the
    encoded rows concatenated and scaled in one call (:func:`memae.serve.inputs.batch_join`) —
    scored in one forward pass; each request gets its own slice back, the whole batch's
    answers handed to the event loop at once. A sample's score in eval mode does not depend on
    its batch, so batching changes the throughput, not the scores. The network is made ready
    for scoring (:func:`memae.fast.inference_model`) once, on the first batch.

    Example:
        >>> worker = ScoringWorker(detector, Batching()); worker.start()
        >>> scores = await worker.score(torch.from_numpy(detector.preprocess(X)))
    """

    def __init__(self, detector: MemAEDetector | Any, batching: Batching, join: Join = torch.cat) -> None:
        self.detector = detector
        self.batching = batching
        self.join = join
        self._queue: queue.Queue[_Scores | _Call | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="memae-scoring", daemon=True)
        self._net: torch.nn.Module | None = None
        self.batches = 0
        self.samples = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    async def score(self, data: Any) -> np.ndarray:
        """Scores of one request's prepared samples ``data``: the detector's
        :meth:`~memae.detector.MemAEDetector.decision_function` of the samples they were
        prepared from."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Scores(data, future, loop))
        return await future

    async def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run on the worker thread (between batches), its result or its exception."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Call(fn, future, loop))
        return await future

    def _run(self) -> None:
        held: _Scores | _Call | None = None
        while True:
            item = held if held is not None else self._queue.get()
            held = None
            if item is None:
                return
            if isinstance(item, _Call):
                try:
                    _hand_over([(item, item.fn(), None)])
                except Exception as err:
                    _hand_over([(item, None, err)])
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
        try:
            if self._net is None:
                from memae.fast import inference_model

                self._net = inference_model(self.detector.model_)
            data = self.join([item.data for item in batch])
            scores = self.detector._score_tensor(data, self._net)
        except Exception as err:  # the requests get the error; the worker keeps serving
            _hand_over([(item, None, err) for item in batch])
            return
        self.batches += 1
        self.samples += len(data)
        bounds = np.cumsum([len(item.data) for item in batch])[:-1]
        _hand_over([(item, part, None) for item, part in zip(batch, np.split(scores, bounds), strict=True)])


def _hand_over(outcome: list[tuple[_Scores | _Call, Any, BaseException | None]]) -> None:
    """Settle the requests' futures on their event loop (the server has one), one wake-up of
    each loop for all of them."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any, BaseException | None]]] = {}
    for item, result, error in outcome:
        by_loop.setdefault(item.loop, []).append((item.future, result, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these answers
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:

    for future, result, error in settled:
        if future.done():  # its request was cancelled (the client went away)
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
