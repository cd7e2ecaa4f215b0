"""The patient and study line above the views (what a reader checks before reading): name,
id, birth date, sex, study date, series; for NIfTI input the file and grid instead; and, in red,
when the volume does not look like CT (inference/ct_io/ct_plausibility.py)."""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtWidgets import QLabel, QSizePolicy


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def banner_text(ct) -> str:
    if ct is None:
        return "No case open: File > Open, drag a CT here, or File > Open Demo Case"
    s = ct.study
    grid = " x ".join(str(n) for n in ct.shape) + " @ " + " x ".join(f"{v:.2g}" for v in ct.spacing) + " mm"
    parts = []
    if s.patient_name or s.patient_id:
        parts.append(f"<b>{html.escape((s.patient_name or '(no name)').replace('^', ', '))}</b>")
        if s.patient_id:
            parts.append(f"ID {html.escape(s.patient_id)}")
        if s.patient_birth_date:
            parts.append(f"born {_date(s.patient_birth_date)}" + (f" ({s.patient_sex})" if s.patient_sex else ""))
        if s.study_date:
            parts.append(f"study {_date(s.study_date)}")
        if s.accession_number:
            parts.append(f"acc. {html.escape(s.accession_number)}")
    else:
        parts.append(f"<b>{html.escape(Path(ct.source_path).name)}</b>")
    parts.append(html.escape(ct.series_description or ct.modality))
    parts.append(grid)
    text = "  ·  ".join(p for p in parts if p)  # values are escaped where they are put in
    check = ct.plausibility()
    if not check.looks_like_ct:  # viewable, but the model reads CT only: say so where the reader looks
        text += '  ·  <span style="color:#ff6b5a"><b>Does not look like CT</b> (hover for why)</span>'
    return text


def banner_tooltip(ct) -> str:
    if ct is None or ct.plausibility().looks_like_ct:
        return ""
    return "Does not look like CT: " + "; ".join(ct.plausibility().reasons) + (
        ". It can be viewed; the analysis asks before it runs on it.")


class PatientBanner(QLabel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("patientBanner")
        # a long line (many series details, the non-CT note) must never widen the window
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.show_case(None)

    def show_case(self, ct) -> None:
        self.setText(banner_text(ct))
        self.setToolTip(banner_tooltip(ct))
