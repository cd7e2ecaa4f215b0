"""File > Export Report: which formats, which folder, and whether to remove patient identifiers.

The traceable report is the run record plus the review (inference/report does the writing).
Key images are the viewer's ROI screenshots unless the export is de-identified (a screenshot
may show identifiers; then every key image is rendered from the CT instead).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QVBoxLayout)

FORMAT_NAMES = {"json": "JSON (run.json, review.json, report.json, key images)", "html": "HTML report",
                "pdf": "PDF report", "dicom": "DICOM SEG + SR"}


@dataclass
class ExportChoice:
    out_dir: Path
    formats: list[str]
    deidentify: bool
    screenshots: bool


class ExportDialog(QDialog):
    def __init__(self, default_dir: str | Path, dicom_reason: str | None, deidentify: bool, parent=None):
        """dicom_reason: why DICOM SEG/SR cannot be written for this case (None when it can)."""
        super().__init__(parent)
        self.setWindowTitle("Export traceable report")
        self.resize(560, 0)
        self.boxes: dict[str, QCheckBox] = {}
        for key, name in FORMAT_NAMES.items():
            box = QCheckBox(name)
            box.setChecked(True)
            self.boxes[key] = box
        if dicom_reason:
            self.boxes["dicom"].setChecked(False)
            self.boxes["dicom"].setEnabled(False)
            self.boxes["dicom"].setToolTip(dicom_reason)
        self.folder = QLineEdit(str(default_dir))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.deidentify = QCheckBox("Remove patient identifiers from every file (de-identify)")
        self.deidentify.setChecked(deidentify)
        self.screenshots = QCheckBox("Use the viewer's ROI screenshots as key images")
        self.screenshots.setChecked(not deidentify)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setObjectName("cardMeta")

        fmts = QVBoxLayout()
        for box in self.boxes.values():
            fmts.addWidget(box)
        if dicom_reason:
            why = QLabel(f"DICOM: {dicom_reason}")
            why.setWordWrap(True)
            why.setObjectName("cardMeta")
            fmts.addWidget(why)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Formats", fmts)
        form.addRow("Folder", row)
        form.addRow("", self.deidentify)
        form.addRow("", self.screenshots)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.note)
        lay.addWidget(self.buttons)
        self.deidentify.toggled.connect(self._sync)
        for box in self.boxes.values():
            box.toggled.connect(self._sync)
        self._sync()

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export to", self.folder.text())
        if path:
            self.folder.setText(path)

    def _sync(self) -> None:
        deid = self.deidentify.isChecked()
        self.screenshots.setEnabled(not deid)
        if deid:
            self.screenshots.setChecked(False)
        self.note.setText("De-identified: names, ids and birth dates are removed, dates shifted, UIDs replaced; "
                          "key images are rendered from the CT." if deid else
                          "The export carries the patient's identifiers as the CT does.")
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(bool(self.formats()))

    def formats(self) -> list[str]:
        return [k for k, box in self.boxes.items() if box.isChecked() and box.isEnabled()]

    def choice(self) -> ExportChoice:
        return ExportChoice(Path(self.folder.text().strip()).expanduser(), self.formats(),
                            self.deidentify.isChecked(), self.screenshots.isChecked() and not self.deidentify.isChecked())
