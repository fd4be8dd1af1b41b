"""How much memory a file may make memae allocate: checked before loading, not after.

A crafted file can declare far more than it holds (a 144-byte ``.npy`` declaring 7 TiB) or
inflate far beyond its size (a 14 MB ``.npz`` of zeros inflating to 3 GB). Loaders compare
what a file declares with what it holds and with :func:`memory_budget` before allocating.
"""

from __future__ import annotations

import os
import resource

#: Set to a number of bytes to cap what one loaded file may take (default: half the memory
#: this process may still use).
ENV = "MEMAE_MAX_LOAD_BYTES"


def _available_physical() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def _address_space_left() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return 1 << 62
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            used = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    except (OSError, ValueError, StopIteration):
        used = 0
    return max(soft - used, 0)


def memory_budget() -> int:
    """Bytes one loaded file may occupy: ``$MEMAE_MAX_LOAD_BYTES`` if set, else half of the
    memory still available (physical, and under an address-space limit if one is set)."""
    configured = os.environ.get(ENV)
    if configured:
        try:
            value = int(float(configured))
        except (ValueError, OverflowError) as err:
            raise ValueError(f"${ENV} must be a number of bytes, got {configured!r}") from err
        if value < 1:
            raise ValueError(f"${ENV} must be a positive number of bytes, got {configured!r}")
        return value
    return min(_available_physical(), _address_space_left()) // 2
