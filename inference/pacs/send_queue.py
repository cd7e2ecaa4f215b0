"""Send DICOM objects (our SEG and SR) to a PACS, never losing one: an on-disk queue.

``SendQueue.enqueue`` copies each file into the queue folder with a small JSON record beside it
(both written by inference.atomic_write), so from then on the object survives a crash, a closed
window or a PACS that is down. ``process`` sends what is due, C-STORE (one association for all)
or STOW-RS, and records the result per object: an acknowledged object (status Success or a
storage Warning, which means stored) leaves the queue, its record moves to ``sent/``; a failed one
stays, with the error, the attempt count and the time of the next try (30 s, doubling, at most
30 min). Nothing is dropped after N failures: the queue shows it until it is sent or removed.

    <queue>/<id>.dcm  <queue>/<id>.json      pending
    <queue>/sent/<id>.json                   acknowledged (the record only)
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from inference.atomic_write import atomic_write, fsync_dir
from inference.errors import InputError, StorageError, raise_if_cancelled
from inference.pacs.connection import PacsConnection, PacsError

log = logging.getLogger(__name__)
SCHEMA = "tumorchain.pacs-send/1"
FIRST_RETRY_S, MAX_RETRY_S = 30.0, 1800.0
STORAGE_WARNINGS = (0xB000, 0xB006, 0xB007)  # stored, with coercion or elements discarded


@dataclass
class QueueItem:
    id: str
    connection: str
    sop_class_uid: str
    sop_instance_uid: str
    description: str  # e.g. "SEG organs" (no patient data)
    created: str
    status: str = "pending"  # pending | sent
    attempts: int = 0
    last_error: str = ""
    last_attempt: str = ""
    next_attempt: float = 0.0  # time.time() of the next automatic try
    acknowledged: str = ""


@dataclass
class SendResult:
    item: QueueItem
    ok: bool
    message: str


@dataclass
class SendReport:
    results: list[SendResult] = field(default_factory=list)

    @property
    def failed(self) -> list[SendResult]:
        return [r for r in self.results if not r.ok]

    def summary(self) -> str:
        ok = len(self.results) - len(self.failed)
        return f"{ok} of {len(self.results)} object(s) acknowledged" + (
            f"; {len(self.failed)} kept in the queue for retry" if self.failed else "")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SendQueue:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()

    # -- adding ------------------------------------------------------------------------------------
    def enqueue(self, files: Iterable[str | Path], connection: str, descriptions: Iterable[str] | None = None) -> list[QueueItem]:
        """Copy ``files`` into the queue for ``connection``; InputError naming a file that is not DICOM."""
        import pydicom

        files = [Path(f) for f in files]
        descriptions = list(descriptions) if descriptions is not None else [None] * len(files)
        items = []
        for f, desc in zip(files, descriptions):
            try:
                data = f.read_bytes()
                ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID", "Modality",
                                                                                 "SeriesDescription"])
                sop_class, sop_uid = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
            except Exception as exc:  # OSError, or any of the several errors pydicom raises on a non-DICOM file
                raise InputError(f, f"cannot be queued for sending: not a readable DICOM object ({type(exc).__name__})") from None
            item = QueueItem(id=f"{time.time_ns():020d}-{secrets.token_hex(4)}", connection=connection,
                             sop_class_uid=sop_class, sop_instance_uid=sop_uid,
                             description=desc or f"{ds.get('Modality', '')} {ds.get('SeriesDescription', '')}".strip(),
                             created=_now())
            atomic_write(self.folder / f"{item.id}.dcm", data, what="queued DICOM object")
            self._save(item)  # the record last: a record always has its object
            items.append(item)
        return items

    # -- reading -----------------------------------------------------------------------------------
    def pending(self, connection: str | None = None) -> list[QueueItem]:
        out = []
        if not self.folder.is_dir():
            return out
        for p in sorted(self.folder.glob("*.json")):
            try:
                item = QueueItem(**json.loads(p.read_text(encoding="utf-8"))["item"])
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("unreadable send-queue record %s left as it is", p.name)
                continue
            if (self.folder / f"{item.id}.dcm").is_file() and (connection is None or item.connection == connection):
                out.append(item)
        return out

    def sent(self) -> list[QueueItem]:
        folder = self.folder / "sent"
        return [QueueItem(**json.loads(p.read_text(encoding="utf-8"))["item"]) for p in sorted(folder.glob("*.json"))] \
            if folder.is_dir() else []

    def due(self, connection: str | None = None, now: float | None = None) -> list[QueueItem]:
        now = time.time() if now is None else now
        return [i for i in self.pending(connection) if i.next_attempt <= now]

    def object_path(self, item: QueueItem) -> Path:
        return self.folder / f"{item.id}.dcm"

    def remove(self, item: QueueItem) -> None:
        """The user gives up on an object (its record goes, the file too)."""
        for p in (self.folder / f"{item.id}.json", self.object_path(item)):
            p.unlink(missing_ok=True)
        fsync_dir(self.folder)

    # -- sending -----------------------------------------------------------------------------------
    def process(self, conn: PacsConnection, *, force: bool = False,
                progress: Callable[[float, str], None] | None = None, cancel: threading.Event | None = None) -> SendReport:
        """Send what is due for ``conn`` (everything pending with ``force``); result per object."""
        with self._lock, self._folder_lock():
            items = self.pending(conn.name) if force else self.due(conn.name)
            report = SendReport()
            if not items:
                return report
            progress = progress or (lambda f, m: None)
            try:
                conn.checked()
                if conn.protocol == "dicomweb":
                    outcomes = self._stow(conn, items, progress, cancel)
                else:
                    outcomes = self._c_store(conn, items, progress, cancel)
            except PacsError as exc:  # nothing went: every object keeps its place, with the reason
                outcomes = {i.id: (False, str(exc)) for i in items}
            for item in items:
                ok, message = outcomes.get(item.id, (False, "not sent (cancelled or the connection ended first)"))
                self._record(item, ok, message)
                report.results.append(SendResult(item, ok, message))
            log.info("send to %s: %s", conn.name, report.summary())
            return report

    @contextmanager
    def _folder_lock(self):
        """One sender per queue folder, across threads and processes (the window's retry timer, the
        Send dialog, the CLI): an object is never sent twice at once or recorded by two writers."""
        try:
            import fcntl
        except ImportError:  # Windows: the in-process lock only
            yield
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fh = open(self.folder / ".lock", "a+b")
        except OSError as exc:
            raise StorageError(self.folder, f"cannot use the send queue: {exc.strerror or exc}") from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _record(self, item: QueueItem, ok: bool, message: str) -> None:
        item.attempts += 1
        item.last_attempt = _now()
        if ok:
            item.status, item.acknowledged, item.last_error = "sent", _now(), ""
            (self.folder / "sent").mkdir(parents=True, exist_ok=True)
            atomic_write(self.folder / "sent" / f"{item.id}.json", _record_json(item), what="send record")
            (self.folder / f"{item.id}.json").unlink(missing_ok=True)
            self.object_path(item).unlink(missing_ok=True)
            fsync_dir(self.folder)
        else:
            item.last_error = message
            item.next_attempt = time.time() + min(FIRST_RETRY_S * 2 ** (item.attempts - 1), MAX_RETRY_S)
            self._save(item)

    def _save(self, item: QueueItem) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(self.folder, f"cannot create the send queue: {exc.strerror or exc}") from None
        atomic_write(self.folder / f"{item.id}.json", _record_json(item), what="send-queue record")

    def _c_store(self, conn, items, progress, cancel) -> dict[str, tuple[bool, str]]:
        import pydicom

        from inference.pacs.dimse import association, dropped, new_ae

        ae = new_ae(conn)
        syntaxes = {}
        for item in items:
            ts = str(pydicom.dcmread(self.object_path(item), stop_before_pixels=True).file_meta.TransferSyntaxUID)
            syntaxes.setdefault(item.sop_class_uid, set()).update({ts, "1.2.840.10008.1.2.1"})
        for sop_class, ts in syntaxes.items():
            ae.add_requested_context(sop_class, sorted(ts))
        out = {}
        with association(conn, ae) as assoc:
            for n, item in enumerate(items):
                raise_if_cancelled(cancel, "sending")
                progress(n / len(items), f"sending {item.description or 'object'} ({n + 1} of {len(items)})")
                try:
                    status = assoc.send_c_store(self.object_path(item))
                except ValueError as exc:  # no accepted context for this object
                    out[item.id] = (False, f"{conn.where()}: does not accept this object ({exc})")
                    continue
                if not status or "Status" not in status:
                    err = dropped(conn, "C-STORE", assoc)
                    for rest in items[n:]:
                        out[rest.id] = (False, str(err))
                    break
                code = status.Status
                if code == 0x0000 or code in STORAGE_WARNINGS:
                    out[item.id] = (True, "stored" if code == 0 else f"stored with warning 0x{code:04X}")
                else:
                    out[item.id] = (False, f"{conn.where()}: refused the object (C-STORE status 0x{code:04X})")
        progress(1.0, "sent")
        return out

    def _stow(self, conn, items, progress, cancel) -> dict[str, tuple[bool, str]]:
        import pydicom

        from inference.pacs.dicomweb import client, web_errors

        out = {}
        c = client(conn)
        for n, item in enumerate(items):
            raise_if_cancelled(cancel, "sending")
            progress(n / len(items), f"sending {item.description or 'object'} ({n + 1} of {len(items)})")
            try:
                with web_errors(conn, "STOW-RS"):
                    rsp = c.store_instances([pydicom.dcmread(self.object_path(item))])
            except PacsError as exc:
                out[item.id] = (False, str(exc))
                continue
            failed = rsp.get("FailedSOPSequence") if rsp is not None else None
            out[item.id] = (False, f"{conn.where()}: refused the object (STOW-RS)") if failed else (True, "stored")
        progress(1.0, "sent")
        return out


def _record_json(item: QueueItem) -> bytes:
    return (json.dumps({"schema": SCHEMA, "item": asdict(item)}, indent=2) + "\n").encode("utf-8")


def default_queue_dir() -> Path:
    """$TUMORCHAIN_PACS_QUEUE, else ~/.local/share/tumorchain/pacs_queue."""
    env = os.environ.get("TUMORCHAIN_PACS_QUEUE")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "tumorchain" / "pacs_queue"
