"""What one single-sample request costs ``memae serve``, part by part, before and after the
changes the profile called for, side by side in one run (ratios, not absolute times).

    python benchmarks/serve_costs.py --out results/serve_costs.json
    python benchmarks/serve_costs.py --markdown results/serve_costs.json   # the table in docs/SERVING.md

Each pair is timed in turns (:mod:`harness`), in this process unless said otherwise:

* preparing a table row: a DataFrame of the JSON row through the detector's preprocessing,
  against :meth:`~memae.preprocessing.TableEncoder.encode_rows` and the scaling;
* scoring one table row, one image and a batch of 32 images: the network folded and copied
  for every call (``_score_tensor(data)``), against the network made ready once;
* the same with 2 torch threads against 1 (on a machine whose other core is busy, or needed
  by the event loop, a second thread makes every forward pass wait for it);
* one request through the application in process: FastAPI's router and middleware to the
  scoring endpoint, against the server's direct dispatch to it;
* the load-test client's CPU per request against a ``memae serve`` process at 32 concurrent
  clients: httpx's ``AsyncClient`` against a hand-spoken HTTP/1.1 connection per client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import serve as load_test
import torch
from harness import interleave, summarise, write_json

ROOT = Path(__file__).resolve().parents[1]


def pair(before: Callable[[], Any], after: Callable[[], Any], repeats: int, **timing: Any) -> dict[str, Any]:
    times, loops = interleave({"before": before, "after": after}, repeats, torch.device("cpu"), **timing)
    summary = summarise(times, "before", loops)
    return {
        "before_us": summary["before"]["median_s"] / loops * 1e6,
        "after_us": summary["after"]["median_s"] / loops * 1e6,
        "ratio": summary["after"]["speedup"],
        "ratio_range": [summary["after"]["speedup_min"], summary["after"]["speedup_max"]],
    }


def in_process(repeats: int, checkpoints: dict[str, Path]) -> dict[str, dict[str, Any]]:
    import pandas as pd

    from memae.detector import MemAEDetector
    from memae.fast import inference_model

    table = MemAEDetector.load(checkpoints["table"])
    image = MemAEDetector.load(checkpoints["image"])
    rng = np.random.default_rng(0)
    rows = load_test.sample_request("table", rng)["data"]
    images = np.asarray([load_test.sample_request("image", rng)["data"][0] for _ in range(32)], np.uint8)
    out: dict[str, dict[str, Any]] = {}
    out["prepare one table row: DataFrame -> encode_rows"] = pair(
        lambda: table._validated(pd.DataFrame.from_records(rows)),
        lambda: table._transform(table.table_.encode_rows(rows)),
        repeats,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for name, detector, X in [
        ("one table row", table, pd.DataFrame.from_records(rows)),
        ("one image", image, images[:1]),
        ("32 images", image, images),
    ]:
        data, net = detector._validated(X), inference_model(detector.model_)
        out[f"score {name}: network made per call -> once"] = pair(
            lambda d=detector, x=data: d._score_tensor(x),
            lambda d=detector, x=data, n=net: d._score_tensor(x, n),
            repeats,
        )
        out[f"score {name}: 2 torch threads -> 1"] = pair(
            lambda d=detector, x=data, n=net: d._score_tensor(x, n),
            lambda d=detector, x=data, n=net: d._score_tensor(x, n),
            repeats,
            prepare=lambda unit: torch.set_num_threads(2 if unit == "before" else 1),
        )
    torch.set_num_threads(threads)
    out["one table request in process: FastAPI routing -> direct"] = asgi_pair(table, rows, repeats)
    return out


def asgi_pair(detector: Any, rows: list[Any], repeats: int) -> dict[str, Any]:
    """One JSON request at a time through the FastAPI application and through the server's
    guarded application, which sends score requests straight to the endpoint; both include
    the scoring, on the worker thread."""
    from memae.serve.app import asgi, create_app
    from memae.serve.config import Batching, ServeConfig

    app = create_app({"table": detector}, ServeConfig(batching=Batching(enabled=False)))  # no batch wait
    body = json.dumps({"data": rows}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/models/table/score",
        "raw_path": b"/models/table/score",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }
    loop = asyncio.new_event_loop()

    async def call(application: Any) -> None:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await application(dict(scope), receive, send)
        assert sent[0]["status"] == 200, sent

    for worker in app.state.workers.values():
        worker.start()
    try:
        return pair(
            lambda: loop.run_until_complete(call(app)),
            lambda: loop.run_until_complete(call(asgi(app))),
            repeats,
        )
    finally:
        for worker in app.state.workers.values():
            worker.stop()
        loop.close()


async def httpx_load(port: int, clients: int, seconds: float, seed: int) -> tuple[int, float]:
    """Requests done and client CPU seconds of ``clients`` httpx tasks posting rows for ``seconds``."""
    import httpx

    bodies = [
        json.dumps(load_test.sample_request("table", np.random.default_rng(seed + i))) for i in range(64)
    ]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    done = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:
        headers = {"content-type": "application/json"}
        await asyncio.gather(
            *(client.post("/models/table/score", content=b, headers=headers) for b in bodies[:clients])
        )
        stop = time.perf_counter() + seconds
        cpu = time.process_time()

        async def run(i: int) -> None:
            nonlocal done
            while time.perf_counter() < stop:
                response = await client.post("/models/table/score", content=bodies[i % 64], headers=headers)
                done += response.status_code == 200
                i += clients

        await asyncio.gather(*(run(i) for i in range(clients)))
        return done, time.process_time() - cpu


def client_pair(checkpoints: dict[str, Path], repeats: int, seconds: float, clients: int) -> dict[str, Any]:
    """Client CPU microseconds per request, httpx against the load test's own connections,
    in turns against one server process."""
    port = load_test.free_port()
    server = load_test.start_server(checkpoints, port, True, 1)
    per_request: dict[str, list[float]] = {"before": [], "after": []}
    try:
        load_test.wait_healthy(f"http://127.0.0.1:{port}", server)
        for r in range(repeats):
            for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
                if name == "before":
                    done, cpu = load_test.run_loop(httpx_load(port, clients, seconds, r))
                else:
                    row = load_test.run_loop(load_test.load(port, "table", clients, seconds, r, server.pid))
                    done, cpu = row["requests"], row["client_cpu_seconds"]
                per_request[name].append(cpu / max(done, 1) * 1e6)
    finally:
        server.terminate()
        server.wait(timeout=30)
    ratios = [b / a for b, a in zip(per_request["before"], per_request["after"], strict=True)]
    return {
        "before_us": statistics.median(per_request["before"]),
        "after_us": statistics.median(per_request["after"]),
        "ratio": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from memae.provenance import provenance

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        checkpoints = load_test.train_models(Path(folder))
        rows = in_process(args.repeats, checkpoints)
        key = f"load-test client CPU per request ({args.clients} clients): httpx -> hand-spoken HTTP/1.1"
        rows[key] = client_pair(checkpoints, max(2, args.repeats // 3), args.seconds, args.clients)
    return {
        "provenance": provenance(),
        "config": {
            "repeats": args.repeats,
            "client_seconds": args.seconds,
            "clients": args.clients,
            "load_average_1min": [load_before, os.getloadavg()[0]],
        },
        "rows": rows,
    }


def markdown(results: dict[str, Any]) -> str:
    config = results["config"]
    low, high = config["load_average_1min"]
    lines = [
        f"{config['repeats']} interleaved repetitions, commit {str(results['provenance']['commit'])[:10]}, "
        f"{results['provenance']['machine']['cpu_count']} CPUs, load average {low:.1f} at the start "
        f"and {high:.1f} at the end",
        "",
        "| what | before µs | after µs | after / before: faster by | (range) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, r in results["rows"].items():
        lines.append(
            f"| {name} | {r['before_us']:.0f} | {r['after_us']:.0f} | {r['ratio']:.2f}x | "
            f"{r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per client measurement")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "results" / "serve_costs.json"))
    parser.add_argument("--markdown", metavar="JSON", help="print the table of a results file and exit")
    parser.add_argument("--docs", metavar="MD", help="with --markdown: write the table into this file")
    args = parser.parse_args()
    if args.markdown:
        table = markdown(json.loads(Path(args.markdown).read_text()))
        if args.docs:
            load_test.write_block(Path(args.docs), "serve_costs", table)
        print(table)
        return
    if not 1 <= args.repeats <= 100 or not 0 < args.seconds <= 30 or not 1 <= args.clients <= 256:
        parser.error("expected 1..100 repeats, 0..30 seconds and 1..256 clients")
    results = run(args)
    write_json(args.out, results)
    print(markdown(results))


if __name__ == "__main__":
    sys.exit(main())
