"""The upload page at ``/`` in a real browser (headless Chromium driven by Selenium): upload
images and a table, see each sample's score, decision and anomaly-map overlay."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver")

from PIL import Image  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from memae.detector import MemAEDetector  # noqa: E402
from memae.serve.app import asgi, create_app  # noqa: E402
from memae.serve.config import ServeConfig  # noqa: E402
from tests.serve_helpers import blob_images, running, table_frame, train_checkpoints  # noqa: E402

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    BROWSER is None or DRIVER is None,
    reason="needs Chromium and chromedriver (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def detectors(tmp_path_factory) -> dict[str, MemAEDetector]:
    paths = train_checkpoints(tmp_path_factory.mktemp("models"))
    return {name: MemAEDetector.load(path) for name, path in paths.items()}


@pytest.fixture
def browser(tmp_path):  # type: ignore[no-untyped-def]
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1000,800",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _score_on_page(driver, url: str, model: str, files: list[Path]) -> list[list[str]]:  # type: ignore[no-untyped-def]
    driver.get(url + "/")
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 2)
    Select(driver.find_element(By.ID, "model")).select_by_value(model)
    driver.find_element(By.ID, "file").send_keys("\n".join(str(f) for f in files))
    driver.find_element(By.ID, "send").click()
    wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#scores tbody tr") or d.find_element(By.ID, "error").text
    )
    assert driver.find_element(By.ID, "error").text == ""
    rows = driver.find_elements(By.CSS_SELECTOR, "#scores tbody tr")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def test_the_page_scores_uploaded_images_with_overlays(detectors, browser, tmp_path) -> None:
    images = blob_images(2, seed=5)
    images[1, 0, 1:4, 2:14] = 255
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f"part{i}.png")
        Image.fromarray(image[0]).save(files[-1])
    with running(asgi(create_app(detectors, ServeConfig()))) as url:
        rows = _score_on_page(browser, url, "image", files)
        overlays = browser.find_elements(By.CSS_SELECTOR, "#scores img.overlay")
        loaded = [browser.execute_script("return arguments[0].naturalWidth", img) for img in overlays]
        status = browser.find_element(By.ID, "status").text
        browser.save_screenshot(str(tmp_path / "page.png"))
    detector = detectors["image"]
    scores, labels = detector.decision_function(images), detector.predict(images)
    assert [row[0] for row in rows] == ["part0.png", "part1.png"]
    np.testing.assert_allclose([float(row[1]) for row in rows], scores, rtol=1e-4)
    assert [row[3] for row in rows] == ["anomalous" if v else "normal" for v in labels]
    assert loaded == [16, 16], "each row shows its 16 x 16 anomaly-map overlay"
    assert f"{int(labels.sum())} anomalous" in status
    assert Image.open(tmp_path / "page.png").size[0] > 0


def test_the_page_scores_an_uploaded_table(detectors, browser, tmp_path) -> None:
    frame = table_frame(4, seed=6)
    frame.loc[2, "bytes"] = 10_000.0
    frame.to_csv(tmp_path / "flows.csv", index=False)
    with running(asgi(create_app(detectors, ServeConfig()))) as url:
        rows = _score_on_page(browser, url, "table", [tmp_path / "flows.csv"])
    detector = detectors["table"]
    np.testing.assert_allclose([float(r[1]) for r in rows], detector.decision_function(frame), rtol=1e-4)
    assert [r[3] for r in rows] == ["anomalous" if v else "normal" for v in detector.predict(frame)]
    assert rows[2][3] == "anomalous"
