"""``memae serve``: the command line around :func:`memae.serve.app.create_app`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

#: The environment variable read for the token when ``--token`` is not given (keeps it out of ``ps``).
TOKEN_ENV = "MEMAE_SERVE_TOKEN"


def default_threads() -> int:
    """Torch threads for scoring: every CPU but one, which the event loop (HTTP, JSON, the
    requests' preprocessing) needs; more threads than free CPUs make each forward pass wait."""
    return max(1, (os.cpu_count() or 1) - 1)


def add_parser(sub: Any) -> None:
    """Add ``serve`` to the ``memae`` sub-parsers."""
    serve = sub.add_parser(
        "serve",
        help="serve trained detectors over HTTP: JSON or file uploads in, scores and anomaly maps out",
        description="Loads every checkpoint once, then answers GET /health, POST /score "
        "(POST /models/NAME/score with several models; NAME is the file name without its suffix), "
        "the upload page at / and the API description at /docs.",
    )
    serve.add_argument("checkpoints", nargs="+", metavar="CKPT", help="detectors written by `memae train`")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"bearer token every request must carry; required off loopback (default: ${TOKEN_ENV})",
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help="torch threads of the scoring (default: the CPUs less the one the event loop needs, "
        f"at least 1: {default_threads()} here)",
    )
    serve.add_argument("--no-batching", action="store_true", help="score one request at a time")
    serve.add_argument("--max-batch", type=int, default=256, help="samples per micro-batch (default: 256)")
    serve.add_argument(
        "--batch-wait-ms",
        type=float,
        default=2.0,
        help="how long a batch waits for more requests (default: 2)",
    )
    serve.add_argument("--max-body-bytes", type=int, default=20_000_000, help="default: 20000000")
    serve.add_argument("--max-samples", type=int, default=1024, help="samples per request (default: 1024)")
    serve.add_argument(
        "--max-pixels", type=int, default=4_000_000, help="pixels per image (default: 4000000)"
    )
    serve.add_argument("--max-files", type=int, default=64, help="files per upload (default: 64)")
    serve.add_argument(
        "--max-video-frames", type=int, default=100_000, help="frames per video (default: 100000)"
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        help="seconds a request's headers, then its body, may take to arrive; slower clients get 408 "
        "(default: 30)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        help="open connections at once; requests beyond them get 503 (default: 1000)",
    )


def config_from(args: argparse.Namespace) -> Any:
    from memae.serve.config import Batching, Limits, ServeConfig

    return ServeConfig(
        host=args.host,
        port=args.port,
        token=args.token,
        limits=Limits(
            max_body_bytes=args.max_body_bytes,
            max_samples=args.max_samples,
            max_pixels=args.max_pixels,
            max_files=args.max_files,
            max_video_frames=args.max_video_frames,
        ),
        batching=Batching(enabled=not args.no_batching, max_batch=args.max_batch, wait_ms=args.batch_wait_ms),
        torch_threads=args.threads,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
    )


def load_detectors(paths: list[str]) -> dict[str, Any]:
    """Each checkpoint loaded once, named by its file name without the suffix (names must differ)."""
    from memae.checkpoint import read_metadata
    from memae.detector import MemAEDetector
    from memae.video.experiment import load_video_model

    detectors: dict[str, Any] = {}
    for path in paths:
        name = Path(path).stem
        if name in detectors:
            raise ValueError(f"two checkpoints are named {name!r}: serve files with different names")
        video = read_metadata(path).get("kind") == "video-model"
        detectors[name] = load_video_model(path) if video else MemAEDetector.load(path)
    return detectors


def serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from memae.serve.app import asgi, create_app, describe
        from memae.serve.server import server_config
    except ImportError as err:
        print(
            f"memae: error: serving needs the serve extra: pip install 'memae[serve]' ({err})",
            file=sys.stderr,
        )
        return 1
    config = config_from(args)
    detectors = load_detectors(args.checkpoints)
    app = create_app(detectors, config)
    served = ", ".join(f"{name} ({info.kind})" for name, info in describe(app).items())
    page = f"http://{config.host}:{config.port}" + ("/?token=<token>" if config.token else "")
    print(f"memae: serving {served}; the page at {page}, the API at /docs", file=sys.stderr)
    uvicorn.Server(server_config(asgi(app), config)).run()
    return 0
