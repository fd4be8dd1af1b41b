"""Where a number came from: library version, commit, machine and time."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


@functools.cache
def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """The commit of the checkout holding ``path`` (``+dirty`` when it has changes), or None.

    Read once per process, so a long job's records name the code it started with.
    """
    cwd = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def machine() -> dict[str, Any]:
    """A description of this machine and of the torch build."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def provenance() -> dict[str, Any]:
    """Version, commit, machine and UTC time, for every record the project writes."""
    from memae import __version__

    return {
        "memae_version": __version__,
        "commit": git_commit(),
        "machine": machine(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
