"""Load test of ``memae serve``: N concurrent clients on 127.0.0.1, micro-batching on and off.

    python benchmarks/serve.py --clients 32 --seconds 10          # writes results/serve.json
    python benchmarks/serve.py --markdown results/serve.json      # the table in docs/SERVING.md

Trains a table detector (KDD-like: 30 numeric and 2 categorical columns) and an image
detector (1 x 28 x 28, the conv backbone) for one epoch each (the time per request does not
depend on the weights), or takes ``--table-checkpoint`` / ``--image-checkpoint``. For each
batching mode it starts ``memae serve`` as its own process, then for each model runs
``--clients`` clients, each sending one-sample requests back to back for ``--seconds``;
records throughput, p50/p99 latency and the count of errors (anything but a 200).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def train_models(folder: Path, seed: int = 0) -> dict[str, Path]:
    import pandas as pd

    from memae.detector import MemAEDetector

    rng = np.random.default_rng(seed)
    n = 512
    frame = pd.DataFrame({f"x{i}": rng.lognormal(0.0, 1.0, n) for i in range(30)})
    frame["protocol"] = rng.choice(["tcp", "udp", "icmp"], n)
    frame["service"] = rng.choice(["http", "smtp", "ftp", "dns", "ssh"], n)
    table = MemAEDetector(epochs=1, batch_size=64, random_state=seed).fit(frame)
    images = rng.integers(0, 256, size=(256, 1, 28, 28), dtype=np.uint8)
    image = MemAEDetector(epochs=1, batch_size=64, random_state=seed).fit(images)
    return {"table": table.save(folder / "table.memae"), "image": image.save(folder / "image.memae")}


def sample_request(model: str, rng: np.random.Generator) -> dict[str, Any]:
    """One sample in the JSON the server takes: a row keyed by column, or a 28 x 28 image."""
    if model == "table":
        row: dict[str, Any] = {f"x{i}": float(rng.lognormal()) for i in range(30)}
        row.update(protocol=str(rng.choice(["tcp", "udp"])), service=str(rng.choice(["http", "dns"])))
        return {"data": [row]}
    return {"data": rng.integers(0, 256, size=(1, 1, 28, 28)).tolist()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(checkpoints: dict[str, Path], port: int, batching: bool, threads: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "memae.cli", "serve", *map(str, checkpoints.values())]
    argv += ["--port", str(port), "--threads", str(threads)]
    if not batching:
        argv.append("--no-batching")
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 120.0) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server stopped: {server.stderr.read() if server.stderr else ''}")
        try:
            return httpx.get(url + "/health", timeout=5).json()
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not answer within {timeout:.0f} s")


async def load(url: str, model: str, clients: int, seconds: float, seed: int) -> dict[str, Any]:
    """``clients`` tasks posting one-sample requests back to back for ``seconds``."""
    import httpx

    rng = np.random.default_rng(seed)
    bodies = [json.dumps(sample_request(model, rng)).encode() for _ in range(64)]
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(body: bytes) -> None:
            nonlocal errors
            t0 = time.perf_counter()
            try:
                response = await client.post(
                    f"/models/{model}/score", content=body, headers={"content-type": "application/json"}
                )
                kind = None if response.status_code == 200 else f"HTTP {response.status_code}"
            except httpx.HTTPError as err:
                kind = type(err).__name__
            if kind is None:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1
                kinds[kind] = kinds.get(kind, 0) + 1

        await asyncio.gather(*(one(bodies[i % len(bodies)]) for i in range(clients)))  # warm-up
        latencies.clear()
        stop = time.perf_counter() + seconds

        async def run(i: int) -> None:
            k = i
            while time.perf_counter() < stop:
                await one(bodies[k % len(bodies)])
                k += clients

        start = time.perf_counter()
        await asyncio.gather(*(run(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000.0
    return {
        "requests": len(latencies),
        "errors": errors,
        "error_kinds": kinds,
        "seconds": elapsed,
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)) if ms.size else None,
        "p99_ms": float(np.percentile(ms, 99)) if ms.size else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from memae.provenance import provenance

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        if args.table_checkpoint and args.image_checkpoint:
            checkpoints = {"table": Path(args.table_checkpoint), "image": Path(args.image_checkpoint)}
        else:
            checkpoints = train_models(Path(folder))
        for batching in (True, False):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            server = start_server(checkpoints, port, batching, args.threads)
            try:
                wait_healthy(url, server)
                for model in ("table", "image"):
                    before = wait_healthy(url, server)["models"][model]
                    row = asyncio.run(load(url, model, args.clients, args.seconds, args.seed))
                    after = wait_healthy(url, server)["models"][model]
                    batches = after["batches"] - before["batches"]
                    row.update(
                        model=model,
                        batching=batching,
                        samples_per_batch=(after["samples"] - before["samples"]) / batches
                        if batches
                        else None,
                    )
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)
            finally:
                server.terminate()
                server.wait(timeout=30)
    for model in ("table", "image"):
        on, off = (next(r for r in rows if r["model"] == model and r["batching"] is b) for b in (True, False))
        on["speedup"] = on["requests_per_second"] / off["requests_per_second"]
    return {
        "provenance": provenance(),
        "config": {
            "clients": args.clients,
            "seconds": args.seconds,
            "torch_threads": args.threads,
            "max_batch": 256,
            "batch_wait_ms": 2.0,
            "request": "one sample per request (a table row of 32 columns; a 1x28x28 uint8 image)",
            "load_average_1min_at_end": os.getloadavg()[0],
        },
        "rows": rows,
    }


def markdown(results: dict[str, Any]) -> str:
    """The table of ``results/serve.json`` for the docs."""
    config = results["config"]
    lines = [
        f"{config['clients']} clients, {config['seconds']:g} s per row, torch threads "
        f"{config['torch_threads']}, commit {str(results['provenance']['commit'])[:10]}, "
        f"{results['provenance']['machine']['cpu_count']} CPUs, load average "
        f"{config['load_average_1min_at_end']:.1f} at the end",
        "",
        "| model | micro-batching | requests/s | p50 ms | p99 ms | samples per batch | errors | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        per_batch = f"{r['samples_per_batch']:.1f}" if r["samples_per_batch"] else "—"
        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else ""
        lines.append(
            f"| {r['model']} | {'on' if r['batching'] else 'off'} | {r['requests_per_second']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {per_batch} | {r['errors']} | {speedup} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (1..256)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per model and mode (<= 120)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the server (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-checkpoint")
    parser.add_argument("--image-checkpoint")
    parser.add_argument("--out", default=str(ROOT / "results" / "serve.json"))
    parser.add_argument("--markdown", metavar="JSON", help="print the table of a results file and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    if not 1 <= args.clients <= 256 or not 0 < args.seconds <= 120:
        parser.error(f"expected 1..256 clients and 0..120 seconds, got {args.clients} and {args.seconds}")
    results = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
