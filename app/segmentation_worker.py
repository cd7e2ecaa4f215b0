"""Organ masks for the CT on screen, made by a segmentation expert off the GUI thread.

``segment_case`` is plain Python (the expert, then the same prepare_masks the loader uses, so
the GUI thread only swaps arrays in); ``SegmentationWorker`` runs it on its own thread
with progress and cancel. TotalSegmentator runs as a subprocess whose process group a cancel
kills (inference/segmentation/totalseg_backend.py).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject

from app.job_runner import JobRunner
from app.prepared_masks import PreparedMasks, prepare_masks
from app.settings import AppSettings
from inference.ct_volume import CTVolume

ExpertFactory = Callable[..., Any]  # (backend name, **options) -> SegmentationExpert


@dataclass
class SegmentedMasks:
    ct: CTVolume  # the CT they belong to (the case may have changed meanwhile)
    masks: PreparedMasks
    backend: str
    warnings: list[str]


def expert_options(backend: str, settings: AppSettings, ct: CTVolume) -> dict[str, Any]:
    """make_expert options for a backend from the user's settings."""
    if backend == "totalsegmentator":
        opts: dict[str, Any] = {"fast": settings.totalseg_fast, "liver_segments": False}
        if settings.totalseg_weights_dir:
            opts["home_dir"] = settings.totalseg_weights_dir
        if settings.device == "cpu":
            opts["device"] = "cpu"
        elif settings.device == "cuda":
            opts["device"] = "gpu"
        return opts
    if backend == "synthetic":
        src = Path(ct.source_path)
        return {"case_dir": str(src if src.is_dir() else src.parent)}
    return {}


def segment_case(ct: CTVolume, backend: str, options: dict[str, Any], progress, cancel: threading.Event,
                 factory: ExpertFactory | None = None) -> SegmentedMasks:
    if factory is None:
        from inference.segmentation.expert import make_expert as factory
    expert = factory(backend, **options)
    masks = expert.segment(ct, lambda f, m: progress(0.9 * f, m), cancel)
    prepared = prepare_masks(masks, ct, None, lambda f, m: progress(0.92 + 0.08 * f, m))
    progress(1.0, "organ masks ready")
    return SegmentedMasks(ct, prepared, masks.backend, list(masks.details.get("warnings", [])))


class SegmentationWorker(QObject):
    """``start(ct, backend, settings)``; the runner's signals report the outcome
    (succeeded carries a SegmentedMasks)."""

    def __init__(self, parent=None, factory: ExpertFactory | None = None, runner=JobRunner):
        super().__init__(parent)
        self.runner = runner("segmentation", self)
        self.factory = factory  # tests pass a fake expert factory

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def start(self, ct: CTVolume, backend: str, settings: AppSettings) -> bool:
        options = expert_options(backend, settings, ct)
        factory = self.factory
        return self.runner.start(lambda progress, cancel: segment_case(ct, backend, options, progress, cancel, factory))

    def cancel(self) -> None:
        self.runner.cancel()

    def shutdown(self) -> None:
        self.runner.shutdown()
