"""Where memae writes: atomic writes, and one policy for output paths every command follows.

* :func:`atomic_write` writes to a temporary file beside the target and renames it into
  place, so an interrupted write leaves the previous file whole. It refuses to replace
  anything but a regular file (a device, a FIFO, a symbolic link, a folder), gives a new
  file the permissions the umask allows (an existing file keeps its own), and removes the
  temporary files that killed writers left behind.
* :func:`check_outputs` refuses an output path that is one of the command's inputs (the
  checkpoint, the data, the training state), before any work starts.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]


class OutputPathError(ValueError):
    """An output path that would replace an input or something that is not a regular file."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_writable_target(path: PathLike) -> os.stat_result | None:
    """The ``lstat`` of an existing regular file at ``path``, ``None`` if nothing is there;
    raises :class:`OutputPathError` for anything a rename must not replace."""
    path = Path(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise OutputPathError(
            f"refusing to write {path}: it is {_kind(info.st_mode)}; expected a regular file or a new path"
        )
    return info


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_orphans(folder: Path, name: str) -> None:
    """Delete ``.name.<pid>.*.tmp`` files whose writing process no longer runs."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\..*\.tmp$")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        Path(entry.path).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def atomic_write(path: PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` then rename the finished file to ``path`` (same folder).

    Refuses (:class:`OutputPathError`) when ``path`` is a device, FIFO, socket, folder or
    symbolic link. A new file gets ``0o666`` less the umask; a replaced file keeps its mode.
    """
    path = Path(path)
    existing = check_writable_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        mode = stat.S_IMODE(existing.st_mode) if existing is not None else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        check_writable_target(path)  # nothing of another kind appeared there meanwhile
        os.replace(tmp, path)
    except (ValueError, TypeError):  # what the content was refused for, already named
        Path(tmp).unlink(missing_ok=True)
        raise
    except Exception as err:  # a full disk, a serialiser's own error: name the file it hit
        Path(tmp).unlink(missing_ok=True)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OSError(f"could not write {path}: {reason}; the previous file, if any, is unchanged") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None]) -> None:
    """Refuse an output that is one of the inputs (same path, or the same file by another name).

    ``outputs`` and ``inputs`` map a role (``"--out"``, ``"the checkpoint"``) to a path or
    ``None``. Outputs are also checked against each other, and must be new paths or
    regular files (:func:`check_writable_target`).
    """
    given_in = [(role, Path(p)) for role, p in inputs.items() if p is not None]
    given_out = [(role, Path(p)) for role, p in outputs.items() if p is not None]
    for i, (out_role, out) in enumerate(given_out):
        others: Iterable[tuple[str, Path]] = [*given_in, *given_out[:i]]
        for in_role, source in others:
            if out.resolve() == source.resolve() or _same(out, source):
                raise OutputPathError(
                    f"{out_role} {out} is {in_role} ({source}); refusing to overwrite it: "
                    f"choose another {out_role} path"
                )
        try:
            check_writable_target(out)
        except OutputPathError as err:
            raise OutputPathError(f"{out_role}: {err}") from None


def check_output_folder(
    role: str, folder: PathLike | None, patterns: Iterable[str], inputs: Mapping[str, PathLike | None]
) -> None:
    """Refuse a folder output ``role`` when an input is a file the command would write
    there (a name matching one of ``patterns``, e.g. ``"*.png"``), or when it is a file."""
    if folder is None:
        return
    folder = Path(folder)
    patterns = list(patterns)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(
            f"{role} {folder} is a file; expected a folder to write {', '.join(patterns)} into"
        )
    for in_role, source in inputs.items():
        if source is None:
            continue
        source = Path(source)
        place = source.resolve()
        if place == folder.resolve():
            raise OutputPathError(
                f"{role} {folder} is {in_role}; refusing to write into it: choose another folder"
            )
        if place.parent == folder.resolve() and any(fnmatch.fnmatch(place.name, p) for p in patterns):
            raise OutputPathError(
                f"{role} {folder} would overwrite {in_role} ({source}) with its own {place.name}; "
                f"refusing: choose another {role} folder"
            )
