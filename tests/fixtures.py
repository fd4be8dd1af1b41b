"""Tiny datasets written in their official on-disk formats."""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import struct
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from memae.data.mnist import FILES as MNIST_FILES


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` imported as a module (the folder is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, per_class: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-format IDX files whose digits are class-dependent blobs; returns train images/labels."""
    rng = np.random.default_rng(seed)
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", per_class), ("test", max(1, per_class // 3))):
        labels = np.repeat(np.arange(10), n).astype(np.uint8)
        images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):  # a bright bar whose position encodes the class
            images[i, 2 + 2 * label : 5 + 2 * label, 4:24] = 250
        write_idx(folder / MNIST_FILES[f"{split}_images"], images)
        write_idx(folder / MNIST_FILES[f"{split}_labels"], labels)
        out[split] = (images, labels)
    return out["train"]


def write_cifar10(root: Path, per_batch: int = 20, seed: int = 0) -> None:
    """``cifar10/cifar-10-batches-py`` with tiny batches pickled like the official ones."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = [int(v) for v in np.arange(per_batch) % 10]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


KDD_NAMES = """back,normal,smurf.\r
duration: continuous.\r
protocol_type: symbolic.\r
service: symbolic.\r
flag: symbolic.\r
src_bytes: continuous.\r
land: symbolic.\r
"""


def write_kddcup(root: Path, n: int = 200, seed: int = 0) -> np.ndarray:
    """A KDDCUP-format gzip with 5 features + label (20 % ``normal.``), and its names file."""
    rng = np.random.default_rng(seed)
    folder = root / "kddcup99"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kddcup.names").write_bytes(KDD_NAMES.encode())
    labels = np.where(np.arange(n) % 5 == 0, "normal.", np.where(np.arange(n) % 2 == 0, "smurf.", "back."))
    lines = []
    for label in labels:
        anomalous = label == "normal."
        duration = rng.normal(5.0 if anomalous else 0.0, 1.0)
        proto = rng.choice(["tcp", "udp"]) if anomalous else "icmp"
        service = rng.choice(["http", "smtp", "ftp"])
        lines.append(f"{duration:.3f},{proto},{service},SF,{rng.integers(0, 1000)},{int(anomalous)},{label}")
    with gzip.open(folder / "kddcup.data_10_percent.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return labels
