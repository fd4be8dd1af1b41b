"""CIFAR-10 in the official python layout (``cifar-10-batches-py``), read by a restricted
unpickler that admits only what the format needs (numpy arrays of bytes, dicts, lists)."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
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


def locate(root: str | os.PathLike[str] | None = None, rebuild: bool = True) -> Path:
    """The ``cifar-10-batches-py`` folder: under the data root, else in the cache; when only
    the compact copy with its ``rebuild.py`` exists, rebuild the batches into the cache."""
    base = data_dir(root) / "cifar10"
    for candidate in (base / FOLDER, cache_dir() / "cifar10" / FOLDER):
        if all((candidate / b).is_file() for b in BATCHES):
            return candidate
    script = base / "rebuild.py"
    if rebuild and script.is_file():
        target = cache_dir() / "cifar10"
        target.mkdir(parents=True, exist_ok=True)
        print(f"rebuilding CIFAR-10 batches into {target} with {script}", file=sys.stderr)
        subprocess.run([sys.executable, str(script), str(target), "--src", str(base)], check=True)
        return target / FOLDER
    raise FileNotFoundError(
        f"CIFAR-10 not found: expected {base / FOLDER} (or a compact copy with rebuild.py); "
        f"set --data-dir or $MEMAE_DATA, or fetch it with `memae download cifar10`"
    )


def load_cifar10(root: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 60,000 images (train then test) as (N, 3, 32, 32) float32 in [0, 1], and labels."""
    folder = locate(root)
    parts = [read_batch(folder / b) for b in BATCHES]
    images = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    return images, np.concatenate([p[1] for p in parts])
