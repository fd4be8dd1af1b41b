import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from memae.report_images import image_metrics, write_maps
from memae.segmentation import pixel_auroc, pro_auc


@pytest.fixture
def case(rng):
    groups = np.array(["good"] * 4 + ["crack"] * 3 + ["odd"] * 3)
    labels = (groups != "good").astype(int)
    scores = rng.random(10) + labels * 0.5
    masks = np.zeros((10, 1, 6, 6), np.float32)
    masks[4:7, 0, 1:3, 1:4] = 1
    masks[7:] = np.nan  # "odd" has no ground truth
    maps = rng.random((10, 1, 6, 6)) + 0.7 * np.nan_to_num(masks)
    return scores, labels, groups, maps, masks


def test_image_and_pixel_metrics_overall_and_per_defect(case) -> None:
    scores, labels, groups, maps, masks = case
    got = image_metrics(scores, labels, tuple(groups), maps, masks)
    assert got["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    crack = (groups == "good") | (groups == "crack")
    assert got["per_defect"]["crack"]["image_auroc"] == pytest.approx(
        roc_auc_score(labels[crack], scores[crack])
    )
    # pixel metrics over the images with ground truth only: good and crack
    assert got["pixel_auroc"] == pytest.approx(pixel_auroc(maps[crack], masks[crack]))
    assert got["pro"] == pytest.approx(pro_auc(maps[crack], masks[crack]))
    assert got["per_defect"]["crack"]["pixel_auroc"] == pytest.approx(got["pixel_auroc"])
    assert "pixel_auroc" not in got["per_defect"]["odd"]
    assert got["per_defect"]["odd"]["images"] == 3 and got["anomalous_images"] == 6


def test_without_maps_only_image_metrics(case) -> None:
    scores, labels, groups, *_ = case
    got = image_metrics(scores, labels, tuple(groups))
    assert set(got) == {"images", "anomalous_images", "image_auroc", "per_defect"}


def test_maps_are_written_at_the_relative_paths_and_read_back(tmp_path, rng) -> None:
    images = rng.integers(0, 256, (2, 3, 5, 7), dtype=np.uint8)
    maps = rng.random((2, 1, 5, 7)).astype(np.float32)
    write_maps(tmp_path, ["good/a.jpg", "crack/deep/b.png"], images, maps)
    scale = json.loads((tmp_path / "maps.json").read_text())["scale"]
    assert scale == pytest.approx(float(maps.max()))
    with Image.open(tmp_path / "crack" / "deep" / "b.png") as png:
        values = np.asarray(png, dtype=np.float64)
    np.testing.assert_allclose(values / 65535 * scale, maps[1, 0], atol=scale / 65535)
    with Image.open(tmp_path / "good" / "a_overlay.png") as overlay:
        assert overlay.mode == "RGB" and overlay.size == (7, 5)
