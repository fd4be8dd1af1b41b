"""The compact CIFAR-10 copy is decoded by memae's own code; nothing in a data folder runs."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memae.data.cifar10 import CLASSES, compact_files, load_cifar10, read_compact

SIZES = {"train": 23, "test": 12}


def _write_compact(folder: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A tiny compact copy in the published layout; returns its images (N, 3, 32, 32) and labels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = [], []
    for split, n in SIZES.items():
        split_labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)  # every class present
        split_images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        (folder / f"{split}_labels.bin").write_bytes(split_labels.tobytes())
        for k, name in enumerate(CLASSES):
            tiles = split_images[split_labels == k]
            rows = -(-len(tiles) // 10)
            sheet = np.zeros((rows * 10, 32, 32, 3), np.uint8)
            sheet[: len(tiles)] = tiles  # row by row, 10 tiles wide, the last row part-filled
            pixels = sheet.reshape(rows, 10, 32, 32, 3).transpose(0, 2, 1, 3, 4).reshape(rows * 32, 320, 3)
            Image.fromarray(pixels).save(folder / f"{split}_{k}_{name}.webp", lossless=True)
        images.append(split_images.transpose(0, 3, 1, 2))
        labels.append(split_labels.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def test_the_compact_copy_decodes_pixel_exact(tmp_path) -> None:
    images, labels = _write_compact(tmp_path / "cifar10")
    got_images, got_labels = read_compact(tmp_path / "cifar10", verify=False, sizes=SIZES)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(got_images, images)


def test_a_copy_that_is_not_the_published_one_is_refused(tmp_path) -> None:
    _write_compact(tmp_path / "cifar10")
    with pytest.raises(ValueError, match=r"train_labels\.bin does not match the published CIFAR-10 copy"):
        read_compact(tmp_path / "cifar10", sizes=SIZES)


def test_a_rebuild_script_in_the_data_folder_is_never_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEMAE_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "ran"
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    (folder / "rebuild.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):
        load_cifar10(tmp_path / "data")
    _write_compact(folder)  # the script beside a (tampered) compact copy: refused, not run
    with pytest.raises(ValueError, match="does not match the published CIFAR-10 copy"):
        load_cifar10(tmp_path / "data")
    assert not marker.exists()
    assert sorted(f for s in SIZES for f in compact_files(s)) == sorted(
        p.name for p in folder.iterdir() if p.name != "rebuild.py"
    )
