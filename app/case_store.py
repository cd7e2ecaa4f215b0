"""Where the workstation keeps each case's runs, reviews and unsaved edits, so that a case
opened again (later, or after a crash) comes back as it was left.

    <root>/<CT content hash[:16]>/<run key>.run.json      the run (tumorchain.run/1), written when it ends
    <root>/<CT content hash[:16]>/<run key>.review.json   its review (review_store: atomic, every decision)
    <root>/<CT content hash[:16]>/<run key>.drafts.json   text typed in edit boxes, not yet saved as an edit
    <root>/<CT content hash[:16]>/session.json            which run was on screen last

``root`` is review_store's folder (``$TUMORCHAIN_REVIEW_DIR``; the app's ``--profile`` sets it),
so the review sits where ``review_store.user_review_path`` says. Qt-free.

Every file is written through ``inference.atomic_write`` (atomic, fsynced file and folder); one
that cannot be written raises ``StorageError`` naming it, and what was on disk stays as it was.
Opening the store sweeps the temporary files that killed writes left in it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from inference.atomic_write import atomic_write, sweep_stale_temps
from inference.errors import InputError, StorageError
from inference.report.review import run_key
from inference.report.review_store import ReviewAutosaver, open_review, user_review_path
from inference.run_record import RunRecord

log = logging.getLogger(__name__)


@dataclass
class StoredRun:
    key: str
    run: RunRecord
    path: Path


class CaseStore:
    def __init__(self, root: str | Path, sweep: bool = True):
        self.root = Path(root)
        self._parsed: dict[tuple, RunRecord] = {}
        if sweep:
            self.sweep_stale_temps()

    def sweep_stale_temps(self) -> list[Path]:
        """Remove temporary files of killed writes (older than a minute) in the root and the case
        folders; files of other names, and fresh ones (a write under way), are left alone."""
        removed = sweep_stale_temps(self.root, depth=1)
        if removed:
            log.info("removed %d stale temporary file(s) under %s", len(removed), self.root)
        return removed

    def folder(self, content_hash: str) -> Path:
        return self.root / content_hash[:16]

    # -- runs --------------------------------------------------------------------------------------
    def save_run(self, run: RunRecord) -> Path:
        path = self.folder(run.case.content_hash) / f"{run_key(run)}.run.json"
        run.save(path)
        self.set_current(run)
        return path

    def runs(self, content_hash: str) -> list[StoredRun]:
        """Every readable run of the case, oldest first; unreadable files are skipped (and logged)."""
        found = []
        folder = self.folder(content_hash)
        for path in sorted(folder.glob("*.run.json")) if folder.is_dir() else ():
            try:
                run = self._load_run(path)
            except InputError as exc:
                log.warning("skipping a stored run: %s", exc)
                continue
            if run.case.content_hash == content_hash:
                found.append(StoredRun(run_key(run), run, path))
        return sorted(found, key=lambda s: (s.run.created, s.path.name))

    def _load_run(self, path: Path) -> RunRecord:
        """A stored run, parsed once per file version: the run list is refreshed at the end of every
        analysis, on the GUI thread, and re-reading every earlier run there cost 10-20 ms each time."""
        try:
            st = path.stat()
        except OSError:
            return RunRecord.load(path)  # gone meanwhile: the loader names the file
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in self._parsed:
            self._parsed[key] = RunRecord.load(path)
        return self._parsed[key]

    def current(self, content_hash: str) -> StoredRun | None:
        """The run that was on screen when the case was left (else the newest)."""
        runs = self.runs(content_hash)
        if not runs:
            return None
        try:
            key = json.loads((self.folder(content_hash) / "session.json").read_text(encoding="utf-8"))["current_run"]
        except (OSError, ValueError, KeyError, TypeError):
            key = None
        return next((s for s in runs if s.key == key), runs[-1])

    def set_current(self, run: RunRecord) -> None:
        path = self.folder(run.case.content_hash) / "session.json"
        _write_json(path, {"current_run": run_key(run)}, "case session")

    # -- reviews -----------------------------------------------------------------------------------
    def review_path(self, run: RunRecord) -> Path:
        return user_review_path(run, self.root)

    def open_review(self, run: RunRecord, reviewer: str = "", save_new: bool = True) -> ReviewAutosaver:
        """The saved review of ``run`` (or a fresh one, saved at once so the run is never without
        one: StorageError when that fails; ``save_new=False`` leaves the saving to the caller)."""
        path = self.review_path(run)
        review = open_review(run, path, reviewer=reviewer)
        saver = ReviewAutosaver(review, path)
        if save_new and not path.exists():
            saver.save()
        return saver

    # -- drafts ------------------------------------------------------------------------------------
    def drafts_path(self, run: RunRecord) -> Path:
        return self.folder(run.case.content_hash) / f"{run_key(run)}.drafts.json"

    def load_drafts(self, run: RunRecord) -> dict[str, str]:
        try:
            data = json.loads(self.drafts_path(run).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def save_drafts(self, run: RunRecord, drafts: dict[str, str]) -> None:
        path = self.drafts_path(run)
        if drafts:
            _write_json(path, drafts, "unsaved edits")
        else:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise StorageError(path, f"cannot remove the unsaved edits: {exc.strerror or exc}") from None


def _write_json(path: Path, data: dict, what: str) -> None:
    """Atomic and durable, like the review itself; StorageError naming the file."""
    atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False), what=what)
