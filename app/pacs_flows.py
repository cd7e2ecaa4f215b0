"""What the PACS menu items open, and the background retry of the send queue.

File > Open from PACS: the browser dialog, then the retrieved folder opens like any DICOM folder.
File > Send to PACS: after sign-off, the run's SEG and SRs go through the on-disk queue.
Folders: under the profile (``--profile``) when there is one, else ~/.cache/tumorchain/pacs (the
retrieval cache) and ~/.local/share/tumorchain/pacs_queue (the send queue).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, QTimer

from app.settings import AppSettings, profile_dir
from inference.pacs.connection import PacsConnection, connections_from_json
from inference.pacs.send_queue import SendQueue, default_queue_dir

RETRY_EVERY_MS = 60_000
OBJECTS = (("seg", "DICOM SEG (organs)"), ("seg_parts", "DICOM SEG (organ parts)"),
           ("sr", "SR report (TID 2000)"), ("sr_tid1500", "SR measurements (TID 1500)"))


def connections(settings: AppSettings) -> list[PacsConnection]:
    return connections_from_json(settings.pacs_connections)


def cache_dir() -> Path:
    folder = profile_dir()
    return folder / "pacs_cache" if folder is not None else Path.home() / ".cache" / "tumorchain" / "pacs"


def send_queue() -> SendQueue:
    folder = profile_dir()
    return SendQueue(folder / "pacs_queue" if folder is not None else default_queue_dir())


def open_from_pacs(win, dialog=None) -> bool:
    """Run the browser (or take a finished ``dialog``); open the retrieved series."""
    from app.pacs_browser_dialog import OpenFromPacsDialog

    conns = connections(win.settings)
    if not conns and dialog is None:
        win.show_error("No PACS is configured yet: add one in Edit > Settings > PACS connections.", "Open from PACS")
        return False
    dlg = dialog or OpenFromPacsDialog(conns, cache_dir(), win, default=win.settings.pacs_default)
    if dialog is None and not dlg.exec():
        return False
    if dlg.folder is None:
        return False
    if dlg.conn is not None and dlg.conn.name != win.settings.pacs_default:
        win.settings_store.update(pacs_default=dlg.conn.name)
        win.settings_store.save()
    return win.open_path(dlg.folder)


def send_problem(win) -> str | None:
    """Why the run on screen cannot be sent (None when it can)."""
    from inference.report.dicom_source import dicom_unavailable_reason, has_dicom_source

    c = win.controller
    if (problem := c.export_problem()) is not None:
        return problem
    if c.review is None or not c.review.is_signed:
        return "Sign off the review first: only a signed report goes to the PACS."
    if not has_dicom_source(c.ct):
        return dicom_unavailable_reason(c.ct)
    if not connections(win.settings):
        return "No PACS is configured yet: add one in Edit > Settings > PACS connections."
    return None


def objects_maker(win):
    """make_objects(cancel) for the send dialog: the signed run's DICOM export in a temporary folder."""
    from inference.report import export_report

    c = win.controller
    run, review, ct, masks = c.run, c.review, c.ct, c.masks

    def make(cancel):
        out = Path(tempfile.mkdtemp(prefix="tumorchain-send-"))
        result = export_report(run, review, ct, masks, out, formats={"dicom"})
        objects = [(result.paths[k], desc) for k, desc in OBJECTS if k in result.paths]
        if "ct_series" in result.paths:  # an enhanced source: the classic slices the SEG/SR reference go too
            objects += [(p, f"CT slice {i} (classic copy of the enhanced image)")
                        for i, p in enumerate(sorted(result.paths["ct_series"].glob("*.dcm")), 1)]
        return objects
    return make


def send_to_pacs(win, dialog=None) -> bool:
    from app.pacs_send_dialog import SendToPacsDialog

    if (problem := send_problem(win)) is not None:
        win.show_error(problem, "Send to PACS")
        return False
    dlg = dialog or SendToPacsDialog(connections(win.settings), send_queue(), objects_maker(win), win,
                                     default=win.settings.pacs_default)
    if dialog is None:
        dlg.exec()
    return True


class QueueRetrier(QObject):
    """Every minute, sends what the queue holds that is due, for every configured PACS, on its own
    worker; the queue's back-off (30 s doubling to 30 min) decides what is due."""

    def __init__(self, win, interval_ms: int = RETRY_EVERY_MS):
        super().__init__(win)
        from app.job_runner import JobRunner

        self.win = win
        self.runner = JobRunner("PACS retry", self)
        self.runner.succeeded.connect(self._done)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        self.timer.start(interval_ms)

    def tick(self) -> bool:
        queue = send_queue()
        conns = [c for c in connections(self.win.settings) if queue.due(c.name)]
        if not conns or self.runner.busy:
            return False
        return self.runner.start(lambda progress, cancel: [queue.process(c, cancel=cancel) for c in conns])

    def _done(self, reports) -> None:
        sent = sum(len(r.results) - len(r.failed) for r in reports)
        if sent:
            self.win.statusBar().showMessage(f"PACS queue: {sent} object(s) sent.", 10000)

    def shutdown(self) -> None:
        self.timer.stop()
        self.runner.shutdown()
