"""Where a review lives on disk, and how it is written so that a crash never loses it.

A save goes through ``inference.atomic_write``: a temporary file in the target's folder, fsynced,
``os.replace``d over the review file (atomic on POSIX and Windows), then the folder fsynced. At
any instant the file on disk is either the previous complete review or the new complete one. A
crash can at worst leave a stray temporary file beside it, which the next save sweeps away.

``ReviewAutosaver`` applies a decision only once it is saved: a save that fails (disk full,
read-only folder) raises ``StorageError`` and leaves the review in memory as it was, so the
failed decision is neither shown as made nor written by a later save.

Where: ``review_path_for_run(run_json)`` puts ``<run>.review.json`` next to run.json (the case
folder the CLI writes); ``user_review_path(run)`` is a per-user folder keyed by case hash and
run key, for runs the GUI made without a run.json (``$TUMORCHAIN_REVIEW_DIR`` or
``$XDG_DATA_HOME/tumorchain/reviews``).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from inference.atomic_write import atomic_write, sweep_stale_temps
from inference.errors import InputError, StorageError, read_json_file
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
    """Write atomically and durably (inference.atomic_write); StorageError naming the file when
    it cannot be written, the previous review file then left as it was."""
    path = Path(path)
    atomic_write(path, review.to_json() + "\n", what="review")
    sweep_stale_temps(path.parent, target=path.name)
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
    loses at most the keystrokes of the edit box not yet committed as a decision. A change is
    made on a copy of the review and taken over only once that copy is saved: when the save
    fails (StorageError) the review is unchanged, in memory and on disk. ``error`` is the last
    save's failure (None once a save succeeds).
    """

    def __init__(self, review: Review, path: str | Path):
        self.review = review
        self.path = Path(path)
        self.error: StorageError | None = None

    def decide(self, key: str, decision: str, **kwargs: Any):
        return self._apply(lambda r: r.decide(key, decision, **kwargs))

    def sign(self, reviewer: str | None = None, *, confirm: bool):
        return self._apply(lambda r: r.sign(reviewer, confirm=confirm))

    def save(self) -> Path:
        return self._save(self.review)

    def _apply(self, change):
        draft = copy.deepcopy(self.review)
        result = change(draft)  # ReviewError: nothing changed anywhere
        self._save(draft)  # StorageError: nothing changed anywhere
        # take the saved state over in place: whoever holds self.review sees the change
        vars(self.review).clear()
        vars(self.review).update(vars(draft))
        return result

    def _save(self, review: Review) -> Path:
        try:
            path = save_review(review, self.path)
        except StorageError as exc:
            self.error = exc
            raise
        self.error = None
        return path
