"""Start-up work done before the main window exists, behind a splash screen.

Why: importing the model stack (transformers and the torch modules it pulls in) on a worker thread
froze the GUI thread for 0.3-0.4 s at a time (measured with a 10 ms timer: two such stalls per
model load), because imports hold the interpreter longer than the GIL's switch interval allows.
Importing them once here, while only a splash screen is up, leaves the worker threads with work
that releases the GIL (tensor maths, file reads), and the window never stalls on an import.
"""
from __future__ import annotations

import importlib
import logging
import time
from typing import Callable

log = logging.getLogger(__name__)

# (what the splash says, modules to import), in order
HEAVY_MODULES: list[tuple[str, tuple[str, ...]]] = [
    ("the inference engine", ("torch", "inference.pipeline", "inference.iir.loop", "inference.iir.generator")),
    ("the language model code", ("transformers", "inference.model.llm_loader", "inference.model.modeling_tumorchain",
                                 "transformers.models.qwen2.modeling_qwen2", "transformers.core_model_loading",
                                 "transformers.generation.utils")),
    ("the organ matcher", ("inference.labels.organ_matcher",)),
    ("the report writers", ("inference.report.export", "inference.report.html_report", "inference.report.pdf_report",
                            "inference.report.dicom_seg", "inference.report.dicom_sr")),
]


def preimport(say: Callable[[str], None] | None = None) -> float:
    """Import the heavy modules; returns seconds. A module that fails to import is logged and left
    to fail (with its own message) where it is used."""
    t0 = time.perf_counter()
    for what, modules in HEAVY_MODULES:
        if say is not None:
            say(f"Loading {what}…")
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # an optional part missing must not stop the workstation
                log.warning("could not import %s at start-up: %s", name, exc)
    if say is not None:
        say("Compiling the organ vocabulary…")
    try:  # the matcher compiles ~2,100 phrases into one regex on first use: C code holding the GIL
        from inference.labels import merged_labels, organs_named

        organs_named("The liver and the pancreatic head.", merged_labels())
    except Exception as exc:
        log.warning("organ matcher warm-up failed: %s", exc)
    return time.perf_counter() - t0


def with_splash(app, work: Callable[[Callable[[str], None]], object]):
    """Run ``work(say)`` with a splash screen that shows ``say``'s messages."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
    from PySide6.QtWidgets import QSplashScreen

    pix = QPixmap(520, 200)
    pix.fill(QColor(32, 34, 38))
    p = QPainter(pix)
    p.setPen(QColor(230, 230, 230))
    p.setFont(QFont("Sans", 20, QFont.Weight.Bold))
    p.drawText(24, 70, "TumorChain Workstation")
    p.setFont(QFont("Sans", 10))
    p.setPen(QColor(243, 201, 105))
    p.drawText(24, 100, "Research software, not a medical device")
    p.end()
    splash = QSplashScreen(pix)
    splash.show()
    app.processEvents()

    def say(message: str) -> None:
        splash.showMessage(message, Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft, QColor(200, 200, 200))
        app.processEvents()

    try:
        return work(say), splash
    except BaseException:
        splash.close()
        raise
