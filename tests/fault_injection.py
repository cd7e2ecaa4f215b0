"""Fault injection for the record-writing tests: a full disk (ENOSPC at one step of a write) and
a read-only folder (EROFS), by monkeypatching the os calls a write makes. Tests run as root in
CI, where chmod does not stop a write, so chmod alone cannot make a folder read-only."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

FAULTS = ["create", "write", "fsync", "replace"]


def enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullDiskFile:
    """What os.fdopen gives on a full disk: writes fail with ENOSPC."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, _data):
        enospc()

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def inject(monkeypatch, fault: str) -> None:
    """Make the next record write fail at one step with ENOSPC."""
    if fault == "create":
        monkeypatch.setattr(tempfile, "mkstemp", enospc)
    elif fault == "write":
        real = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda *a, **k: _FullDiskFile(real(*a, **k)))
    elif fault == "fsync":
        monkeypatch.setattr(os, "fsync", enospc)
    elif fault == "replace":
        monkeypatch.setattr(os, "replace", enospc)
    else:
        raise AssertionError(fault)


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def read_only(monkeypatch, folder: Path) -> None:
    """``folder`` (and below) behaves as on a read-only mount: creating, writing, renaming or
    removing a file raises EROFS; reading works. chmod 0o500 too, which is enough when not root."""
    folder = folder.resolve()
    inside = lambda p: Path(os.path.abspath(os.fsdecode(p))).is_relative_to(folder)  # noqa: E731
    erofs = lambda p: PermissionError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))  # noqa: E731
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    real_open, real_mkdir = os.open, os.mkdir

    def fake_open(path, flags, *a, **k):
        if flags & writing and inside(path):
            raise erofs(path)
        return real_open(path, flags, *a, **k)

    def fake_mkdir(path, *a, **k):
        if inside(path):
            if os.path.exists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(path))
            raise erofs(path)
        return real_mkdir(path, *a, **k)

    def refuse(real):
        def fake(src, *a, **k):
            if inside(src) or any(isinstance(x, (str, Path)) and inside(x) for x in a):
                raise erofs(src)
            return real(src, *a, **k)
        return fake

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    for name in ("replace", "rename", "unlink", "remove"):
        monkeypatch.setattr(os, name, refuse(getattr(os, name)))
    for p in [folder, *(d for d in folder.rglob("*") if d.is_dir())]:
        p.chmod(0o500)  # restore_modes() puts the modes back


def restore_modes(folder: Path) -> None:
    for p in [folder, *(d for d in folder.rglob("*") if d.is_dir())]:
        p.chmod(0o700)
