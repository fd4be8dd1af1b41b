"""CIFAR-10 in the official python layout (``cifar-10-batches-py``), read by a restricted
unpickler that admits only what the format needs (numpy arrays of bytes, dicts, lists), or
from the compact lossless copy (WebP sprite sheets and label files), decoded here.

Nothing found in a data folder is ever run: a ``rebuild.py`` shipped beside the compact
copy is ignored, and the copy is checked against its published SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from memae.data.paths import cache_dir, data_dir

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
FOLDER = "cifar-10-batches-py"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# The only globals a CIFAR-10 batch may reference: numpy's array reconstruction, and the
# codec call with which Python 3 pickles bytes at protocol 2.
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Refuses every global the CIFAR-10 format does not need."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the CIFAR-10 format")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def read_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> images (N, 3, 32, 32) uint8 and labels (N,)."""
    path = Path(path)
    try:
        raw = RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a CIFAR-10 batch: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path} is not a CIFAR-10 batch: expected a dict, got {type(raw).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 batch: keys {sorted(batch)} lack 'data' and 'labels'")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ValueError(
            f"{path}: expected uint8 data of shape (N, 3072) and N labels, "
            f"got {data.dtype} {data.shape} and {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels


#: The compact copy: per split, one lossless WebP sheet of 32x32 tiles (10 per row, row by
#: row) for each class, and one label byte per image in stored order; the k-th tile of class
#: c is the image at the k-th position labelled c. SHA-256 digests as published with it.
COMPACT_SPLITS = {"train": 50_000, "test": 10_000}
COMPACT_SHA256 = {
    "train_0_airplane.webp": "78e9257f3d450e595f8c8fe08edfd585fc59e224d23bcf3e5ee83bbd85b57f62",
    "train_1_automobile.webp": "7f6342769a652c4a773afa3f5a3fa32e6be7852cde7f2cb01b191143ad9ef026",
    "train_2_bird.webp": "9b36a8c849853a7a5994457c63fef8e3b10d2acc22dcc9b9512ef0d91787ba98",
    "train_3_cat.webp": "f24c74133e14be77d356e950c56cbed0f2926ad3713657d899bd2742057a5f4e",
    "train_4_deer.webp": "dae62dca56ebe320515b22322160b8a51b0ab529ab0d7dfc11ca68bd565ce886",
    "train_5_dog.webp": "75f28b5993ec46431efa363ccbde78efc813c6fb43abd6e2eb98051cc37e536e",
    "train_6_frog.webp": "193df67077c8a1b0e0a517b443533b97db5db85226c984a8fecd7177f553dbd7",
    "train_7_horse.webp": "0e640273af34dca74d567a3061385778fb426b6ff8e4fbbce7b89ae37c7d1e97",
    "train_8_ship.webp": "9f1c7f47ffc6c3cb51698eda9219fe6d785da67609aa077fd80cb6e409aea759",
    "train_9_truck.webp": "4a8bfa577a8fc2aef9ea67eba275aed132a3e34d8a8663ad5a4ce0e43c33b691",
    "test_0_airplane.webp": "578831a92e9fce7be069e00a01ce46cea5411501e95c57aa30442e248b4cce75",
    "test_1_automobile.webp": "e7d3eef3804f7cbc57eae08c308db8dc87671aed7b1a000d6f2578b8791258aa",
    "test_2_bird.webp": "24506cdb1fbeb15e7c9fc3533441f4b0def89337f4315edbcd48e557c2476ba0",
    "test_3_cat.webp": "c5f89d4c1efd601baade939fff30477e5a42e1caf62605dfd7e66cfee1b4c54e",
    "test_4_deer.webp": "797a2520c4eb1ad26699f6537ea7d7f2504d4eb4738dacefec38963d1a194304",
    "test_5_dog.webp": "ef5853e1fe7e8235376e020a10f781b7b91a519e4ae02f18ca3f86d060239f82",
    "test_6_frog.webp": "e951db43acc8d357bf429d605cdd5cb84de35c5e0af60d01c15b97f3a086dcbc",
    "test_7_horse.webp": "aebf8e11ae8054ce9e8223e5dc454d304230a19a30ca1360d0f81bc3fc532e24",
    "test_8_ship.webp": "2c749a497341bf411f045609b7ce91cc563efe49568b53129e226bdfe5c66b46",
    "test_9_truck.webp": "a42c53f71b459a3618d084d06266a5d8714ab62ebee40777f12c8ce39931171c",
    "train_labels.bin": "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
    "test_labels.bin": "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
}


def compact_files(split: str) -> list[str]:
    """The label file and the ten class sheets of one split of the compact copy."""
    return [f"{split}_labels.bin", *(f"{split}_{k}_{name}.webp" for k, name in enumerate(CLASSES))]


def has_compact(folder: str | os.PathLike[str]) -> bool:
    folder = Path(folder)
    return all((folder / f).is_file() for split in COMPACT_SPLITS for f in compact_files(split))


def read_compact(
    folder: str | os.PathLike[str], verify: bool = True, sizes: dict[str, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The compact copy in ``folder`` -> images (N, 3, 32, 32) uint8 (train, then test) and labels.

    ``verify`` checks every file against :data:`COMPACT_SHA256` before decoding it;
    ``sizes`` (images per split) defaults to :data:`COMPACT_SPLITS`.
    """
    folder = Path(folder)
    images, labels = [], []
    for split, n in (sizes or COMPACT_SPLITS).items():
        if verify:
            for name in compact_files(split):
                digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
                if digest != COMPACT_SHA256[name]:
                    raise ValueError(
                        f"{folder / name} does not match the published CIFAR-10 copy: sha256 {digest}, "
                        f"expected {COMPACT_SHA256[name]}; fetch it again"
                    )
        split_labels = np.frombuffer((folder / f"{split}_labels.bin").read_bytes(), dtype=np.uint8)
        if len(split_labels) != n or (split_labels.size and split_labels.max() >= len(CLASSES)):
            raise ValueError(
                f"{folder / f'{split}_labels.bin'}: expected {n} labels in 0..9, "
                f"got {len(split_labels)} with maximum {split_labels.max(initial=0)}"
            )
        split_images = np.zeros((n, 32, 32, 3), dtype=np.uint8)
        for k, name in enumerate(CLASSES):
            where = np.flatnonzero(split_labels == k)
            split_images[where] = _tiles(folder / f"{split}_{k}_{name}.webp", len(where))
        images.append(split_images.transpose(0, 3, 1, 2))
        labels.append(split_labels.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _tiles(path: Path, n: int) -> np.ndarray:
    """The first ``n`` 32x32 RGB tiles of a sheet 10 tiles wide, row by row."""
    from PIL import Image

    rows = -(-n // 10)
    with Image.open(path) as sheet:
        if sheet.size != (320, 32 * rows):  # checked before decoding a single pixel
            raise ValueError(f"{path}: expected a 320x{32 * rows} sheet for {n} images, got {sheet.size}")
        pixels = np.asarray(sheet.convert("RGB"))
    grid = pixels.reshape(rows, 32, 10, 32, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 32, 32, 3)
    return grid[:n]


def locate(root: str | os.PathLike[str] | None = None) -> Path:
    """The ``cifar-10-batches-py`` folder under the data root, else in the cache."""
    base = data_dir(root) / "cifar10"
    for candidate in (base / FOLDER, cache_dir() / "cifar10" / FOLDER):
        if all((candidate / b).is_file() for b in BATCHES):
            return candidate
    raise FileNotFoundError(
        f"CIFAR-10 not found: expected {base / FOLDER} or the compact copy (*.webp sheets and "
        f"label files) in {base}; set --data-dir or $MEMAE_DATA, or fetch it with `memae download cifar10`"
    )


def load_cifar10(root: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 60,000 images (train then test) as (N, 3, 32, 32) float32 in [0, 1], and labels,
    from the python batches or, where only it is present, the compact copy."""
    base = data_dir(root) / "cifar10"
    try:
        folder = locate(root)
    except FileNotFoundError:
        if not has_compact(base):
            raise
        images, labels = read_compact(base)
    else:
        parts = [read_batch(folder / b) for b in BATCHES]
        images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return images.astype(np.float32) / 255.0, labels
