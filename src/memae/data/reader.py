"""The one entrance for users' data: a path (file or folder) or an object in, a :class:`Dataset` out.

:func:`read_data` recognises what it was given and hands it to the module for that kind:
tables (``.csv``, ``.tsv``, ``.parquet``, pandas DataFrames: :mod:`memae.data.tables`),
image files and folders (:mod:`memae.data.images`) and arrays (``.npy``, ``.npz``, numpy
arrays, torch tensors: :mod:`memae.io`). The CLI's ``--data``, the detector, the report and
``inspect`` all read through it; none opens files on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Kind = Literal["table", "images", "array"]


@dataclass(frozen=True)
class TableOptions:
    """How to read a table: which column names the rows, which holds the labels, which to drop.

    ``index_column``: a column of row identifiers (kept for the score file, never a feature);
    ``None`` recognises the unnamed first column pandas writes with ``to_csv()``.
    ``label_column``: 0 (normal) / 1 (anomaly) per row, or any values with ``normal_labels``
    naming the ones that mean normal. ``header``: ``None`` detects it (a first row of numbers
    is data, never silently a header), ``True``/``False`` force it. ``delimiter``: ``None``
    sniffs ``,``, ``;``, tab or ``|``.
    """

    index_column: str | None = None
    label_column: str | None = None
    drop_columns: tuple[str, ...] = ()
    normal_labels: tuple[str, ...] = ()
    header: bool | None = None
    delimiter: str | None = None


@dataclass(frozen=True)
class ImageOptions:
    """How to read image files: the size and channels every image is brought to (``None``: those
    of the first image), unreadable files skipped and listed instead of an error, and the
    largest image accepted in pixels (decompression bombs are refused before decoding)."""

    image_size: tuple[int, int] | None = None
    channels: int | None = None
    skip_unreadable: bool = False
    max_pixels: int = 50_000_000


@dataclass(frozen=True)
class Dataset:
    """What :func:`read_data` read.

    ``X``: a pandas DataFrame for tables, a numpy array otherwise ((N, C, H, W) images keep
    their integer pixel type so the detector scales them as it was trained).
    ``ids``: one name per sample (a table's index column, an image's path relative to the
    folder), else ``None``. ``labels``: 0 normal / 1 anomaly per sample when the data say
    so (a label column, the MVTec AD ``good`` folder), else ``None``. ``groups``: the label's
    name per sample (a defect type, a label value). ``masks``: per-pixel ground truth for
    images where the layout has it, else ``None``. ``skipped``: unreadable files left out.
    """

    X: Any
    kind: Kind
    source: str
    ids: tuple[str, ...] | None = None
    labels: np.ndarray | None = None
    groups: tuple[str, ...] | None = None
    masks: np.ndarray | None = None
    skipped: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.X)


def read_data(
    source: Any,
    *,
    key: str | None = None,
    table: TableOptions | None = None,
    images: ImageOptions | None = None,
) -> Dataset:
    """Read ``source`` — a path to a file or folder, a pandas DataFrame, a numpy array or a
    torch tensor — into a :class:`Dataset`. ``key`` names the array inside an ``.npz`` file.

    Raises ``FileNotFoundError`` for a path that does not exist and ``ValueError`` (a
    :class:`memae.io.DataFileError` for files) naming the file and what was wrong.
    """
    table = table or TableOptions()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            from memae.data import images as image_module

            return image_module.read_images(path, images or ImageOptions())
        if not path.exists():
            raise FileNotFoundError(f"no data file or folder at {path}")
        from memae.data import images as image_module

        if path.suffix.lower() in image_module.SUFFIXES:
            return image_module.read_images(path, images or ImageOptions())
        from memae.data import tables

        suffix = path.suffix.lower()
        if suffix in tables.SUFFIXES or tables.is_compressed_text(path):
            return tables.read_table(path, table)
        from memae.io import SUFFIXES as ARRAY_SUFFIXES
        from memae.io import DataFileError, load_array

        if suffix in ARRAY_SUFFIXES:
            return Dataset(load_array(path, key), "array", str(path))
        known = sorted({*tables.SUFFIXES, *ARRAY_SUFFIXES, *image_module.SUFFIXES})
        raise DataFileError(
            f"unsupported data file {path.name!r}: expected a folder of images or one of {', '.join(known)}"
        )
    from memae.data import tables

    if tables.is_frame(source):
        return tables.from_frame(source, table, "DataFrame")
    if hasattr(source, "detach") and hasattr(source, "cpu"):  # a torch tensor, without importing torch
        source = source.detach().cpu().numpy()
    return Dataset(source, "array", type(source).__name__)
