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
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from memae.limits import memory_budget
from memae.paths import atomic_write

FORMAT = "memae-checkpoint"
#: 2 added the metadata and tensor digests. Version 1 files carried none, so nothing can tell
#: a genuine one from a tampered version 2 file relabelled as 1: they are refused.
FORMAT_VERSION = 2
_OLDEST_VERSION = 2
_METADATA_DIGEST = "metadata_sha256"
_TENSORS_DIGEST = "tensors_sha256"
#: JSON metadata nested deeper than this is refused before anything walks it recursively.
MAX_JSON_DEPTH = 32


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt, of another format or mismatched."""


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
        if tensor.numel():  # an empty tensor has no bytes (and torch cannot view it as bytes)
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
    size = path.stat().st_size
    if tensors and size > memory_budget():
        raise CheckpointError(
            f"{path} holds {size:,} bytes, more than the {memory_budget():,} bytes of memory this "
            "process may use; load it on a machine with more memory"
        )
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
    metadata = parse_json(raw, f"{path}'s memae metadata", CheckpointError)
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"{path} has corrupt memae metadata: expected a JSON object, got {type(metadata).__name__}"
        )
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {metadata.get('format')!r}, expected {FORMAT!r}")
    _check_version(path, metadata.get("format_version"))
    if not {_METADATA_DIGEST, _TENSORS_DIGEST} <= set(metadata):
        raise CheckpointError(f"{path} is corrupt: its metadata lack the digests its format version has")
    if metadata_digest(metadata) != metadata[_METADATA_DIGEST]:
        raise CheckpointError(f"{path} is corrupt: its metadata do not match the digest written with it")
    if tensors and tensors_digest(loaded) != metadata[_TENSORS_DIGEST]:
        raise CheckpointError(f"{path} is corrupt: its tensors do not match the digest written with it")
    return loaded, metadata


def _check_version(path: Path, version: Any) -> None:
    # bool is an int in Python: `true` must not pass for version 1
    if type(version) is not int:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r} ({type(version).__name__}); "
            f"expected an integer from {_OLDEST_VERSION} to {FORMAT_VERSION}"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this memae reads versions up to "
            f"{FORMAT_VERSION} (upgrade memae to load it)"
        )
    if version < _OLDEST_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, which carries no digests, so memae cannot "
            f"tell it from a tampered file; expected version {_OLDEST_VERSION} to {FORMAT_VERSION}: "
            "train the model again with this memae"
        )


def parse_json(text: str | bytes, what: str, error: type[ValueError] = ValueError) -> Any:
    """``json.loads`` that names ``what`` on failure and refuses nesting deeper than
    :data:`MAX_JSON_DEPTH` (which would otherwise end in a ``RecursionError``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{what} is not valid JSON: {err}") from err
    except RecursionError as err:
        raise error(f"{what} is nested too deeply; expected at most {MAX_JSON_DEPTH} levels") from err
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise error(f"{what} is nested {depth}+ levels deep; expected at most {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


T = TypeVar("T")

#: The most numbers one sample may declare (a (1, 16, 2048, 2048) clip): a checkpoint's
#: ``input_shape`` beyond it is refused before synthetic samples or buffers are made for it.
MAX_SAMPLE_ELEMENTS = 1 << 26


def build_checked(
    path: str | os.PathLike[str],
    build: Callable[[], tuple[torch.nn.Module, T]],
    tensors: dict[str, torch.Tensor],
    input_shape: Any,
    prefix: str = "model.",
) -> tuple[torch.nn.Module, T]:
    """Build the network a checkpoint's config declares, once on the ``meta`` device (no
    memory) to compare every parameter's shape with the file's tensors, then for real.

    A config that declares more than the file holds (``memory_size = 4e8`` beside a 25 KB
    file) is refused before anything is allocated for it.
    """
    shape = tuple(input_shape) if isinstance(input_shape, list | tuple) else ()
    if shape and all(type(s) is int for s in shape):
        elements = math.prod(shape)
        if elements > MAX_SAMPLE_ELEMENTS:
            raise CheckpointError(
                f"{path} declares input_shape {list(shape)} ({elements:,} numbers per sample); "
                f"expected at most {MAX_SAMPLE_ELEMENTS:,}"
            )
    with torch.device("meta"):
        skeleton = build()[0]
    expected = {prefix + k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    held = {k: tuple(v.shape) for k, v in tensors.items() if k.startswith(prefix)}
    for name in sorted(expected.keys() | held.keys()):
        if expected.get(name) != held.get(name):
            want = "no such tensor" if name not in expected else f"shape {list(expected[name])}"
            got = "none" if name not in held else f"shape {list(held[name])}"
            raise CheckpointError(
                f"{path} does not match its own config: the config declares {name} with {want}, "
                f"the file holds {got}"
            )
    return build()
