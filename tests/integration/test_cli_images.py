"""memae train / score / report / inspect on image folders in the MVTec AD layout, end to end."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memae.cli import main


def _blob(rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """A bright blob at the centre on a dark background: the normal class."""
    yy, xx = np.mgrid[:size, :size]
    radius = rng.uniform(3.5, 5.0)
    image = 220.0 * (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < radius**2)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def category(tmp_path_factory) -> Path:
    """train/good (PNG), test/good, test/scratch (a bright bar, with masks), test/odd (no masks)."""
    root = tmp_path_factory.mktemp("category")
    rng = np.random.default_rng(0)
    for i in range(48):
        _save(root / "train" / "good" / f"{i:03d}.png", _blob(rng))
    for i in range(6):
        _save(root / "test" / "good" / f"{i:03d}.png", _blob(rng))
        image, mask = _blob(rng), np.zeros((16, 16), np.uint8)
        image[1:3, 2 + i : 12 + i // 2] = 255
        mask[1:3, 2 + i : 12 + i // 2] = 255
        _save(root / "test" / "scratch" / f"{i:03d}.png", image)
        _save(root / "ground_truth" / "scratch" / f"{i:03d}_mask.png", mask)
        _save(root / "test" / "odd" / f"{i:03d}.png", 255 - _blob(rng))
    return root


@pytest.fixture(scope="module")
def model(category: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "m.memae"
    argv = ["train", "--data", str(category / "train" / "good"), "--epochs", "30", "--batch-size", "16"]
    assert main([*argv, "--random-state", "0", "--out", str(out)]) == 0
    return out


def test_score_writes_one_row_per_file_with_layout_labels_and_maps(category, model, tmp_path, capsys) -> None:
    scores, maps = tmp_path / "scores.csv", tmp_path / "maps"
    argv = ["score", str(model), "--data", str(category / "test"), "--out", str(scores), "--maps", str(maps)]
    assert main(argv) == 0
    assert "AUROC " in capsys.readouterr().out
    with open(scores, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "score", "calibrated", "anomaly", "defect_type", "label"]
    assert [r["path"] for r in rows[:2]] == ["good/000.png", "good/001.png"]
    assert {r["defect_type"]: r["label"] for r in rows} == {"good": "0", "odd": "1", "scratch": "1"}
    assert all(0.0 <= float(r["calibrated"]) <= 1.0 and r["anomaly"] in ("0", "1") for r in rows)
    mean = {g: np.mean([float(r["score"]) for r in rows if r["defect_type"] == g]) for g in ("good", "odd")}
    assert mean["odd"] > mean["good"]
    for row in rows:
        stem = maps / Path(row["path"]).with_suffix("")
        with Image.open(f"{stem}.png") as error, Image.open(f"{stem}_overlay.png") as overlay:
            assert error.size == (16, 16) and error.mode.startswith("I")
            assert overlay.size == (16, 16) and overlay.mode == "RGB"
    assert json.loads((maps / "maps.json").read_text())["maps"] == len(rows)


def test_the_scratch_lights_up_its_anomaly_map(category, model, tmp_path) -> None:
    maps = tmp_path / "maps"
    assert main(["score", str(model), "--data", str(category / "test"), "--maps", str(maps)]) == 0
    with Image.open(maps / "scratch" / "000.png") as error:
        values = np.asarray(error, dtype=np.float64)
    with Image.open(category / "ground_truth" / "scratch" / "000_mask.png") as mask:
        inside = np.asarray(mask) > 0
    assert values[inside].mean() > 3 * values[~inside].mean()


def test_maps_of_larger_files_come_at_each_files_own_size(model, tmp_path) -> None:
    rng = np.random.default_rng(3)
    folder, maps = tmp_path / "large", tmp_path / "maps"
    sizes = {"wide.png": (24, 40), "tall.png": (48, 32)}  # (H, W); the model takes 16 x 16
    for name, (h, w) in sizes.items():
        _save(folder / name, np.asarray(Image.fromarray(_blob(rng)).resize((w, h))))
    assert main(["score", str(model), "--data", str(folder), "--maps", str(maps)]) == 0
    for name, (h, w) in sizes.items():
        stem = maps / Path(name).stem
        with Image.open(f"{stem}.png") as error, Image.open(f"{stem}_overlay.png") as overlay:
            assert error.size == (w, h) and overlay.size == (w, h)
    assert json.loads((maps / "maps.json").read_text())["size"] == "each image file's own size"


def test_report_on_the_category_has_image_and_pixel_metrics_per_defect(category, model, tmp_path) -> None:
    out = tmp_path / "report"
    assert main(["report", str(model), "--data", str(category), "--out", str(out)]) == 0
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["images"] == 18 and numbers["anomalous_images"] == 12
    assert numbers["image_auroc"] > 0.8
    assert numbers["pixel_auroc"] > 0.8 and 0.0 <= numbers["pro"] <= 1.0
    assert set(numbers["per_defect"]) == {"odd", "scratch"}
    assert "pixel_auroc" in numbers["per_defect"]["scratch"]
    assert "pixel_auroc" not in numbers["per_defect"]["odd"]  # no ground truth for it
    assert numbers["metrics"]["auc"] == pytest.approx(numbers["image_auroc"])
    for stem in ("worst-anomalies", "worst-good", "best-anomalies", "best-good"):
        assert (out / f"cases-{stem}.png").is_file()
    page = (out / "index.html").read_text()
    assert "scratch/00" in page and "good/00" in page and "defect type" in page


def test_score_resizes_to_the_checkpoints_size(category, model, tmp_path, capsys) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "bigger"
    for i in range(3):
        _save(folder / f"{i}.png", np.kron(_blob(rng), np.ones((2, 2), np.uint8)))
    assert main(["score", str(model), "--data", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,score,calibrated,anomaly" and len(lines) == 4


def test_rgb_images_for_a_gray_model_name_both_channel_counts(model, tmp_path, capsys) -> None:
    _save(tmp_path / "rgb" / "a.png", np.zeros((16, 16, 3), np.uint8))
    assert main(["score", str(model), "--data", str(tmp_path / "rgb")]) == 1
    err = capsys.readouterr().err
    assert "trained on 1-channel images" in err and "got 3-channel images" in err
    assert main(["score", str(model), "--data", str(tmp_path / "rgb"), "--channels", "1"]) == 0


def test_unreadable_files_stop_with_their_name_or_are_skipped(category, model, tmp_path, capsys) -> None:
    folder = tmp_path / "some"
    _save(folder / "fine.png", _blob(np.random.default_rng(2)))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["score", str(model), "--data", str(folder)]) == 1
    assert "broken.jpg is not a readable image" in capsys.readouterr().err
    assert main(["score", str(model), "--data", str(folder), "--skip-unreadable"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 unreadable file(s): broken.jpg" in captured.err
    assert captured.out.splitlines()[1].startswith("fine.png,")


@pytest.mark.parametrize("case", ["empty", "mixed sizes", "category root"])
def test_train_errors_name_the_folder_and_what_was_expected(category, tmp_path, capsys, case) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    if case == "mixed sizes":
        _save(folder / "a.png", np.zeros((16, 16), np.uint8))
        _save(folder / "b.png", np.zeros((20, 16), np.uint8))
    data = str(category) if case == "category root" else str(folder)
    assert main(["train", "--data", data, "--epochs", "1", "--out", str(tmp_path / "m.memae")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    expected = {"empty": "no image files under", "mixed sizes": "--image-size", "category root": "train/good"}
    assert expected[case] in err[0]
    assert not (tmp_path / "m.memae").exists()


def test_mixed_sizes_train_with_an_image_size(tmp_path) -> None:
    rng = np.random.default_rng(3)
    for i in range(8):
        _save(tmp_path / "data" / f"{i}.png", _blob(rng, 16 + 4 * (i % 2)))
    argv = ["train", "--data", str(tmp_path / "data"), "--image-size", "12", "12", "--epochs", "1"]
    assert main([*argv, "--batch-size", "4", "--out", str(tmp_path / "m.memae")]) == 0
    assert main(["info", str(tmp_path / "m.memae")]) == 0


def test_inspect_reads_an_image_folder(category, model, tmp_path) -> None:
    out = tmp_path / "inspect"
    assert main(["inspect", str(model), "--data", str(category / "test"), "--out", str(out)]) == 0
    assert json.loads((out / "memory.json").read_text())["n_queries"] > 0
