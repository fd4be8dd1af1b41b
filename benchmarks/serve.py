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
import contextlib
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from memae.serve.cli import default_threads

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


class _Connection:
    """One client's persistent HTTP/1.1 connection, spoken by hand over asyncio streams:
    the load test measures the server, so the clients' own cost per request is kept to a
    write and two reads (an HTTP library costs the shared CPUs more than the server's routing)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> int:
        """Send a whole request; the response's status (its body is read and dropped)."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None


def requests_for(model: str, port: int, seed: int, n: int = 64) -> list[bytes]:
    """``n`` whole HTTP requests, each one sample for ``model``, ready to write."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        body = json.dumps(sample_request(model, rng)).encode()
        head = (
            f"POST /models/{model}/score HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def load(
    port: int, model: str, clients: int, seconds: float, seed: int, server_pid: int
) -> dict[str, Any]:
    """``clients`` connections, each posting one-sample requests back to back for ``seconds``;
    the CPU time the server (process ``server_pid``) and the clients spent meanwhile."""
    requests = requests_for(model, port, seed)
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    connections = [_Connection("127.0.0.1", port) for _ in range(clients)]

    async def one(connection: _Connection, request: bytes) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            status = await connection.post(request)
            kind = None if status == 200 else f"HTTP {status}"
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            kind = type(err).__name__
            await connection.close()
        if kind is None:
            latencies.append(time.perf_counter() - t0)
        else:
            errors += 1
            kinds[kind] = kinds.get(kind, 0) + 1

    try:
        await asyncio.gather(*(one(c, requests[i % len(requests)]) for i, c in enumerate(connections)))
        latencies.clear()  # the warm-up: connections open, the network made ready for scoring
        stop = time.perf_counter() + seconds

        async def run(i: int) -> None:
            k = i
            while time.perf_counter() < stop:
                await one(connections[i], requests[k % len(requests)])
                k += clients

        load_before = os.getloadavg()[0]
        server_cpu = process_cpu_seconds(server_pid)
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(run(i) for i in range(clients)))
        elapsed, client_cpu = time.perf_counter() - start, time.process_time() - cpu
        server_after = process_cpu_seconds(server_pid)
    finally:
        for connection in connections:
            await connection.close()
    ms = np.asarray(latencies) * 1000.0
    return {
        "requests": len(latencies),
        "errors": errors,
        "error_kinds": kinds,
        "seconds": elapsed,
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)) if ms.size else None,
        "p99_ms": float(np.percentile(ms, 99)) if ms.size else None,
        "server_cpu_seconds": None
        if server_cpu is None or server_after is None
        else server_after - server_cpu,
        "client_cpu_seconds": client_cpu,
        "load_average_1min": [load_before, os.getloadavg()[0]],
    }


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far, all its threads (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_loop(coroutine: Any) -> Any:
    """``coroutine`` run to its end on uvloop where installed (the clients' loop costs less CPU)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


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
                    row = run_loop(load(port, model, args.clients, args.seconds, args.seed, server.pid))
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
        "| model | micro-batching | requests/s | p50 ms | p99 ms | samples per batch | errors | "
        "server CPU µs per request | client CPU µs per request | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        per_batch = f"{r['samples_per_batch']:.1f}" if r["samples_per_batch"] else "—"
        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else ""
        cpu = [
            f"{1e6 * r[key] / r['requests']:.0f}" if r.get(key) is not None and r["requests"] else "—"
            for key in ("server_cpu_seconds", "client_cpu_seconds")
        ]
        lines.append(
            f"| {r['model']} | {'on' if r['batching'] else 'off'} | {r['requests_per_second']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {per_batch} | {r['errors']} | {cpu[0]} | {cpu[1]} | "
            f"{speedup} |"
        )
    return "\n".join(lines)


def write_block(doc: Path, name: str, text: str) -> None:
    """Put ``text`` between the lines ``<!-- name -->`` and ``<!-- /name -->`` of ``doc``."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    content = doc.read_text()
    if start not in content or end not in content:
        raise ValueError(f"{doc} has no {start} ... {end} block to write the table into")
    before, rest = content.split(start, 1)
    after = rest.split(end, 1)[1]
    doc.write_text(f"{before}{start}\n{text}\n{end}{after}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (1..256)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per model and mode (<= 120)")
    parser.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help=f"torch threads of the server (default: memae serve's, {default_threads()} here)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-checkpoint")
    parser.add_argument("--image-checkpoint")
    parser.add_argument("--out", default=str(ROOT / "results" / "serve.json"))
    parser.add_argument("--markdown", metavar="JSON", help="print the table of a results file and exit")
    parser.add_argument("--docs", metavar="MD", help="with --markdown: write the table into this file")
    args = parser.parse_args()
    if args.markdown:
        table = markdown(json.loads(Path(args.markdown).read_text()))
        if args.docs:
            write_block(Path(args.docs), "serve", table)
        print(table)
        return
    if not 1 <= args.clients <= 256 or not 0 < args.seconds <= 120:
        parser.error(f"expected 1..256 clients and 0..120 seconds, got {args.clients} and {args.seconds}")
    results = run(args)
    harness.write_json(args.out, results)
    print(markdown(results))


if __name__ == "__main__":
    main()
