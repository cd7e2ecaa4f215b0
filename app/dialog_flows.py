"""What the menus and buttons open: file choosers, recent cases, settings, model card, run
details, export. Each flow is a function of the main window, so the window stays a thin shell."""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMessageBox

_CT_FILTER = "CT images (*.nii *.nii.gz);;DICOM files (*.dcm *);;All files (*)"


def choose_file(win) -> None:
    path, _ = QFileDialog.getOpenFileName(win, "Open CT", "", _CT_FILTER)
    if path:
        win.open_path(path)


def choose_folder(win) -> None:
    path = QFileDialog.getExistingDirectory(win, "Open DICOM folder or case folder")
    if path:
        win.open_path(path)


def choose_masks(win) -> None:
    path, _ = QFileDialog.getOpenFileName(win, "Open organ masks", "", "Label images (*.nii *.nii.gz)")
    if path:
        win.open_masks(path)


def choose_screenshot_folder(win) -> None:
    folder = QFileDialog.getExistingDirectory(win, "Save screenshots to")
    if folder:
        saved = win.save_screenshots(folder)
        win.statusBar().showMessage(f"Saved {len(saved)} screenshots to {folder}", 8000)


def fill_recent_menu(win) -> None:
    menu = win.recent_menu
    menu.clear()
    entries = win.recent.entries()
    for e in entries:
        act = menu.addAction(e.label())
        act.setEnabled(e.exists())
        if not e.exists():
            act.setToolTip(f"{e.path} is not there any more")
        act.triggered.connect(lambda _=False, e=e: win.open_path(e.path, e.masks))
    if not entries:
        menu.addAction("(none yet)").setEnabled(False)
    else:
        menu.addSeparator()
        menu.addAction("Clear list").triggered.connect(win.recent.clear)


def edit_settings(win, dialog=None) -> bool:
    """Open Settings; on OK keep them (QSettings) and use them from the next analysis on (the
    window and the panel follow the store's change event)."""
    from app.settings_dialog import SettingsDialog

    dlg = dialog or SettingsDialog(win.settings, win)
    if dialog is None and not dlg.exec():
        return False
    win.settings_store.set(dlg.settings())
    win.settings_store.save()
    win.statusBar().showMessage("Settings saved.", 5000)
    return True


def show_model_card(win) -> None:
    from app.analysis_worker import model_problem
    from app.model_card_dialog import ModelCardDialog

    problem = model_problem(win.settings)
    if problem:
        win.show_error(problem, "Model card")
        return
    ModelCardDialog(win.settings.model_dir, win).exec()


def show_run_details(win) -> None:
    from app.run_details_dialog import RunDetailsDialog

    c = win.controller
    if c.run is None:
        win.statusBar().showMessage("No analysis on screen yet.", 5000)
        return
    path = c.store.folder(c.run.case.content_hash)
    RunDetailsDialog(c.run, str(path), win).exec()


def default_export_dir(win) -> Path:
    c = win.controller
    base = Path(win.settings.export_dir) if win.settings.export_dir else Path.home() / "TumorChain exports"
    case_id = c.run.case.case_id if c.run else "case"
    stamp = (c.run.created[:16].replace(":", "").replace("-", "") if c.run else "").replace("T", "_")
    return base / f"{case_id}_{stamp}"


def export_report(win, choice=None) -> bool:
    """Ask how to export (or take ``choice``), capture the key images, export on the worker."""
    from app.export_dialog import ExportDialog
    from app.key_image_capture import capture_key_images
    from inference.report.dicom_source import dicom_unavailable_reason, has_dicom_source

    c = win.controller
    problem = c.export_problem()
    if problem:
        win.show_error(problem, "Export")
        return False
    if choice is None:
        reason = None if has_dicom_source(c.ct) else dicom_unavailable_reason(c.ct)
        dlg = ExportDialog(default_export_dir(win), reason, win.settings.deidentify_exports, win)
        if not dlg.exec():
            return False
        choice = dlg.choice()
    images = None
    if choice.screenshots and not choice.deidentify:
        # VTK renders on this thread: about a second in which the window cannot answer, so say so
        win.statusBar().showMessage("Capturing key images for the export...")
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            images = capture_key_images(win, c, c.run)
        finally:
            QGuiApplication.restoreOverrideCursor()
    win.settings_store.update(export_dir=str(choice.out_dir.parent))
    win.settings_store.save()
    return c.export(choice.out_dir, choice.formats, choice.deidentify, images)


def show_export_result(win, result) -> None:
    win.last_export = result
    files = sorted(p.name + ("/" if p.is_dir() else "") for k, p in result.paths.items() if not k.startswith("key_image"))
    text = (f"Exported to {result.out_dir}:\n  " + "\n  ".join(files)
            + f"\n\n{len([k for k in result.paths if k.startswith('key_image')])} key images; "
            f"{result.timings_ms.get('total_ms', 0) / 1000:.1f} s.")
    if result.notes:
        text += "\n\nNotes:\n- " + "\n- ".join(result.notes)
    win.statusBar().showMessage(f"Report exported to {result.out_dir}", 15000)
    box = QMessageBox(QMessageBox.Icon.Information, "Export finished", text, QMessageBox.StandardButton.Ok, win)
    box.open()
    win.export_box = box


def show_about(win) -> None:
    QMessageBox.about(win, "About TumorChain Workstation", (
        "<b>TumorChain Workstation</b><br>Traceable, organ-guided chain-of-thought analysis of abdominal CT "
        "(after Li et al., <i>TumorChain</i>).<br><br><b>Research software, not a medical device.</b> "
        "Every AI statement is a draft for the radiologist to agree with, edit or reject.<br><br>"
        f"Model folder: {html.escape(win.settings.model_dir or '(none)')}"))
