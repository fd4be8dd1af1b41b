"""A server on a free loopback port in a thread, and tiny detectors to serve, for the serve tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from memae.detector import MemAEDetector
from memae.serve.config import ServeConfig


def table_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "duration": rng.exponential(2.0, n),
            "bytes": rng.normal(100.0, 10.0, n),
            "protocol": rng.choice(["tcp", "udp"], n),
        }
    )


def blob_images(n: int, seed: int, size: int = 16) -> np.ndarray:
    """(n, 1, size, size) uint8: a bright disc at the centre on a dark, noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, 1, size, size), np.uint8)
    for i in range(n):
        disc = 220.0 * (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < rng.uniform(3.5, 5.0) ** 2)
        out[i, 0] = np.clip(disc + rng.normal(0, 6, disc.shape), 0, 255).astype(np.uint8)
    return out


def train_checkpoints(folder: Path) -> dict[str, Path]:
    """A table detector (named columns, one categorical) and an image detector, 2 epochs each."""
    table = MemAEDetector(epochs=2, batch_size=32, random_state=0).fit(table_frame(96, 0))
    image = MemAEDetector(epochs=2, batch_size=16, random_state=0).fit(blob_images(48, 0))
    return {"table": table.save(folder / "table.memae"), "image": image.save(folder / "image.memae")}


def street_frames(n: int, seed: int) -> np.ndarray:
    """``n`` smooth grey 16 x 24 frames (uint8), a little brighter from frame to frame."""
    y, x = np.mgrid[:16, :24]
    base = 50 + 5 * seed + 3 * x + 2 * y
    return np.clip(base[None] + 4 * np.arange(n)[:, None, None], 0, 255).astype(np.uint8)


def frame_folder(root: Path, frames: np.ndarray) -> Path:
    """``frames`` written as ``root/0000.png``, ``root/0001.png``, ..."""
    from PIL import Image

    root.mkdir()
    for k, frame in enumerate(frames):
        Image.fromarray(frame).save(root / f"{k:04d}.png")
    return root


def train_video_checkpoint(folder: Path) -> Path:
    """``folder/street.memae``: a tiny video model (8 x 8 frames, clips of 4) trained by
    ``memae train-video`` for 2 epochs on 12 street frames, with its threshold."""
    import yaml

    from memae.cli import main

    config = {
        "name": "tiny",
        "frames": {"height": 8, "width": 8, "clip_len": 4, "train_stride": 1},
        "model": {"backbone": "video-small", "variant": "memae", "memory_size": 10, "similarity": "dot"},
        "train": {"epochs": 2, "batch_size": 5, "lr": 1e-3, "validation_fraction": 0.0, "device": "cpu"},
    }
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config))
    frames = frame_folder(folder / "normal", street_frames(12, 0))
    out = folder / "street.memae"
    argv = ["train-video", "--videos", str(frames), "--config", str(folder / "tiny.yaml"), "--out", str(out)]
    assert main([*argv, "--epochs", "2"]) == 0
    return out


@contextlib.contextmanager
def running(app, config: ServeConfig | None = None) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``app`` (an ASGI application) served on a free loopback port as ``memae serve`` serves
    it (``config``'s deadlines; the default one's else); yields its URL."""
    import uvicorn

    from memae.serve.server import server_config

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, config or ServeConfig()))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
