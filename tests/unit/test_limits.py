"""Peak memory stays bounded when loading crafted files: each is refused with one clear
error under an address-space limit that would turn the allocation it asks for into a
MemoryError."""

import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from memae import MemAEDetector
from memae.checkpoint import load_checkpoint, metadata_digest, tensors_digest
from memae.limits import memory_budget

HEADROOM = 256 << 20  # address space the child may add to what torch and numpy already map

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import torch
    from memae import MemAEDetector
    from memae.io import load_array

    with open("/proc/self/status") as fh:
        used = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (used + int(sys.argv[1]), resource.RLIM_INFINITY))
    results = {}
    try:  # the limit bites: what the crafted files ask for could not be allocated
        np.ones(int(sys.argv[1]) // 8 * 2)
        results["limit"] = "no MemoryError"
    except MemoryError:
        results["limit"] = "MemoryError"
    for name, load in (
        ("npy", lambda p: load_array(p)),
        ("npz", lambda p: load_array(p)),
        ("checkpoint", lambda p: MemAEDetector.load(p)),
    ):
        try:
            load(sys.argv[2 + len(results) - 1])
            results[name] = "loaded"
        except BaseException as err:  # MemoryError must show here, not pass as a clear error
            results[name] = f"{type(err).__name__}: {err}"
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("crafted")
    header = _npy_header((1 << 40,))
    (folder / "huge.npy").write_bytes(header + b"\x00" * 144)  # declares 8 TiB
    inflated = (2 * HEADROOM) // 8
    archive = zipfile.ZipFile(folder / "bomb.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1)
    with archive, archive.open("x.npy", "w", force_zip64=True) as fh:
        fh.write(_npy_header((inflated,)))
        zeros = bytes(1 << 24)
        for _ in range(inflated * 8 // len(zeros)):
            fh.write(zeros)
    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    det = MemAEDetector(epochs=1, random_state=0, device="cpu").fit(X)
    tensors, meta = load_checkpoint(det.save(folder / "model.memae"))
    meta["model_config"]["memory_size"] = 400_000_000  # 3.2 GB of slots, digests recomputed
    meta["tensors_sha256"] = tensors_digest(tensors)
    meta["metadata_sha256"] = metadata_digest(meta)
    from safetensors.torch import save_file

    save_file(tensors, str(folder / "big.memae"), metadata={"memae": json.dumps(meta)})
    return [str(folder / n) for n in ("huge.npy", "bomb.npz", "big.memae")]


def _npy_header(shape: tuple[int, ...]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_crafted_files_are_refused_within_a_memory_limit(crafted: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(HEADROOM), *crafted],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["limit"] == "MemoryError"
    assert results["npy"].startswith("DataFileError: ") and "huge.npy declares an array" in results["npy"]
    assert (
        results["npz"].startswith("DataFileError: ") and "bomb.npz: array 'x' inflates to" in results["npz"]
    )
    assert results["checkpoint"].startswith("CheckpointError: ")
    assert "big.memae does not match its own config" in results["checkpoint"]


def test_the_budget_can_be_set_and_is_checked(monkeypatch) -> None:
    monkeypatch.setenv("MEMAE_MAX_LOAD_BYTES", "1e6")
    assert memory_budget() == 1_000_000
    for bad in ("lots", "-5", "inf"):
        monkeypatch.setenv("MEMAE_MAX_LOAD_BYTES", bad)
        with pytest.raises(ValueError, match="MEMAE_MAX_LOAD_BYTES must be a"):
            memory_budget()
    monkeypatch.delenv("MEMAE_MAX_LOAD_BYTES")
    assert 0 < memory_budget() < 1 << 62


def test_an_idx_file_declaring_more_than_the_budget_is_refused_before_inflating(
    tmp_path, monkeypatch
) -> None:
    import gzip
    import struct

    from memae.data.mnist import read_idx

    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:  # declares 60000 x 28 x 28 bytes and inflates to 8 MiB of zeros
        fh.write(struct.pack(">BBBBIII", 0, 0, 0x08, 3, 60000, 28, 28) + bytes(8 << 20))
    monkeypatch.setenv("MEMAE_MAX_LOAD_BYTES", str(1 << 20))
    with pytest.raises(
        ValueError, match=r"bomb-idx3-ubyte\.gz declares dims \(60000, 28, 28\) \(47,040,000 bytes\)"
    ):
        read_idx(path)
    monkeypatch.setenv("MEMAE_MAX_LOAD_BYTES", str(1 << 30))
    with pytest.raises(ValueError, match=r"holds 8388608 data bytes, expected 47040000"):
        read_idx(path)
