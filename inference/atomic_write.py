"""The one way TumorChain writes a record to disk: atomically and durably.

``atomic_write(path, data)`` writes ``data`` to a temporary file in ``path``'s folder, flushes
and fsyncs it, ``os.replace``s it over ``path`` (atomic on POSIX and Windows) and fsyncs the
folder, so that the rename itself survives a power cut. At any instant the file on disk is either
the previous complete record or the new complete one, and when the call returns the new one is
on the disk, not just in the page cache. Any failure (disk full, read-only folder, ...) removes
the temporary file and raises ``StorageError`` naming ``path``; the previous record is untouched.

A process killed mid-write leaves its temporary file behind. Those carry a recognisable name,
``.<target name>.<8 random characters>.tc-write.tmp``, so ``sweep_stale_temps`` can remove them
(only ones older than ``STALE_AFTER_S``: a write running in another process keeps its file);
the workstation sweeps the folders it writes to when its case store opens, and the review store
sweeps a review's folder after each save.

Every record the project writes goes through here: run.json, reviews, the workstation's session
and drafts, exported report files, training's case cache.
"""
from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Union

from inference.errors import StorageError

TEMP_SUFFIX = ".tc-write.tmp"
STALE_AFTER_S = 60.0
# mkstemp's random part: 8 characters of [a-z0-9_]
_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + r"$")
# folders on filesystems that cannot fsync a directory (some network and FUSE filesystems) say so
# with one of these; the rename is then as durable as that filesystem makes it
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP), errno.EBADF}

Data = Union[bytes, str, Callable[[BinaryIO], None]]


def temp_prefix(path: str | Path) -> str:
    return f".{Path(path).name}."


def is_temp_name(name: str, target: str | None = None) -> bool:
    """Whether ``name`` is a temporary file ``atomic_write`` makes (for ``target``, if given)."""
    m = _TEMP_RE.match(name)
    return m is not None and (target is None or m.group("target") == target)


def atomic_write(path: str | Path, data: Data, *, what: str = "file", encoding: str = "utf-8") -> Path:
    """Write ``data`` (bytes, text, or a function writing to a binary file) to ``path`` atomically
    and durably; ``StorageError(path, "cannot write the <what>: <reason>")`` when it cannot."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode(encoding)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise _storage_error(path, what, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # already renamed, or the folder itself is unusable
        if isinstance(exc, OSError):
            raise _storage_error(path, what, exc) from None
        raise
    try:
        fsync_dir(path.parent)
    except OSError as exc:
        raise _storage_error(path, what, exc, "written, but its folder could not be synced to disk") from None
    return path


def fsync_dir(folder: str | Path) -> None:
    """fsync a folder, so that a rename or a new file in it survives a crash. Windows cannot open a
    folder (there ``os.replace`` is enough); a filesystem that cannot sync folders is skipped."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # a folder we may write but not read (mode -wx): nothing more can be done
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def sweep_stale_temps(folder: str | Path, *, target: str | None = None, max_age_s: float = STALE_AFTER_S,
                      depth: int = 0) -> list[Path]:
    """Remove the temporary files killed writes left in ``folder`` (and ``depth`` levels of
    subfolders): only names ``atomic_write`` makes (for ``target`` only, if given) and only ones
    not modified for ``max_age_s``. Never raises; returns what it removed."""
    removed: list[Path] = []
    cutoff = time.time() - max_age_s
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if depth > 0:
                    removed += sweep_stale_temps(entry.path, target=target, max_age_s=max_age_s, depth=depth - 1)
            elif is_temp_name(entry.name, target) and entry.is_file(follow_symlinks=False) \
                    and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _storage_error(path: Path, what: str, exc: OSError, problem: str | None = None) -> StorageError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason = "the disk is full"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = f"the folder is read-only or not writable ({reason})"
    text = f"{problem} ({reason})" if problem else f"cannot write the {what}: {reason}"
    return StorageError(path, text)
