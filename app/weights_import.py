"""Edit > Import Weights Pack: verify and install a pack on a worker thread with a progress dialog,
then say what is now available (inference/weights_pack does the work; nothing is installed unless
the whole pack verifies)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog

from app.job_runner import JobRunner

PACK_FILTER = "Weights packs (*.tar *.tcpack *.tar.gz *.tgz *.tar.xz *.txz);;All files (*)"


class WeightsImportFlow:
    """One import at a time; ``result`` / ``error`` keep the last outcome (tests read them)."""

    def __init__(self, win, runner=JobRunner):
        self.win = win
        self.runner = runner("Weights import", win)
        self.runner.progress.connect(self._progress)
        self.runner.succeeded.connect(self._succeeded)
        self.runner.failed.connect(self._failed)
        self.runner.cancelled.connect(self._failed)
        self.runner.finished.connect(self._finished)
        self.dialog: QProgressDialog | None = None
        self.box: QMessageBox | None = None
        self.result = None
        self.error: str | None = None
        self.fractions: list[float] = []  # progress seen by the last import, in order

    def choose_and_start(self) -> bool:
        path, _ = QFileDialog.getOpenFileName(self.win, "Import weights pack", "", PACK_FILTER)
        return bool(path) and self.start(Path(path))

    def start(self, pack: Path) -> bool:
        from inference.weights_pack.importer import import_pack
        from inference.weights_pack.locations import Targets

        if self.runner.busy:
            return False
        self.result, self.error, self.fractions = None, None, []
        targets = Targets.for_settings(self.win.settings.totalseg_weights_dir)
        self.dialog = QProgressDialog(f"Verifying {pack.name}…", "Cancel", 0, 1000, self.win)
        self.dialog.setWindowTitle("Import weights pack")
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(0)
        self.dialog.canceled.connect(self.runner.cancel)
        return self.runner.start(lambda progress, cancel: import_pack(pack, targets, progress, cancel))

    def _progress(self, fraction: float, message: str) -> None:
        self.fractions.append(fraction)
        dialog = self.dialog
        if dialog is not None:
            dialog.setLabelText(message[-90:])
            # last: a modal dialog's setValue processes events, which may deliver the end of the job
            dialog.setValue(int(fraction * 1000))

    def _finished(self) -> None:
        if self.dialog is not None:
            self.dialog.reset()
            self.dialog.deleteLater()
            self.dialog = None

    def _failed(self, message: str) -> None:
        self.error = message
        self.win.show_error(message, "Weights pack refused")

    def _succeeded(self, report) -> None:
        from app.installed_summary import installed_lines
        from inference.weights_pack.manifest import ItemKind

        self.result = report
        lines = report.lines() + ["", "Now available:"] + installed_lines(self.win.settings, check_gpu=False)
        self.win.statusBar().showMessage(f"Installed {len(report.installed)} item(s) from {report.pack.name}", 15000)
        box = QMessageBox(QMessageBox.Icon.Information, "Weights pack installed", "\n".join(lines),
                          QMessageBox.StandardButton.Ok, self.win)
        models = [i.folder for i in report.installed if i.item.kind is ItemKind.MODEL_FOLDER]
        if len(models) == 1:
            use = box.addButton(f"Use model {models[0].name}", QMessageBox.ButtonRole.AcceptRole)
            use.clicked.connect(lambda: self._use_model(models[0]))
        box.open()
        self.box = box

    def _use_model(self, folder: Path) -> None:
        self.win.settings_store.update(model_dir=str(folder))
        self.win.settings_store.save()
        self.win.statusBar().showMessage(f"Model folder: {folder}", 8000)
