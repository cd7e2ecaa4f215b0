"""One long-lived worker thread that runs one job at a time off the GUI thread.

A job is a plain function ``job(progress, cancel) -> result``: ``progress(fraction, message)``
may be called from the worker thread (it becomes a queued Qt signal), ``cancel`` is a
threading.Event the job checks (inference raises Cancelled when it is set). The runner turns
the outcome into signals on the GUI thread: ``succeeded(result)``, ``failed(message)`` (the
message names the file and the problem: TumorChainError text, never a traceback),
``cancelled(message)``, then ``finished()``. Segmentation, analysis and export use one each.

``SyncJobRunner`` has the same interface and runs the job inside ``start``: controller tests use
it (no threads, no event loop), and both runners turn an outcome into the same signal.
"""
from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from inference.errors import Cancelled, TumorChainError

log = logging.getLogger(__name__)

Job = Callable[[Callable[[float, str], None], threading.Event], Any]


def run_job(job: Job, cancel: threading.Event, what: str, signals) -> None:
    """Run ``job`` and report its outcome on ``signals`` (progress, succeeded, failed or
    cancelled), whichever runner calls it; the caller signals the end."""
    try:
        result = job(signals.progress.emit, cancel)
    except Cancelled as exc:
        signals.cancelled.emit(str(exc) or f"{what} cancelled")
    except TumorChainError as exc:  # InputError, ModelError, SegmentationError: say what and why
        signals.failed.emit(str(exc))
    except MemoryError:
        signals.failed.emit(f"{what}: not enough memory")
    except Exception as exc:  # a bug or a library failure: log the traceback, tell the user briefly
        log.error("%s failed", what, exc_info=True)
        signals.failed.emit(f"{what} failed ({type(exc).__name__}: {exc})")
    else:
        signals.succeeded.emit(result)


class _Worker(QObject):
    progress = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)
    done = Signal()

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    @Slot(object, object)
    def run(self, job: Job, cancel: threading.Event) -> None:  # worker thread: no widgets, no VTK
        try:
            run_job(job, cancel, self.what, self)
        finally:
            self.done.emit()


class JobRunner(QObject):
    """Signals arrive on the GUI thread: progress, succeeded, failed, cancelled, finished."""

    progress = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)
    finished = Signal()
    _submit = Signal(object, object)

    def __init__(self, what: str, parent=None):
        super().__init__(parent)
        self.what = what
        self._thread = QThread(self)
        self._thread.setObjectName(what)
        self._worker = _Worker(what)
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run)
        self._worker.progress.connect(self.progress)
        self._worker.succeeded.connect(self.succeeded)
        self._worker.failed.connect(self.failed)
        self._worker.cancelled.connect(self.cancelled)
        self._worker.done.connect(self._on_done)
        self._cancel: threading.Event | None = None
        self._thread.start()
        ref = weakref.ref(self)  # a QThread destroyed while running aborts the process
        atexit.register(lambda: (lambda me: me is not None and me.shutdown())(ref()))

    @property
    def busy(self) -> bool:
        return self._cancel is not None

    def start(self, job: Job) -> bool:
        """Run ``job`` on the worker thread; False (nothing happens) while another job runs."""
        if self.busy:
            return False
        self._cancel = threading.Event()
        self._submit.emit(job, self._cancel)
        return True

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def _on_done(self) -> None:
        self._cancel = None
        self.finished.emit()

    def shutdown(self) -> None:
        """Cancel the job and stop the thread, waiting for the job to notice (a QThread destroyed
        while running aborts the process; a model load cannot be interrupted half-way); safe to
        call twice."""
        self.cancel()
        try:
            self._thread.quit()
            self._thread.wait()
        except RuntimeError:  # the C++ object is already gone
            pass


class SyncJobRunner(QObject):
    """JobRunner's interface, running each job at once on the calling thread (tests, scripts):
    ``start`` returns after the job's signals have been delivered."""

    progress = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)
    finished = Signal()

    def __init__(self, what: str, parent=None):
        super().__init__(parent)
        self.what = what
        self._cancel: threading.Event | None = None

    @property
    def busy(self) -> bool:
        return self._cancel is not None

    def start(self, job: Job) -> bool:
        if self.busy:
            return False
        self._cancel = threading.Event()
        try:
            run_job(job, self._cancel, self.what, self)
        finally:
            self._cancel = None  # idle before ``finished``: a listener may start the next job
            self.finished.emit()
        return True

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def shutdown(self) -> None:
        self.cancel()
