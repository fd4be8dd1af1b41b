"""Screenshot of ``memae serve``'s upload page in headless Chromium, for docs/SERVING.md.

    python benchmarks/serve_page.py --out docs/figures/serve_page.png

Trains an image detector on small discs (the normal class), serves it, uploads two
discs — one plain, one with a bright scratch — through the page and saves the page with
their scores, decisions and anomaly-map overlays. Needs Chromium, chromedriver and Selenium.
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
from PIL import Image

from memae.detector import MemAEDetector
from memae.serve.app import asgi, create_app
from memae.serve.config import ServeConfig


def discs(n: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, 1, size, size), np.uint8)
    for i in range(n):
        disc = 220.0 * (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < rng.uniform(7, 10) ** 2)
        out[i, 0] = np.clip(disc + rng.normal(0, 6, disc.shape), 0, 255).astype(np.uint8)
    return out


def main() -> None:
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/serve_page.png")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    detector = MemAEDetector(epochs=args.epochs, batch_size=16, random_state=0).fit(discs(128, rng))
    folder = Path(tempfile.mkdtemp())
    test = discs(2, rng)
    test[1, 0, 4:8, 6:26] = 255
    files = [folder / "plain.png", folder / "scratched.png"]
    for file, image in zip(files, test, strict=True):
        Image.fromarray(image[0]).save(file)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(asgi(create_app({"discs": detector}, ServeConfig())), log_level="warning")
    )
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
        "--window-size=900,720",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={folder / 'profile'}",
    ):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    try:
        driver.get(f"http://127.0.0.1:{sock.getsockname()[1]}/")
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "file").send_keys("\n".join(map(str, files)))
        driver.find_element(By.ID, "send").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#scores img"))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(args.out)
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
