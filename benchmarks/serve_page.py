"""Screenshots of ``memae serve``'s upload page in headless Chromium, for docs/SERVING.md.

    python benchmarks/serve_page.py --out docs/figures/serve_page.png \
        --video-out docs/figures/serve_page_video.png

Trains an image detector on small discs (the normal class) and a video model on a synthetic
street (a grey blob walking slowly across), serves both, then through the page uploads two
discs — one plain, one with a bright scratch — and saves the page with their scores,
decisions and anomaly-map overlays; and uploads a video of the street in which a bright
block crosses fast, and saves the page with its per-frame error curve against the threshold.
Needs Chromium, chromedriver, Selenium and PyAV.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from memae.cli import main as memae
from memae.detector import MemAEDetector
from memae.serve.app import asgi, create_app
from memae.serve.cli import load_detectors
from memae.serve.config import ServeConfig
from memae.serve.server import server_config


def discs(n: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, 1, size, size), np.uint8)
    for i in range(n):
        disc = 220.0 * (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < rng.uniform(7, 10) ** 2)
        out[i, 0] = np.clip(disc + rng.normal(0, 6, disc.shape), 0, 255).astype(np.uint8)
    return out


def street(n: int, rng: np.random.Generator, car: range = range(0)) -> np.ndarray:
    """``n`` grey 48 x 64 frames: a gradient, noise, a dark blob walking one pixel a frame;
    in the frames of ``car``, a bright block crossing eight pixels a frame."""
    yy, xx = np.mgrid[:48, :64]
    out = np.empty((n, 48, 64), np.uint8)
    for k in range(n):
        frame = 90 + 0.8 * xx + 0.5 * yy + rng.normal(0, 4, xx.shape)
        walker = (k % 80) - 8
        frame[20:34, max(walker, 0) : max(walker + 6, 0)] = 40
        if k in car:
            left = 8 * (k - car.start)
            frame[30:42, left : left + 12] = 250
        out[k] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def write_video(path: Path, frames: np.ndarray) -> Path:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"qscale": "2"}
        for frame in frames:
            rgb = np.repeat(frame[:, :, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def train_street(folder: Path, rng: np.random.Generator, epochs: int) -> Path:
    """A video model trained by ``memae train-video`` on a folder of normal street frames."""
    normal = folder / "street"
    normal.mkdir()
    for k, frame in enumerate(street(160, rng)):
        Image.fromarray(frame).save(normal / f"{k:04d}.png")
    config = {
        "name": "street",
        "frames": {"height": 32, "width": 32, "clip_len": 8, "train_stride": 1},
        "model": {"backbone": "video-small", "variant": "memae", "memory_size": 200, "similarity": "dot"},
        "train": {"epochs": epochs, "batch_size": 8, "lr": 1e-3, "validation_fraction": 0.0, "device": "cpu"},
    }
    (folder / "street.yaml").write_text(yaml.safe_dump(config))
    out = folder / "street.memae"
    argv = [
        "train-video",
        "--videos",
        str(normal),
        "--config",
        str(folder / "street.yaml"),
        "--out",
        str(out),
    ]
    if memae(argv) != 0:
        raise RuntimeError("training the street model failed")
    return out


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/serve_page.png")
    parser.add_argument("--video-out", default="docs/figures/serve_page_video.png")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the disc detector")
    parser.add_argument("--video-epochs", type=int, default=6, help="epochs of the street model")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp())
    detector = MemAEDetector(epochs=args.epochs, batch_size=16, random_state=0).fit(discs(128, rng))
    test = discs(2, rng)
    test[1, 0, 4:8, 6:26] = 255
    files = [folder / "plain.png", folder / "scratched.png"]
    for file, image in zip(files, test, strict=True):
        Image.fromarray(image[0]).save(file)
    served = {"discs": detector, **load_detectors([str(train_street(folder, rng, args.video_epochs))])}
    video = write_video(folder / "crossing.avi", street(90, rng, car=range(50, 58)))

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = ServeConfig()
    import uvicorn

    server = uvicorn.Server(server_config(asgi(create_app(served, config)), config))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--window-size=900,860",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={folder / 'profile'}",
    ):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    try:
        for model, upload, ready, out in [
            ("discs", files, "#scores img", args.out),
            ("street", [video], "#curve polyline", args.video_out),
        ]:
            driver.get(f"http://127.0.0.1:{sock.getsockname()[1]}/")
            WebDriverWait(driver, 60).until(
                lambda d: len(Select(d.find_element(By.ID, "model")).options) == 2
            )
            Select(driver.find_element(By.ID, "model")).select_by_value(model)
            driver.find_element(By.ID, "file").send_keys("\n".join(map(str, upload)))
            driver.find_element(By.ID, "send").click()
            WebDriverWait(driver, 60).until(lambda d, r=ready: d.find_elements(By.CSS_SELECTOR, r))
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(out)
            print(f"wrote {out}")
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(timeout=30)


if __name__ == "__main__":
    main()
