"""The scoring worker: requests queued together are one forward pass; scores are each request's own."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from memae.detector import MemAEDetector
from memae.serve.batching import ScoringWorker
from memae.serve.config import Batching, ServeConfig, is_loopback


@pytest.fixture(scope="module")
def detector() -> MemAEDetector:
    X = np.random.default_rng(0).normal(size=(64, 6))
    return MemAEDetector(epochs=1, batch_size=32, random_state=0).fit(X)


async def _score_all(worker: ScoringWorker, parts: list) -> list:
    """Each part's scores, or the exception it got."""
    return list(await asyncio.gather(*(worker.score(p) for p in parts), return_exceptions=True))


def _run(detector: MemAEDetector, batching: Batching, parts: list) -> tuple[list, ScoringWorker]:
    worker = ScoringWorker(detector, batching)
    worker.start()
    try:
        return asyncio.run(_score_all(worker, [_prepared(detector, p) for p in parts])), worker
    finally:
        worker.stop()


def _prepared(detector: MemAEDetector, X: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(detector.preprocess(X))


def _parts(sizes: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(size=(n, 6)) for n in sizes]


def test_requests_queued_together_are_one_batch_with_their_own_scores(detector) -> None:
    parts = _parts([1, 3, 2, 5])
    scores, worker = _run(detector, Batching(max_batch=64, wait_ms=1000), parts)
    assert worker.batches == 1 and worker.samples == 11
    for part, got in zip(parts, scores, strict=True):
        np.testing.assert_allclose(got, detector.decision_function(part), rtol=1e-5, atol=1e-7)


def test_a_batch_never_passes_max_batch_nor_splits_a_request(detector) -> None:
    parts = _parts([3, 3, 3, 3])
    scores, worker = _run(detector, Batching(max_batch=7, wait_ms=1000), parts)
    assert worker.batches == 2  # 3 + 3, then 3 + 3: a third request of 3 would make 9 > 7
    assert [len(s) for s in scores] == [3, 3, 3, 3]


def test_without_batching_each_request_is_its_own_pass(detector) -> None:
    parts = _parts([2, 2, 2])
    scores, worker = _run(detector, Batching(enabled=False), parts)
    assert worker.batches == 3
    batched, _ = _run(detector, Batching(max_batch=64, wait_ms=1000), parts)
    for one, together in zip(scores, batched, strict=True):
        np.testing.assert_allclose(one, together, rtol=1e-5, atol=1e-7)


def test_the_network_is_made_ready_for_scoring_once(detector, monkeypatch) -> None:
    """Folding batch norm and copying the model for every batch cost more than scoring a few rows."""
    import memae.fast

    made = []
    real = memae.fast.inference_model

    def counted(model: torch.nn.Module) -> torch.nn.Module:
        made.append(model)
        return real(model)

    monkeypatch.setattr(memae.fast, "inference_model", counted)
    scores, worker = _run(detector, Batching(enabled=False), _parts([1, 2, 3, 4]))
    assert worker.batches == 4 and made == [detector.model_]
    for part, got in zip(_parts([1, 2, 3, 4]), scores, strict=True):
        np.testing.assert_array_equal(got, detector.decision_function(part))


def test_a_failing_forward_pass_fails_its_requests_and_the_worker_goes_on(detector, monkeypatch) -> None:
    worker = ScoringWorker(detector, Batching(wait_ms=0))
    calls = []
    real = detector._score_tensor

    def once_broken(data: torch.Tensor, net: torch.nn.Module | None = None) -> np.ndarray:
        calls.append(len(data))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return real(data, net)

    monkeypatch.setattr(detector, "_score_tensor", once_broken)
    worker.start()

    async def go() -> np.ndarray:
        with pytest.raises(RuntimeError, match="out of memory"):
            await worker.score(_prepared(detector, _parts([2])[0]))
        return await worker.score(_prepared(detector, _parts([3])[0]))

    try:
        assert len(asyncio.run(go())) == 3
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("example.org", False),
    ],
)
def test_loopback_hosts(host, loopback) -> None:
    assert is_loopback(host) is loopback


def test_a_public_host_needs_a_token() -> None:
    with pytest.raises(ValueError, match=r"'0\.0\.0\.0' is not a loopback address.*needs --token"):
        ServeConfig(host="0.0.0.0")
    assert ServeConfig(host="0.0.0.0", token="t").token == "t"
    with pytest.raises(ValueError, match="max_batch must be >= 1, got 0"):
        Batching(max_batch=0)
