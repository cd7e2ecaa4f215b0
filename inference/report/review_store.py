"""Where a review lives on disk, and how it is written so that a crash never loses it.

A save writes a temporary file in the target's folder, fsyncs it, ``os.replace``s it over the
review file (atomic on POSIX and Windows) and fsyncs the folder: at any instant the file on disk
is either the previous complete review or the new complete one. A crash can at worst leave a
stray ``*.tmp`` beside it, which the next save sweeps away.

Where: ``review_path_for_run(run_json)`` puts ``<run>.review.json`` next to run.json (the case
folder the CLI writes); ``user_review_path(run)`` is a per-user folder keyed by case hash and
run key, for runs the GUI made without a run.json (``$TUMORCHAIN_REVIEW_DIR`` or
``$XDG_DATA_HOME/tumorchain/reviews``).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from inference.errors import InputError, read_json_file
from inference.report.review import Review, ReviewError, run_key

ENV_REVIEW_DIR = "TUMORCHAIN_REVIEW_DIR"


def review_path_for_run(run_json: str | Path) -> Path:
    """``case/run.json`` -> ``case/run.review.json``."""
    p = Path(run_json)
    stem = p.name[:-5] if p.name.endswith(".json") else p.name
    return p.with_name(f"{stem}.review.json")


def default_review_dir() -> Path:
    if os.environ.get(ENV_REVIEW_DIR):
        return Path(os.environ[ENV_REVIEW_DIR]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "tumorchain" / "reviews"


def user_review_path(run: Any, root: str | Path | None = None) -> Path:
    """Per-user review file of a run: ``<root>/<case hash[:16]>/<run key>.review.json``."""
    root = Path(root) if root is not None else default_review_dir()
    return root / run.case.content_hash[:16] / f"{run_key(run)}.review.json"


def save_review(review: Review, path: str | Path) -> Path:
    """Write atomically and durably (temp + fsync + os.replace + folder fsync)."""
    path = Path(path)
    data = (review.to_json() + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(path, f"cannot write the review: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(path, f"cannot write the review: {exc.strerror or exc}") from None
    _fsync_dir(path.parent)
    _sweep_stale_temps(path)
    return path


def load_review(path: str | Path) -> Review:
    """Read and validate a review file; InputError naming the file and the problem."""
    path = Path(path)
    data = read_json_file(path, "review file")
    try:
        return Review.from_dict(data)
    except ValueError as exc:
        raise InputError(path, f"not a valid review: {exc}") from None


def open_review(run: Any, path: str | Path, reviewer: str = "") -> Review:
    """The review saved at ``path`` for this run (a case reopened comes back as it was left),
    or a fresh all-pending one when there is none yet. A file that belongs to another run, or
    cannot be read, raises InputError and is left untouched (no prior state is lost)."""
    path = Path(path)
    if not path.exists():
        return Review.for_run(run, reviewer=reviewer)
    review = load_review(path)
    try:
        review.check_matches(run)
    except ReviewError as exc:
        raise InputError(path, f"belongs to another run: {exc}") from None
    return review


class ReviewAutosaver:
    """Saves a review after every change: ``saver.decide(...)`` = review.decide + atomic save.

    The GUI holds one per open case; each edit is on disk before the call returns, so a crash
    loses at most the keystrokes of the edit box not yet committed as a decision.
    """

    def __init__(self, review: Review, path: str | Path):
        self.review = review
        self.path = Path(path)

    def decide(self, key: str, decision: str, **kwargs: Any):
        d = self.review.decide(key, decision, **kwargs)
        self.save()
        return d

    def sign(self, reviewer: str | None = None, *, confirm: bool):
        s = self.review.sign(reviewer, confirm=confirm)
        self.save()
        return s

    def save(self) -> Path:
        return save_review(self.review, self.path)


def _fsync_dir(folder: Path) -> None:
    try:  # makes the rename itself durable; not possible on Windows, where replace is enough
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sweep_stale_temps(path: Path) -> None:
    """Remove temp files a crashed save left beside ``path`` (never the review itself); only
    old ones, so that a save running in another process at this moment keeps its file."""
    cutoff = time.time() - 60.0
    for stray in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if stray.stat().st_mtime < cutoff:
                stray.unlink()
        except OSError:
            pass
