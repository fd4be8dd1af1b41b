"""Where datasets live: one setting, ``--data-dir``, else ``$MEMAE_DATA``, else a user cache."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MEMAE_DATA"
CACHE_ENV_VAR = "MEMAE_CACHE"


def data_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """The data root: the option if given, else ``$MEMAE_DATA``, else ``~/.cache/memae/data``.

    Datasets sit under it in their official layouts (``mnist/``, ``kddcup99/``,
    ``cifar10/``, ``ucsd_ped2/``, ...).
    """
    if option is not None:
        return Path(option).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "memae" / "data"


def cache_dir() -> Path:
    """A writable folder for derived files (e.g. rebuilt CIFAR-10 batches): ``$MEMAE_CACHE``
    or ``~/.cache/memae``."""
    root = os.environ.get(CACHE_ENV_VAR)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "memae"


def require(path: Path, what: str) -> Path:
    """Raise a clear error naming the setting when a dataset file is missing."""
    if not path.exists():
        raise FileNotFoundError(
            f"{what} not found at {path}; set --data-dir or ${ENV_VAR} to the folder that holds it, "
            f"or fetch it with `memae download`"
        )
    return path
