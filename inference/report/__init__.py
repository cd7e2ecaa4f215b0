"""The traceable report: the radiologist's review, key images, and exports (JSON, HTML, PDF,
DICOM SEG + SR), headless. Never imports Qt or VTK.

    from inference.report import Review, export_report
    review = Review.for_run(run, reviewer="Dr A. Reader")
    review.decide("round-1", "agreed"); review.decide("conclusion", "edited", text="...")
    review.sign(confirm=True)
    result = export_report(run, review, ct, masks, "out/", deidentify=True)
"""
from __future__ import annotations

from inference.report.export import FORMATS, ExportResult, export_report
from inference.report.key_images import KeyImage, render_key_image, screenshot_key_image
from inference.report.review import CONCLUSION, DECISIONS, Review, ReviewError, round_key, run_key
from inference.report.review_store import (ReviewAutosaver, load_review, open_review, review_path_for_run,
                                           save_review, user_review_path)
from inference.report.traceable_report import TraceableReport, build_report

__all__ = [
    "CONCLUSION", "DECISIONS", "FORMATS", "ExportResult", "KeyImage", "Review", "ReviewAutosaver", "ReviewError",
    "TraceableReport", "build_report", "export_report", "load_review", "open_review", "render_key_image",
    "review_path_for_run", "round_key", "run_key", "save_review", "screenshot_key_image", "user_review_path",
]
