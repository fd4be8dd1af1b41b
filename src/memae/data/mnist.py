"""MNIST in its original IDX files (``train-images-idx3-ubyte.gz`` etc.)."""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np

from memae.data.paths import data_dir, require
from memae.limits import memory_budget

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic ``0x0000TTDD``, D big-endian dims, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
                raise ValueError(f"{path} is not an IDX file: bad magic {head.hex()}")
            ndim = head[3]
            shape = fh.read(4 * ndim)
            if len(shape) < 4 * ndim:
                raise ValueError(
                    f"{path} is truncated: header needs {4 + 4 * ndim} bytes, got {4 + len(shape)}"
                )
            dims = tuple(int.from_bytes(shape[4 * i : 4 * i + 4], "big") for i in range(ndim))
            dtype = np.dtype(_DTYPES[head[2]])
            expected = math.prod(dims) * dtype.itemsize
            if expected > memory_budget():  # checked before inflating a byte of the data
                raise ValueError(
                    f"{path} declares dims {dims} ({expected:,} bytes), more than the "
                    f"{memory_budget():,} bytes one file may take in memory here"
                )
            raw = fh.read(expected + 1)  # one byte more reveals trailing data
    except (OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable IDX file: {err}") from err
    if len(raw) != expected:
        raise ValueError(f"{path} holds {len(raw)} data bytes, expected {expected} for dims {dims}")
    return np.frombuffer(raw, dtype=dtype).reshape(dims)


def load_mnist(root: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 MNIST digits (train then test) as (N, 1, 28, 28) float32 in [0, 1], and labels.

    The one-class protocol pools both official splits and re-splits each class 2:1.
    """
    folder = data_dir(root) / "mnist"
    arrays = {k: read_idx(require(folder / f, f"MNIST file {f}")) for k, f in FILES.items()}
    images = np.concatenate([arrays["train_images"], arrays["test_images"]])
    labels = np.concatenate([arrays["train_labels"], arrays["test_labels"]]).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"MNIST images and labels disagree: {len(images)} images, {len(labels)} labels")
    return (images[:, None].astype(np.float32) / 255.0), labels
