"""Safe, whole checkpoints: tensors in safetensors, everything else as JSON in its header.

Loading parses a JSON header and raw tensor bytes; nothing in the file is ever executed
or unpickled. Writes go to a temporary file in the same folder and are renamed into
place, so an interrupted save never leaves a file that loads. The header holds SHA-256
digests of the metadata and of every tensor's name, dtype, shape and bytes, so a flipped
byte anywhere in the file is refused on load rather than silently changing the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

FORMAT = "memae-checkpoint"
#: 2 added the metadata and tensor digests (version 1 files load unchecked).
FORMAT_VERSION = 2
_METADATA_DIGEST = "metadata_sha256"
_TENSORS_DIGEST = "tensors_sha256"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt, of another format or mismatched."""


def atomic_write(path: str | os.PathLike[str], write: Any) -> Path:
    """Call ``write(tmp_path)`` then rename the finished file to ``path`` (same folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> Path:
    """Write ``tensors`` and JSON-serialisable ``metadata`` to ``path`` atomically."""
    from memae import __version__

    flat = {name: t.detach().cpu().contiguous().clone() for name, t in tensors.items()}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "memae_version": __version__, **metadata}
    header = json.loads(json.dumps(header))
    header[_METADATA_DIGEST] = metadata_digest(header)
    header[_TENSORS_DIGEST] = tensors_digest(flat)
    return atomic_write(path, lambda tmp: save_file(flat, tmp, metadata={"memae": json.dumps(header)}))


def metadata_digest(metadata: dict[str, Any]) -> str:
    """SHA-256 of the metadata's canonical JSON, leaving out the digests themselves."""
    body = {k: v for k, v in metadata.items() if k not in (_METADATA_DIGEST, _TENSORS_DIGEST)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the sorted tensors' names, dtypes, shapes and raw bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without loading its tensors."""
    return _open(path, tensors=False)[1]


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors (on the CPU) and metadata of a checkpoint written by :func:`save_checkpoint`."""
    return _open(path, tensors=True)


def _open(path: str | os.PathLike[str], tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("memae")
            names = list(fh.keys()) if tensors else []
            loaded = {name: fh.get_tensor(name) for name in names}
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable memae checkpoint (expected a safetensors file): {err}"
        ) from err
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file without memae metadata")
    try:
        metadata = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} has corrupt memae metadata: {err}") from err
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path} has corrupt memae metadata: expected a JSON object")
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {metadata.get('format')!r}, expected {FORMAT!r}")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this memae reads versions up to "
            f"{FORMAT_VERSION} (upgrade memae to load it)"
        )
    if version >= 2 and not {_METADATA_DIGEST, _TENSORS_DIGEST} <= set(metadata):
        raise CheckpointError(f"{path} is corrupt: its metadata lack the digests its format version has")
    if version >= 2 and metadata_digest(metadata) != metadata[_METADATA_DIGEST]:
        raise CheckpointError(f"{path} is corrupt: its metadata do not match the digest written with it")
    if tensors and version >= 2 and tensors_digest(loaded) != metadata[_TENSORS_DIGEST]:
        raise CheckpointError(f"{path} is corrupt: its tensors do not match the digest written with it")
    return loaded, metadata
