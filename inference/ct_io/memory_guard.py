"""Refuse a volume that cannot fit in memory, before a single voxel is allocated.

The loaders call :func:`check_fits` with the byte count they are about to allocate (header
dimensions x 2 bytes for the int16 HU volume), so an over-large or corrupt header gives a clear
error instead of a MemoryError half-way through, or the machine swapping to a halt.

Available memory is ``MemAvailable`` from /proc/meminfo (Linux), capped by a cgroup v2 memory limit
when one is set (containers), else ``os.sysconf`` free physical pages. Tests and callers inject a
limit with ``limit_bytes`` instead of depending on the machine.
"""
from __future__ import annotations

import os
from pathlib import Path

from inference.errors import InputError

# Room left for the loader's own slice/chunk buffers and the rest of the program.
HEADROOM_BYTES = 64 * 2**20


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """Bytes left under a cgroup v2 memory limit, or None when unlimited / not in a cgroup."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def _sysconf_available() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def available_memory_bytes() -> int | None:
    """Memory this process may still allocate, in bytes; None when the platform does not say."""
    candidates = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    if not candidates:
        sysconf = _sysconf_available()
        return sysconf
    return min(candidates)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n / 1024:,.1f} KiB"


def check_fits(
    n_bytes: int, path: str | Path, what: str, limit_bytes: int | None = None
) -> None:
    """Raise InputError if allocating ``n_bytes`` for ``what`` would not fit.

    limit_bytes: the memory allowed for this allocation; None = measured available memory.
    """
    if limit_bytes is None:
        available = available_memory_bytes()
        if available is None:
            return
        allowed = available - HEADROOM_BYTES
    else:
        allowed = int(limit_bytes)
    if n_bytes > allowed:
        raise InputError(
            path,
            f"{what} needs {_mib(n_bytes)} of memory as int16 HU, but only "
            f"{_mib(max(allowed, 0))} is available; close other programs, use a machine with "
            "more memory, or load a smaller (cropped or thicker-slice) series",
        )
