"""Reading users' arrays (.npy, .npz, .csv) and settings (YAML) with clear errors."""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml

SUFFIXES = (".npy", ".npz", ".csv")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with floats as YAML 1.2 writes them: PyYAML follows YAML 1.1,
    which needs a dot, so ``lr: 3e-4`` would come back as the string ``"3e-4"``."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML safely (no Python objects), reading ``3e-4`` and ``1E5`` as floats."""
    return yaml.load(text, Loader=_Loader)


class DataFileError(ValueError):
    """A data file that cannot be read as an array; the message names the file."""


def load_array(path: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """Load an array from ``.npy``, ``.npz`` (``key``, else its only array) or numeric ``.csv``.

    Pickled object arrays are refused (``allow_pickle=False``). A truncated, corrupt or
    mislabelled file raises :class:`DataFileError` (a ``ValueError``) naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataFileError(f"unsupported data file {path.name!r}: expected one of {', '.join(SUFFIXES)}")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".csv":
            return _load_csv(path)
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.keys())
            if key is None:
                if len(names) != 1:
                    raise DataFileError(f"{path} holds arrays {names}; name one with --key")
                key = names[0]
            if key not in names:
                raise DataFileError(f"{path} has no array {key!r}; it holds {names}")
            return archive[key]
    except DataFileError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as err:
        # numpy suggests allow_pickle=True for anything it cannot parse; memae never does that
        reason = "it holds pickled (object) data or is not an array file" if "pickle" in str(err) else err
        raise DataFileError(f"{path} is not a readable {suffix} file: {reason}") from err


def _load_csv(path: Path) -> np.ndarray:
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except UnicodeDecodeError as err:
        raise DataFileError(f"{path} is not a text .csv file: {err}") from err
    cells = [c.strip() for c in first.split(",")]
    header = any(c and not _is_number(c) for c in cells)
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1 if header else 0, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise DataFileError(f"{path} must hold numbers only (after an optional header row): {err}") from err
    return data


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
