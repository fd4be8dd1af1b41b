"""Reading users' arrays (.npy, .npz, .csv) and settings (YAML) with clear errors."""

from __future__ import annotations

import math
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.lib.format as npformat
import yaml

from memae.limits import ENV as LIMIT_ENV
from memae.limits import memory_budget

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


class SettingsError(ValueError):
    """A settings file or value that is not the YAML expected; the message names where."""


#: Settings files beyond this size are refused before parsing (they hold a few dozen keys).
MAX_SETTINGS_BYTES = 1 << 20


def parse_settings(text: str, where: str) -> Any:
    """:func:`load_yaml` whose errors name ``where`` (a file, or a flag) and the line."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SettingsError(f"{where} is not valid YAML{at}: {problem}") from err
    except RecursionError as err:
        raise SettingsError(f"{where} is nested too deeply to be settings") from err


def load_settings(path: str | os.PathLike[str], what: str = "config file") -> dict[str, Any]:
    """The mapping in a YAML settings file; every failure names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    size = path.stat().st_size
    if size > MAX_SETTINGS_BYTES:
        raise SettingsError(
            f"{path} holds {size:,} bytes; expected a {what} of at most {MAX_SETTINGS_BYTES:,}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SettingsError(f"{path} is not a UTF-8 text {what}: {err}") from err
    loaded = parse_settings(text, str(path))
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"{path} must be a YAML mapping of settings, got {type(loaded).__name__}")
    return loaded


class DataFileError(ValueError):
    """A data file that cannot be read as an array; the message names the file."""


def load_array(path: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """Load an array from ``.npy``, ``.npz`` (``key``, else its only array) or numeric ``.csv``.

    Pickled object arrays are refused (never unpickled). A truncated, corrupt or mislabelled
    file raises :class:`DataFileError` (a ``ValueError``) naming the file, and so does one
    that declares more than it holds or more than :func:`memae.limits.memory_budget` (the
    header is read, and an ``.npz`` member's inflated size checked, before allocating).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataFileError(f"unsupported data file {path.name!r}: expected one of {', '.join(SUFFIXES)}")
    try:
        if suffix == ".npy":
            with open(path, "rb") as fh:
                return _read_npy(fh, path.stat().st_size, str(path))
        if suffix == ".csv":
            return _load_csv(path)
        return _load_npz(path, key)
    except DataFileError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as err:
        # numpy suggests allow_pickle=True for anything it cannot parse; memae never does that
        foreign = "pickle" in str(err) or "magic" in str(err)
        reason = "it holds pickled (object) data or is not an array file" if foreign else err
        raise DataFileError(f"{path} is not a readable {suffix} file: {reason}") from err


def _read_npy(fh: BinaryIO, size: int, where: str) -> np.ndarray:
    """Read one ``.npy`` stream of ``size`` bytes after checking what its header declares
    against those bytes and :func:`memae.limits.memory_budget`, before allocating."""
    version = npformat.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = npformat.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = npformat.read_array_header_2_0(fh)
    else:
        raise DataFileError(f"{where} has .npy format version {version}; expected 1.0 or 2.0")
    if dtype.hasobject:
        raise DataFileError(f"{where} is not a readable array file: it holds pickled (object) data")
    declared = math.prod(shape) * dtype.itemsize
    held = size - fh.tell()
    if declared > held:
        raise DataFileError(
            f"{where} declares an array of shape {shape} and dtype {dtype} ({declared:,} bytes) "
            f"but holds only {held:,} bytes after its header"
        )
    budget = memory_budget()
    if declared > budget:
        raise DataFileError(
            f"{where} holds an array of shape {shape} ({declared:,} bytes), more than the {budget:,} "
            f"bytes one file may take in memory here (set ${LIMIT_ENV} to change it)"
        )
    buffer = np.empty(declared, dtype=np.uint8)
    view, done = memoryview(buffer), 0
    while done < declared:
        got = fh.readinto(view[done : done + (1 << 24)])
        if not got:
            raise DataFileError(
                f"{where} is truncated: expected {declared:,} bytes of array data, got {done:,}"
            )
        done += got
    data = buffer.view(dtype)
    return data.reshape(shape[::-1]).T if fortran else data.reshape(shape)


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    with zipfile.ZipFile(path) as archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        names = list(members)
        if key is None:
            if len(names) != 1:
                raise DataFileError(f"{path} holds arrays {names}; name one with --key")
            key = names[0]
        if key not in members:
            raise DataFileError(f"{path} has no array {key!r}; it holds {names}")
        info = members[key]
        budget = memory_budget()
        if info.file_size > budget:
            raise DataFileError(
                f"{path}: array {key!r} inflates to {info.file_size:,} bytes ({info.compress_size:,} "
                f"compressed), more than the {budget:,} bytes one file may take in memory here "
                f"(set ${LIMIT_ENV} to change it)"
            )
        with archive.open(info) as fh:
            return _read_npy(fh, info.file_size, f"{path} (array {key!r})")


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
