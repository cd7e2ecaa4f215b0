"""Retrieve one series into the local cache: C-GET, C-MOVE (with our own storage SCP) or WADO-RS.

A partial retrieval is never opened as a case. Files arrive in a hidden staging folder
(``<cache>/.partial-<series>-<random>/``); only when the transfer ended with success, the number
of images equals what the PACS said the series holds, and every file parses as an instance of the
requested series is the folder renamed to ``<cache>/<SeriesInstanceUID>/`` (with
``retrieval.json`` inside, written last before the rename). A drop, a timeout, a cancel or a
verification failure removes the staging folder and raises PacsError / Cancelled; the cache keeps
only complete series. Staging folders of a killed process are swept after an hour.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydicom.dataset import Dataset

from inference.atomic_write import atomic_write, fsync_dir
from inference.errors import Cancelled, StorageError, raise_if_cancelled
from inference.pacs.connection import PacsConnection, PacsError

log = logging.getLogger(__name__)
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
MANIFEST = "retrieval.json"
PARTIAL_PREFIX = ".partial-"
STALE_PARTIAL_S = 3600.0
Progress = Callable[[float, str], None]

# what a series to analyse (or our own results) can be; C-GET needs each proposed with the SCP role
STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",      # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",    # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.2.2",    # Legacy Converted Enhanced CT Image (a PACS's multi-frame conversion)
    "1.2.840.10008.5.1.4.1.1.4",      # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",    # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.128",    # PET Image
    "1.2.840.10008.5.1.4.1.1.7",      # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.66.4",   # Segmentation
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
)
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",     # Explicit VR Little Endian
    "1.2.840.10008.1.2",       # Implicit VR Little Endian
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.5",     # RLE Lossless
)


@dataclass
class RetrievedSeries:
    folder: Path
    n_files: int
    seconds: float
    method: str
    from_cache: bool = False


def cache_folder(cache_dir: str | Path, series_uid: str) -> Path:
    safe = "".join(c for c in series_uid if c.isdigit() or c == ".")
    if not safe or safe != series_uid:
        raise PacsError("config", f"{series_uid!r} is not a DICOM UID")
    return Path(cache_dir) / safe


def cached_series(cache_dir: str | Path, series_uid: str) -> Path | None:
    """The complete cached copy of a series, or None."""
    folder = cache_folder(cache_dir, series_uid)
    return folder if (folder / MANIFEST).is_file() else None


def retrieve_series(conn: PacsConnection, study_uid: str, series_uid: str, cache_dir: str | Path, *,
                    expected: int | None = None, progress: Progress | None = None,
                    cancel: threading.Event | None = None, reuse: bool = True) -> RetrievedSeries:
    """The series as a complete folder in ``cache_dir`` (PacsError / Cancelled otherwise).

    expected: the number of images the PACS holds (asked with C-FIND / QIDO when None)."""
    conn.checked()
    progress = progress or (lambda f, m: None)
    cache = Path(cache_dir)
    final = cache_folder(cache, series_uid)
    if reuse and (final / MANIFEST).is_file():
        n = json.loads((final / MANIFEST).read_text(encoding="utf-8")).get("n_files", 0)
        return RetrievedSeries(final, n, 0.0, "cache", from_cache=True)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        sweep_partials(cache)
        staging = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{final.name}-", dir=cache))
    except OSError as exc:
        raise StorageError(cache, f"cannot create the PACS cache folder: {exc.strerror or exc}") from None
    t0 = time.perf_counter()
    method = "wado" if conn.protocol == "dicomweb" else conn.retrieve
    try:
        if expected is None:
            expected = _expected_count(conn, study_uid, series_uid, cancel)
        progress(0.0, f"retrieving {expected} images from {conn.name}")
        counter = _Counter(staging, expected, progress, cancel, conn.name)
        if method == "get":
            _c_get(conn, study_uid, series_uid, counter)
        elif method == "move":
            _c_move(conn, study_uid, series_uid, counter)
        else:
            _wado(conn, study_uid, series_uid, counter)
        raise_if_cancelled(cancel, "retrieval")
        n = verify_folder(staging, series_uid, expected, conn)
        seconds = time.perf_counter() - t0
        atomic_write(staging / MANIFEST, json.dumps({
            "schema": "tumorchain.pacs-retrieval/1", "connection": conn.name, "method": method,
            "study_uid": study_uid, "series_uid": series_uid, "n_files": n, "seconds": round(seconds, 3),
            "retrieved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2), what="retrieval record")
        _publish(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("retrieved a series of %d images from %s by %s in %.2f s", n, conn.name, method, seconds)
    progress(1.0, f"retrieved {n} images")
    return RetrievedSeries(final, n, seconds, method)


def sweep_partials(cache: Path, max_age_s: float = STALE_PARTIAL_S) -> None:
    """Remove staging folders older than ``max_age_s`` (left by a killed process)."""
    now = time.time()
    for p in cache.glob(PARTIAL_PREFIX + "*"):
        try:
            if p.is_dir() and now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def verify_folder(folder: Path, series_uid: str, expected: int | None, conn: PacsConnection) -> int:
    """The number of images in ``folder``; PacsError('incomplete') unless it holds exactly the
    expected count of distinct, readable instances of ``series_uid``."""
    import pydicom

    files = [p for p in folder.iterdir() if p.suffix == ".dcm"]
    sops = set()
    for p in files:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SeriesInstanceUID", "SOPInstanceUID"])
        except Exception as exc:  # a truncated or garbled file from the wire
            raise PacsError("incomplete", f"{conn.where()}: a received image is unreadable ({type(exc).__name__}); "
                            "the retrieval was discarded") from None
        if str(ds.get("SeriesInstanceUID", "")) != series_uid:
            raise PacsError("incomplete", f"{conn.where()}: sent an image of another series; the retrieval was "
                            "discarded")
        sops.add(str(ds.get("SOPInstanceUID", "")))
    if expected is not None and len(sops) != expected:
        raise PacsError("incomplete", f"{conn.where()}: received {len(sops)} of {expected} images; the partial "
                        "retrieval was discarded and nothing was opened")
    if not sops:
        raise PacsError("incomplete", f"{conn.where()}: the series has no images to retrieve")
    return len(sops)


def _publish(staging: Path, final: Path) -> None:
    """Rename the verified staging folder to its final name (replacing an older copy)."""
    old = None
    if final.exists():
        old = final.with_name(f"{PARTIAL_PREFIX}old-{final.name}-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(final, old)
    os.replace(staging, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _expected_count(conn: PacsConnection, study_uid: str, series_uid: str, cancel) -> int | None:
    from inference.pacs.query import find_series

    for s in find_series(conn, study_uid, cancel, thickness=False):
        if s.series_uid == series_uid:
            return s.n_instances
    raise PacsError("incomplete", f"{conn.where()}: the study holds no such series (it may have been deleted)")


class _Counter:
    """Writes received instances into the staging folder and reports progress (thread-safe: a
    storage SCP calls it from its own threads)."""

    def __init__(self, folder: Path, expected: int | None, progress: Progress, cancel, source: str):
        self.folder, self.expected, self.progress, self.cancel, self.source = folder, expected, progress, cancel, source
        self.n = 0
        self._lock = threading.Lock()
        self._last = 0.0

    def write(self, sop_uid: str, data: bytes) -> None:
        name = "".join(c for c in sop_uid if c.isdigit() or c == ".") or f"instance{self.n}"
        (self.folder / f"{name}.dcm").write_bytes(data)
        with self._lock:
            self.n += 1
            now = time.monotonic()
            if now - self._last > 0.1 or self.n == self.expected:
                self._last = now
                total = self.expected or max(self.n, 1)
                self.progress(min(self.n / total, 1.0) * 0.98, f"{self.n} of {total} images from {self.source}")

    def store_handler(self, event) -> int:
        if self.cancel is not None and self.cancel.is_set():
            return 0xFE00  # cancelled
        try:
            self.write(event.request.AffectedSOPInstanceUID, event.encoded_dataset(include_meta=True))
        except OSError:
            log.error("cannot write a received image into %s", self.folder)
            return 0xA700  # out of resources
        return 0x0000


def _identifier(study_uid: str, series_uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    return ds


def _check_final(conn: PacsConnection, what: str, status, counter: _Counter) -> None:
    code = status.Status
    if code == 0xFE00:
        raise Cancelled(f"{what} cancelled")
    failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
    if code != 0x0000 or failed:
        raise PacsError("incomplete", f"{conn.where()}: {what} ended with status 0x{code:04X} ({failed} images "
                        f"failed, {counter.n} received); the partial retrieval was discarded")


def _run_retrieve(conn: PacsConnection, assoc, responses, what: str, counter: _Counter) -> None:
    from inference.pacs.dimse import dropped

    final = None
    for status, _ in responses:
        if not status or "Status" not in status:
            raise dropped(conn, what, assoc)
        if counter.cancel is not None and counter.cancel.is_set():
            assoc.abort()
            raise Cancelled(f"{what} cancelled")
        if status.Status in (0xFF00, 0xFF01):
            continue
        final = status
    if final is None:
        raise dropped(conn, what, assoc)
    _check_final(conn, what, final, counter)


def _c_get(conn: PacsConnection, study_uid: str, series_uid: str, counter: _Counter) -> None:
    from pynetdicom import build_role, evt

    from inference.pacs.dimse import association, new_ae

    ae = new_ae(conn)
    ae.add_requested_context(STUDY_ROOT_GET)
    for uid in STORAGE_CLASSES:
        ae.add_requested_context(uid, list(TRANSFER_SYNTAXES))
    roles = [build_role(uid, scp_role=True) for uid in STORAGE_CLASSES]
    with association(conn, ae, evt_handlers=[(evt.EVT_C_STORE, counter.store_handler)], ext_neg=roles) as assoc:
        _run_retrieve(conn, assoc, assoc.send_c_get(_identifier(study_uid, series_uid), STUDY_ROOT_GET),
                      "C-GET", counter)


def _c_move(conn: PacsConnection, study_uid: str, series_uid: str, counter: _Counter) -> None:
    from pynetdicom import AE, evt

    from inference.pacs.dimse import association, new_ae, no_delay
    from inference.pacs.privacy import quiet_pynetdicom

    quiet_pynetdicom()
    scp = AE(ae_title=conn.calling_ae)
    scp.network_timeout = scp.dimse_timeout = scp.acse_timeout = float(conn.timeout_s)
    for uid in STORAGE_CLASSES:
        scp.add_supported_context(uid, list(TRANSFER_SYNTAXES))
    try:
        server = scp.start_server((conn.move_bind, int(conn.move_port)), block=False,
                                  evt_handlers=[(evt.EVT_C_STORE, counter.store_handler), (evt.EVT_CONN_OPEN, no_delay)])
    except OSError as exc:
        raise PacsError("config", f"cannot listen for C-MOVE on {conn.move_bind}:{conn.move_port} "
                        f"({exc.strerror or exc}); choose another port or use C-GET") from None
    try:
        ae = new_ae(conn)
        ae.add_requested_context(STUDY_ROOT_MOVE)
        with association(conn, ae) as assoc:
            _run_retrieve(conn, assoc, assoc.send_c_move(_identifier(study_uid, series_uid), conn.calling_ae,
                                                         STUDY_ROOT_MOVE), "C-MOVE", counter)
    finally:
        server.shutdown()


def _wado(conn: PacsConnection, study_uid: str, series_uid: str, counter: _Counter) -> None:
    import io

    from inference.pacs.dicomweb import client, web_errors

    with web_errors(conn, "WADO-RS retrieval"):
        try:
            for ds in client(conn).iter_series(study_uid, series_uid):
                raise_if_cancelled(counter.cancel, "retrieval")
                if not _complete(ds):
                    raise ValueError("a truncated instance")
                buf = io.BytesIO()
                ds.save_as(buf, enforce_file_format=True)
                counter.write(str(ds.SOPInstanceUID), buf.getvalue())
        except (ValueError, AttributeError, KeyError, EOFError) as exc:
            # dicomweb-client hands over whatever a cut multipart stream held; pydicom then fails on it
            raise PacsError("aborted", f"{conn.where()}: the connection was dropped during WADO-RS retrieval "
                            f"({type(exc).__name__}: {exc})") from None


def _complete(ds: Dataset) -> bool:
    """Whether a dataset from a multipart stream is whole: it has its SOP instance UID and, for
    native pixel data, all of it (a cut stream ends in a short part that pydicom still parses)."""
    if not ds.get("SOPInstanceUID"):
        return False
    if "PixelData" not in ds:
        return True
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and ts.is_encapsulated:
        return True  # a cut encapsulated stream fails to parse instead
    try:
        need = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * int(ds.get("NumberOfFrames", 1) or 1)
                * int(ds.BitsAllocated)) // 8
    except (AttributeError, TypeError, ValueError):
        return False
    return len(ds.PixelData) >= need
