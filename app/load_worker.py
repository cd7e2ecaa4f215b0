"""Loading a case off the GUI thread: CT (NIfTI file or DICOM folder) plus optional organ masks.

``load_case`` is plain Python (numpy, no Qt, no VTK) and also does the whole-volume label passes
(app/prepared_masks.py) so the GUI thread only receives ready arrays. ``CaseLoader`` runs
it on one long-lived QThread and hands the result to the GUI thread by signal.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from app.job_runner import JobRunner
from app.prepared_masks import PreparedMasks, prepare_masks
from inference.case_folder import resolve_case
from inference.ct_io import load_ct
from inference.ct_volume import CTVolume
from inference.errors import Cancelled, InputError, TumorChainError
from inference.segmentation.precomputed import PrecomputedExpert

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class LoadRequest:
    """What to open: a CT path and optional masks (organs, substructure parts)."""

    ct: Path | None  # None: masks only, for the CT already shown (``base_ct``)
    masks: Path | None = None
    parts: Path | None = None
    base_ct: CTVolume | None = None
    scheme: str = "auto"  # label scheme of ``masks``: auto, totalseg or merged


@dataclass
class LoadedCase:
    ct: CTVolume
    masks: PreparedMasks | None
    request: LoadRequest
    seconds: float
    warnings: list[str] = field(default_factory=list)


def resolve_request(path: str | Path, masks: str | Path | None = None) -> LoadRequest:
    """A case folder opens with its masks (inference.case_folder); any other path goes to
    ``load_ct`` as it is."""
    case = resolve_case(path, masks)
    return LoadRequest(case.ct, case.organs, case.parts, scheme=case.scheme)


def load_case(request: LoadRequest, progress: Callable[[float, str], None] | None = None,
              cancel: threading.Event | None = None) -> LoadedCase:
    """Read the CT (or reuse ``base_ct``) and the masks; raises InputError naming the file."""
    t0 = time.perf_counter()
    say = progress or (lambda f, m: None)
    if request.ct is not None:
        say(0.05, f"reading {request.ct.name}")
        ct = load_ct(request.ct)
    elif request.base_ct is not None:
        ct = request.base_ct
    else:
        raise InputError(None, "no CT to show masks on: open a CT first")
    if cancel is not None and cancel.is_set():
        raise Cancelled("loading cancelled")
    prepared = None
    warnings = list(ct.warnings)
    if request.masks is not None:
        say(0.55, f"reading {request.masks.name}")
        expert = PrecomputedExpert(request.masks, scheme=request.scheme, parts_path=request.parts)
        masks = expert.segment(ct, progress=lambda f, m: say(0.55 + 0.3 * f, m), cancel=cancel)
        warnings += list(masks.details.get("warnings", []))
        prepared = prepare_masks(masks, ct, str(request.masks), lambda f, m: say(0.9 + 0.05 * f, m))
    say(0.95, "fingerprinting the case")
    ct.content_hash()  # cached on the CT: the GUI thread later reads it for free
    say(1.0, "loaded")
    return LoadedCase(ct, prepared, request, time.perf_counter() - t0, warnings)


def _load_job(request: LoadRequest):
    """load_case as a JobRunner job; unexpected failures still name the file."""
    source = request.ct or request.masks

    def job(progress, cancel: threading.Event) -> LoadedCase:
        try:
            return load_case(request, progress, cancel)
        except TumorChainError:  # InputError and friends name the file and the problem; Cancelled
            raise
        except MemoryError:
            raise InputError(source, "not enough memory to load this case") from None
        except Exception as exc:  # a bug or a library failure: log it, tell the user which file
            log.error("loading %s failed", request, exc_info=True)
            raise InputError(source, f"could not be loaded ({type(exc).__name__}: {exc})") from None
    return job


class CaseLoader(QObject):
    """Loads cases on one long-lived worker thread (app.job_runner.JobRunner) for the window's
    lifetime: a new thread per load would leave each load's freed memory in a fresh malloc arena
    (RSS grew ~30 MB per case that way).

    Signals, delivered on the GUI thread: ``progress(fraction, message)``, ``loaded(LoadedCase)``,
    ``failed(message)``, ``finished()`` after either of the two.
    """

    progress = Signal(float, str)
    loaded = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, parent=None, runner=JobRunner):
        super().__init__(parent)
        self._runner = runner("case-loader", self)
        self._runner.progress.connect(self.progress)
        self._runner.succeeded.connect(self.loaded)
        self._runner.failed.connect(self.failed)
        self._runner.cancelled.connect(self._on_cancelled)
        self._runner.finished.connect(self.finished)

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def load(self, request: LoadRequest) -> bool:
        """Start loading; False (and nothing happens) while another load is running."""
        return self._runner.start(_load_job(request))

    def cancel(self) -> None:
        self._runner.cancel()

    def _on_cancelled(self, _message: str) -> None:
        self.failed.emit("Loading was cancelled.")

    def shutdown(self) -> None:
        """Cancel any load and stop the thread (the window is closing); safe to call twice."""
        self._runner.shutdown()
