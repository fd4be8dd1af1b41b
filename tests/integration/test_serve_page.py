"""The upload page at ``/`` in a real browser (headless Chromium driven by Selenium): upload
images, a table and a video, see each sample's score, decision and anomaly-map overlay, or
each frame's error curve against the threshold."""

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

from memae.data.video import user_video  # noqa: E402
from memae.detector import MemAEDetector  # noqa: E402
from memae.serve.app import asgi, create_app  # noqa: E402
from memae.serve.cli import load_detectors  # noqa: E402
from memae.serve.config import ServeConfig  # noqa: E402
from memae.video.clips import FrameStore  # noqa: E402
from tests.serve_helpers import (  # noqa: E402
    blob_images,
    running,
    street_frames,
    table_frame,
    train_checkpoints,
    train_video_checkpoint,
)

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


def _score_on_page(driver, url: str, model: str, files: list[Path], entry: str = "/") -> list[list[str]]:  # type: ignore[no-untyped-def]
    driver.get(url + entry)
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


def test_with_a_token_the_browser_gets_it_once_from_the_address(detectors, browser, tmp_path) -> None:
    frame = table_frame(3, seed=7)
    frame.to_csv(tmp_path / "flows.csv", index=False)
    config = ServeConfig(token="s3cret")
    with running(asgi(create_app(detectors, config)), config) as url:
        browser.get(url + "/")
        assert "missing or wrong token" in browser.find_element(By.TAG_NAME, "body").text
        rows = _score_on_page(browser, url, "table", [tmp_path / "flows.csv"], entry="/?token=s3cret")
        assert browser.current_url == url + "/", "the token left the address bar"
        cookies = browser.get_cookies()
    np.testing.assert_allclose(
        [float(r[1]) for r in rows], detectors["table"].decision_function(frame), rtol=1e-4
    )
    assert [(c["httpOnly"], c["sameSite"]) for c in cookies] == [(True, "Strict")]


def test_the_page_draws_an_uploaded_videos_error_curve(detectors, browser, tmp_path) -> None:
    from tests.unit.video.video_formats import write_avi

    video_model = train_video_checkpoint(tmp_path)
    served = {**load_detectors([str(video_model)]), "image": detectors["image"]}
    frames = street_frames(14, 2)
    frames[8:10, 3:10, 4:14] = 255  # something bright passes
    avi = write_avi(tmp_path / "cam.avi", frames)
    with running(asgi(create_app(served, ServeConfig()))) as url:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 2)
        Select(browser.find_element(By.ID, "model")).select_by_value("street")
        assert "video model" in browser.find_element(By.ID, "hint").text
        browser.find_element(By.ID, "file").send_keys(str(avi))
        browser.find_element(By.ID, "send").click()
        wait.until(
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, "#curve polyline") or d.find_element(By.ID, "error").text
            )
        )
        assert browser.find_element(By.ID, "error").text == ""
        points = (
            browser.find_element(By.CSS_SELECTOR, "#curve polyline.errors").get_attribute("points").split()
        )
        threshold = browser.find_elements(By.CSS_SELECTOR, "#curve line.threshold")
        flagged = browser.find_elements(By.CSS_SELECTOR, "#curve circle.flagged")
        rows = browser.find_elements(By.CSS_SELECTOR, "#scores tbody tr")
        table = [[c.text for c in row.find_elements(By.TAG_NAME, "td")] for row in rows]
        status = browser.find_element(By.ID, "status").text
    trained = served["street"]
    decoded = FrameStore.decode([user_video(avi)], trained.experiment.frames.size).frames[0]
    index, errors = trained.frame_errors(decoded)
    labels = errors > trained.threshold
    assert len(points) == len(index) == 14 and len(threshold) == 1
    assert len(flagged) == int(labels.sum())
    heights = [float(p.split(",")[1]) for p in points]  # SVG y grows downwards: higher error, smaller y
    assert np.argmin(heights) == np.argmax(errors)
    assert [int(r[0]) for r in table] == index.tolist()
    np.testing.assert_allclose([float(r[1]) for r in table], errors, rtol=1e-4)
    assert [r[2] for r in table] == ["anomalous" if v else "normal" for v in labels]
    assert f"14 frames of cam.avi scored, {int(labels.sum())} over the threshold" in status
