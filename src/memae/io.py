"""Reading users' arrays from disk (.npy, .npz, .csv) with clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SUFFIXES = (".npy", ".npz", ".csv")


def load_array(path: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """Load an array from ``.npy``, ``.npz`` (``key``, else its only array) or numeric ``.csv``.

    Pickled object arrays are refused (``allow_pickle=False``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.keys())
                if key is None:
                    if len(names) != 1:
                        raise ValueError(f"{path} holds arrays {names}; name one with --key")
                    key = names[0]
                if key not in names:
                    raise ValueError(f"{path} has no array {key!r}; it holds {names}")
                return archive[key]
        if suffix == ".csv":
            return _load_csv(path)
    except (OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable {suffix} file: {err}") from err
    raise ValueError(f"unsupported data file {path.name!r}: expected one of {', '.join(SUFFIXES)}")


def _load_csv(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    cells = [c.strip() for c in first.split(",")]
    header = any(c and not _is_number(c) for c in cells)
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1 if header else 0, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{path} must hold numbers only (after an optional header row): {err}") from err
    return data


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
