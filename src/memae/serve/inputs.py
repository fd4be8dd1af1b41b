"""Request bodies as detector input: JSON samples, or uploaded files read by :func:`memae.data.read_data`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memae.detector import MemAEDetector
from memae.serve.config import Limits


class RequestError(Exception):
    """A request the server refuses: an HTTP status, a message and, for a limit, its name."""

    def __init__(self, status: int, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.limit = status, message, limit


def limit_error(limit: str, allowed: int, got: int, what: str) -> RequestError:
    return RequestError(413, f"{what}: got {got}, at most {allowed} allowed ({limit})", limit)


@dataclass(frozen=True)
class Samples:
    """What a request asks to score: the detector's input ``X``, each sample's name (or
    ``None``) and, once :func:`prepared`, ``data``: ``X`` checked and prepared up to the
    step done once per batch (:func:`batch_join`)."""

    X: Any
    ids: tuple[str, ...] | None
    kind: str
    data: np.ndarray | torch.Tensor | None = None


def prepared(detector: MemAEDetector, samples: Samples) -> Samples:
    """``samples`` with ``data``, prepared as ``decision_function`` prepares its input: a
    table's rows encoded (one-hot, numbers; the scaling is :func:`batch_join`'s), images
    through the detector's checks and scaling. Input the detector refuses is a 400 with its
    message."""
    if samples.data is not None:
        return samples
    try:
        if detector.table_ is not None:
            data: np.ndarray | torch.Tensor = detector.table_.encode(samples.X)
        else:
            data = detector._validated(samples.X)
    except (ValueError, TypeError) as err:
        raise RequestError(400, str(err)) from err
    return dataclasses.replace(samples, data=data)


def batch_join(detector: MemAEDetector) -> Callable[[Sequence[Any]], torch.Tensor]:
    """How the :func:`prepared` samples of a batch's requests become the model's input: a
    table model's encoded rows concatenated and scaled in one call (the detector's
    ``_transform``, row by row the same numbers), images concatenated."""
    if detector.table_ is not None:
        return lambda parts: detector._transform(parts[0] if len(parts) == 1 else np.concatenate(parts))
    return lambda parts: parts[0] if len(parts) == 1 else torch.cat(list(parts))


def read_json(detector: MemAEDetector, body: bytes, limits: Limits) -> tuple[Samples, bool]:
    """A JSON body ``{"data": [...], "maps": false}``: its samples (:func:`json_samples`) and
    whether it asks for anomaly maps."""
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(400, f"the body is not valid JSON: {err}") from err
    if not isinstance(parsed, dict) or "data" not in parsed:
        raise RequestError(400, f'expected a JSON object {{"data": [...]}}, got {_describe(parsed)}')
    return json_samples(detector, parsed["data"], limits), bool(parsed.get("maps", False))


def is_image_model(detector: MemAEDetector) -> bool:
    return detector.table_ is None and len(detector.input_shape_) == 3


def json_samples(detector: MemAEDetector, data: Any, limits: Limits) -> Samples:
    """``{"data": [...]}``'s list as detector input: rows (lists, or objects keyed by column
    name) for table models; nested lists (N, C, H, W) — or (N, H, W) for one channel — for
    image models, integers being pixels of the type the model was trained on (0..255 for
    ``uint8``), floats in the training units.

    Images, and table rows of plain values (:meth:`~memae.preprocessing.TableEncoder.encode_rows`),
    come back :func:`prepared`; other rows come back as a DataFrame for :func:`prepared`.
    """
    if not isinstance(data, list) or not data:
        raise RequestError(400, f"'data' must be a non-empty list of samples, got {_describe(data)}")
    if len(data) > limits.max_samples:
        raise limit_error("max_samples", limits.max_samples, len(data), "samples in the request")
    if detector.table_ is not None:
        encoded = detector.table_.encode_rows(data)
        if encoded is not None:
            return Samples(data, None, "table", encoded)
        return Samples(_table_rows(detector, data), None, "table")
    try:
        array = np.asarray(data)
    except ValueError as err:
        raise RequestError(400, f"'data' must be a rectangular nested list: {err}") from err
    if array.dtype.kind not in "iuf" or array.ndim < 2:
        raise RequestError(
            400,
            f"expected samples of shape (N, {', '.join(map(str, detector.input_shape_))}) as nested lists "
            f"of numbers, got an array of shape {array.shape} and type {array.dtype}",
        )
    if len(detector.input_shape_) >= 3:
        if array.ndim == len(detector.input_shape_) and detector.input_shape_[0] == 1:
            array = array[:, None]  # one channel given without its axis
        pixels = int(array.shape[-2]) * int(array.shape[-1])
        if pixels > limits.max_pixels:
            raise limit_error("max_pixels", limits.max_pixels, pixels, "pixels per image")
        if array.dtype.kind in "iu":
            array = _as_pixels(array, getattr(detector, "pixel_dtype_", None))
    samples = Samples(array if array.dtype.kind in "iu" else array.astype(np.float32), None, "array")
    return prepared(detector, samples)


def _table_rows(detector: MemAEDetector, rows: list[Any]) -> Any:
    import pandas as pd

    if all(isinstance(row, dict) for row in rows):
        if not detector.table_.named_:
            raise RequestError(
                400, "the model was trained on unnamed columns: send each row as a list of values"
            )
        return pd.DataFrame.from_records(rows)
    if all(isinstance(row, list) for row in rows):
        widths = sorted({len(row) for row in rows})
        if len(widths) > 1:
            raise RequestError(400, f"every row must have the same length, got lengths {widths}")
        return np.asarray(rows, dtype=object if _any_text(rows) else np.float64)
    raise RequestError(400, "rows must all be lists of values or all objects keyed by column name")


def _any_text(rows: list[list[Any]]) -> bool:
    return any(isinstance(value, str) for row in rows for value in row)


def _as_pixels(array: np.ndarray, pixel_dtype: str | None) -> np.ndarray:
    """Integer pixel values in the type the model was trained on (floats for a float-trained model)."""
    if pixel_dtype is None:
        return array.astype(np.float32)
    top = np.iinfo(pixel_dtype).max
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > top:
        raise RequestError(
            400, f"integer pixels must lie in 0..{top} ({pixel_dtype}, as in training), got {low}..{high}"
        )
    return array.astype(pixel_dtype)


def upload_samples(
    detector: MemAEDetector, files: Sequence[tuple[str, bytes]], limits: Limits, folder: str | Path
) -> Samples:
    """Uploaded ``(file name, content)`` pairs written under ``folder`` and read by
    :func:`memae.data.read_data`: one table (CSV, Parquet) or image files, brought to the
    model's image size and channels."""
    from memae.data import ImageOptions, read_data
    from memae.data.images import SUFFIXES as IMAGE_SUFFIXES
    from memae.data.images import ImageTooLargeError

    if not files:
        raise RequestError(400, "the upload has no file in field 'file'")
    if len(files) > limits.max_files:
        raise limit_error("max_files", limits.max_files, len(files), "files in the upload")
    folder = Path(folder)
    paths = []
    for i, (name, content) in enumerate(files):
        path = folder / f"{i:04d}-{safe_name(name)}"
        path.write_bytes(content)
        paths.append(path)
    images = ImageOptions(max_pixels=limits.max_pixels)
    if is_image_model(detector):
        channels, height, width = detector.input_shape_
        images = ImageOptions(image_size=(height, width), channels=channels, max_pixels=limits.max_pixels)
    if len(paths) > 1 and any(p.suffix.lower() not in IMAGE_SUFFIXES for p in paths):
        raise RequestError(400, "several files in one upload must all be images; send one table at a time")
    try:
        dataset = read_data(paths[0] if len(paths) == 1 else folder, images=images)
    except ImageTooLargeError as err:
        raise RequestError(413, _without_folder(str(err), folder), "max_pixels") from err
    except (ValueError, OSError) as err:
        raise RequestError(400, _without_folder(str(err), folder)) from err
    if len(dataset) > limits.max_samples:
        raise limit_error("max_samples", limits.max_samples, len(dataset), "samples in the upload")
    ids = tuple(i.split("-", 1)[1] for i in dataset.ids) if dataset.kind == "images" else dataset.ids
    return Samples(dataset.X, ids, dataset.kind)


def safe_name(name: str) -> str:
    """The last part of an uploaded file name, of plain characters (its suffix says its kind)."""
    base = Path(name.replace("\\", "/")).name
    kept = "".join(c if c.isalnum() or c in "._-" else "_" for c in base).lstrip(".")
    return kept or "upload"


def _without_folder(message: str, folder: Path) -> str:
    """An error message that names the uploaded file, not the server's temporary folder."""
    return message.replace(f"{folder}/", "").replace(str(folder), "upload")


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if isinstance(value, dict):
        return f"an object with keys {sorted(map(str, value))[:8]}"
    return f"a JSON {_JSON_TYPES.get(type(value), type(value).__name__)}"


_JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}

__all__ = ["RequestError", "Samples", "batch_join", "json_samples", "prepared", "read_json", "upload_samples"]
