"""Edit > Settings: model folder, device, TotalSegmentator weights, round limit, default task,
reviewer; with the model card one click away. OK keeps them (QSettings, per user)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from app.analysis_worker import model_problem
from app.settings import AppSettings, TASK_ORDER, TASK_TITLES

DEVICE_NAMES = {"auto": "Automatic (GPU when present)", "cuda": "GPU (CUDA)", "cpu": "CPU"}
BACKEND_NAMES = {"totalsegmentator": "TotalSegmentator", "synthetic": "Synthetic cohort masks (demo/test cases)"}


def _folder_row(edit: QLineEdit, title: str, parent: QWidget) -> QHBoxLayout:
    browse = QPushButton("Browse…")
    browse.clicked.connect(lambda: (p := QFileDialog.getExistingDirectory(parent, title, edit.text())) and edit.setText(p))
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(browse)
    return row


def cuda_note() -> str:
    """What the GPU choice will find, and why not when there is none (torch is imported only when
    this dialog opens)."""
    from inference.model.gpu_status import gpu_status

    return gpu_status().text


class SettingsDialog(QDialog):
    def __init__(self, settings: AppSettings, parent=None, check_gpu: bool = True):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.resize(620, 0)
        self.original = settings
        self.model_dir = QLineEdit(settings.model_dir, placeholderText="a TumorChain model folder (config.json, model.safetensors, llm/)")
        self.model_status = QLabel()
        self.model_status.setWordWrap(True)
        self.model_status.setObjectName("cardMeta")
        self.device = QComboBox()
        for key, name in DEVICE_NAMES.items():
            self.device.addItem(name, key)
        self.device.setCurrentIndex(self.device.findData(settings.device))
        self.gpu_note = QLabel(cuda_note() if check_gpu else "")
        self.gpu_note.setObjectName("cardMeta")
        self.weights = QLineEdit(settings.totalseg_weights_dir,
                                 placeholderText="TOTALSEG_HOME_DIR (default: $TOTALSEG_HOME_DIR or ~/.totalsegmentator)")
        self.backend = QComboBox()
        for key, name in BACKEND_NAMES.items():
            self.backend.addItem(name, key)
        self.backend.setCurrentIndex(self.backend.findData(settings.segmentation_backend))
        self.fast = QCheckBox("Fast TotalSegmentator model (3 mm; much quicker on a CPU)")
        self.fast.setChecked(settings.totalseg_fast)
        self.rounds = QSpinBox(minimum=1, maximum=12, value=settings.max_rounds)
        self.rounds.setToolTip("IIR stops earlier when no new organ is named")
        self.tokens = QSpinBox(minimum=8, maximum=4096, singleStep=64, value=settings.max_new_tokens)
        self.task = QComboBox()
        for t in TASK_ORDER:
            self.task.addItem(TASK_TITLES[t], t)
        self.task.setCurrentIndex(self.task.findData(settings.default_task))
        self.reviewer = QLineEdit(settings.reviewer, placeholderText="your name as it appears on signed reports")
        self.deid = QCheckBox("Remove patient identifiers from exports by default")
        self.deid.setChecked(settings.deidentify_exports)
        self.card = QPushButton("Model card…")
        self.card.clicked.connect(self.show_model_card)
        self.pacs_json = settings.pacs_connections
        self.pacs_button = QPushButton("PACS connections…")
        self.pacs_button.clicked.connect(self.edit_pacs)
        self.pacs_note = QLabel()
        self.pacs_note.setObjectName("cardMeta")
        self._show_pacs()

        form = QFormLayout()
        model_row = _folder_row(self.model_dir, "Model folder", self)
        model_row.addWidget(self.card)
        form.addRow("Model folder", model_row)
        form.addRow("", self.model_status)
        form.addRow("Device", self.device)
        form.addRow("", self.gpu_note)
        form.addRow("Segmentation", self.backend)
        form.addRow("TotalSegmentator weights", _folder_row(self.weights, "TotalSegmentator weights folder", self))
        form.addRow("", self.fast)
        form.addRow("Round limit", self.rounds)
        form.addRow("Max new tokens per round", self.tokens)
        form.addRow("Default task", self.task)
        form.addRow("Reviewer", self.reviewer)
        form.addRow("", self.deid)
        pacs_row = QHBoxLayout()
        pacs_row.addWidget(self.pacs_button)
        pacs_row.addWidget(self.pacs_note, 1)
        form.addRow("PACS", pacs_row)
        self.installed = QLabel(objectName="cardMeta", wordWrap=True)
        self.installed.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Installed", self.installed)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(buttons)
        self.model_dir.textChanged.connect(self._check_model)
        self.weights.editingFinished.connect(self._show_installed)
        self._check_model()

    def _check_model(self) -> None:
        problem = model_problem(replace(self.original, model_dir=self.model_dir.text().strip()))
        self.model_status.setText(problem or f"TumorChain model: {Path(self.model_dir.text()).name}")
        self.model_status.setStyleSheet("color: #f08c7a;" if problem else "color: #8fd19e;")
        self.card.setEnabled(problem is None)
        self._show_installed()

    def _show_installed(self) -> None:
        """Models, TotalSegmentator weights and environment this workstation has (app/installed_summary.py)."""
        from app.installed_summary import installed_lines

        current = replace(self.original, model_dir=self.model_dir.text().strip(),
                          totalseg_weights_dir=self.weights.text().strip())
        self.installed.setText("\n".join(installed_lines(current, check_gpu=False)))

    def settings(self) -> AppSettings:
        """The settings as edited (the caller saves them when the dialog was accepted)."""
        return replace(self.original, model_dir=self.model_dir.text().strip(), device=self.device.currentData(),
                       totalseg_weights_dir=self.weights.text().strip(), segmentation_backend=self.backend.currentData(),
                       totalseg_fast=self.fast.isChecked(), max_rounds=self.rounds.value(),
                       max_new_tokens=self.tokens.value(), default_task=self.task.currentData(),
                       reviewer=self.reviewer.text().strip(), deidentify_exports=self.deid.isChecked(),
                       pacs_connections=self.pacs_json).validated()

    def edit_pacs(self) -> None:
        from app.pacs_settings_dialog import PacsConnectionsDialog

        dlg = PacsConnectionsDialog(self.pacs_json, self)
        if dlg.exec():
            self.pacs_json = dlg.connections_json()
            self._show_pacs()

    def _show_pacs(self) -> None:
        from inference.pacs.connection import connections_from_json

        names = [c.name for c in connections_from_json(self.pacs_json)]
        self.pacs_note.setText(", ".join(names) if names else "none configured")

    def show_model_card(self) -> None:
        from app.model_card_dialog import ModelCardDialog

        ModelCardDialog(self.model_dir.text().strip(), self).exec()
