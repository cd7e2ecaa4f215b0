"""The workstation's main window: four views (3D Slicer's four-up layout) and the label panel.

Axial top-left, 3D top-right, sagittal bottom-left, coronal bottom-right. Opening a file, a DICOM
folder or a case folder (File menu, drag and drop, command line) loads it on a worker thread with
a progress bar; a failed load keeps the current case and says which file and why.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QFrame, QGridLayout, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QVBoxLayout, QWidget)

from app.label_list import LabelList
from app.load_worker import CaseLoader, LoadedCase, LoadRequest, resolve_request
from viewer import slice_interaction
from viewer.scene_state import SceneState
from viewer.screenshot import save_screenshot
from viewer.slice_view import SliceView
from viewer.volume_view import VolumeView
from viewer.vtk_props import PLANE_RGB
from viewer.window_presets import PRESETS

TITLE = "TumorChain Workstation"
_NIFTI_FILTER = "CT images (*.nii *.nii.gz);;DICOM files (*.dcm *);;All files (*)"


class MainWindow(QMainWindow):
    def __init__(self, state: SceneState | None = None):
        super().__init__()
        self.state = state or SceneState()
        self.setWindowTitle(TITLE)
        self.setAcceptDrops(True)
        self.resize(1500, 950)
        self.loader = CaseLoader(self)
        self.loader.progress.connect(self._on_progress)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self.show_error)
        self.loader.finished.connect(self._on_load_done)
        self.last_error: str | None = None
        self.error_box: QMessageBox | None = None

        self.axial = SliceView(self.state, "axial")
        self.coronal = SliceView(self.state, "coronal")
        self.sagittal = SliceView(self.state, "sagittal")
        self.volume = VolumeView(self.state)
        self.views = {"axial": self.axial, "3d": self.volume, "sagittal": self.sagittal, "coronal": self.coronal}
        self._frames: dict[str, QFrame] = {}
        grid = QGridLayout()
        grid.setSpacing(2)
        grid.setContentsMargins(0, 0, 0, 0)
        for (name, view), (r, c) in zip(self.views.items(), ((0, 0), (0, 1), (1, 0), (1, 1))):
            frame = self._framed(name, view)
            self._frames[name] = frame
            grid.addWidget(frame, r, c)
            if isinstance(view, SliceView):
                view.probed.connect(self._show_probe)
                view.double_clicked.connect(lambda n=name: self.toggle_maximised(n))
        self._maximised: str | None = None
        central = QWidget()
        central.setLayout(grid)
        self.setCentralWidget(central)

        self.labels = LabelList(self.state)
        dock = QDockWidget("Labels", self)
        dock.setObjectName("labels")
        dock.setWidget(self.labels)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

        self.probe_label = QLabel("")
        self.progress = QProgressBar(maximumWidth=220, minimum=0, maximum=100, textVisible=True)
        self.progress.hide()
        self.statusBar().addWidget(self.probe_label, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self._build_menus()

    def _framed(self, name: str, view) -> QFrame:
        frame = QFrame()
        title = QLabel(" 3D" if name == "3d" else f" {name.capitalize()}")
        rgb = PLANE_RGB.get(name, (0.45, 0.5, 0.6))
        title.setStyleSheet(f"background: rgb({', '.join(str(int(c * 255)) for c in rgb)}); color: black;"
                            " font-weight: bold; padding: 1px;")
        lay = QVBoxLayout(frame)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(title)
        lay.addWidget(view, 1)
        return frame

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open CT File...", self.choose_file, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &DICOM Folder...", self.choose_folder, "Ctrl+Shift+O")
        self._action(file_menu, "Open Organ &Masks...", self.choose_masks, "Ctrl+M")
        file_menu.addSeparator()
        self._action(file_menu, "Save &Screenshots...", self.choose_screenshot_folder, "Ctrl+Shift+S")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        view_menu = self.menuBar().addMenu("&View")
        wl = view_menu.addMenu("Window/Level")
        for p in PRESETS:
            self._action(wl, f"{p.name.capitalize()}  ({p.window:.0f}/{p.level:.0f}, key {p.key})",
                         lambda _=False, p=p: self.state.set_window_level(p.window, p.level))
        self.fill_action = self._action(view_menu, "Label &Fill", self.state.set_fill, checkable=True)
        self.outline_action = self._action(view_menu, "Label &Outline", self.state.set_outline, checkable=True)
        self.vr_action = self._action(view_menu, "CT &Volume Rendering (3D)", self.state.set_volume_rendering,
                                      checkable=True)
        view_menu.addSeparator()
        self._action(view_menu, "&Clear Highlight", self.state.clear_highlight)
        self._action(view_menu, "&Reset Views", self.reset_views)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Mouse and Keys", self.show_bindings)
        self.state.events.connect("labels", self._sync_actions)
        self.state.events.connect("volume_rendering", self._sync_actions)
        self._sync_actions()

    def _action(self, menu, text, slot, shortcut=None, checkable=False) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.setCheckable(checkable)
        (act.toggled if checkable else act.triggered).connect(slot)
        menu.addAction(act)
        return act

    def _sync_actions(self) -> None:
        for act, on in ((self.fill_action, self.state.fill), (self.outline_action, self.state.outline),
                        (self.vr_action, self.state.volume_rendering)):
            act.blockSignals(True)
            act.setChecked(on)
            act.blockSignals(False)

    # --- opening --------------------------------------------------------------------------
    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open CT", "", _NIFTI_FILTER)
        if path:
            self.open_path(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder or case folder")
        if path:
            self.open_path(path)

    def choose_masks(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open organ masks", "", "Label images (*.nii *.nii.gz)")
        if path:
            self.open_masks(path)

    def open_path(self, path: str | Path, masks: str | Path | None = None) -> bool:
        """Start loading a CT (file, DICOM folder or case folder) and optional masks."""
        return self._start(resolve_request(path, masks))

    def open_masks(self, path: str | Path) -> bool:
        """Load organ masks for the CT on screen."""
        if self.state.ct is None:
            self.show_error(f"{path}: open a CT before its organ masks")
            return False
        return self._start(LoadRequest(None, Path(path), None, base_ct=self.state.ct))

    @property
    def loading(self) -> bool:
        return self.loader.busy

    def _start(self, request: LoadRequest) -> bool:
        if not self.loader.load(request):
            self.statusBar().showMessage("A case is still loading; try again when it is done.", 5000)
            return False
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.progress.show()
        return True

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 100))
        self.progress.setFormat(f"{message} %p%")

    def _on_loaded(self, case: LoadedCase) -> None:
        self.state.set_case(case.ct, case.masks, case.boxes)
        name = case.ct.series_description or Path(case.ct.source_path).name
        self.setWindowTitle(f"{name} - {TITLE}")
        note = f"Loaded {name} in {case.seconds:.1f} s"
        if case.warnings:
            note += " - " + "; ".join(case.warnings)
        self.statusBar().showMessage(note, 15000)

    def _on_load_done(self) -> None:
        self.progress.hide()

    def show_error(self, message: str) -> None:
        """Tell the user what failed (non-blocking dialog); the current case stays on screen."""
        self.last_error = message
        if self.error_box is not None:
            self.error_box.close()
            self.error_box.deleteLater()
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, "Could not open", message,
                                     QMessageBox.StandardButton.Ok, self)
        self.error_box.open()

    def wait_for_load(self, timeout_ms: int = 60000) -> None:
        """Block until the running load finishes and its result is delivered (scripts, tests)."""
        import time

        from PySide6.QtCore import QCoreApplication, QEventLoop

        deadline = time.monotonic() + timeout_ms / 1000
        while self.loader.busy and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.005)

    # --- drag and drop --------------------------------------------------------------------
    def dragEnterEvent(self, ev) -> None:  # noqa: N802 (Qt)
        if ev.mimeData().hasUrls() and any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:  # noqa: N802 (Qt)
        paths = [Path(u.toLocalFile()) for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0])
            ev.acceptProposedAction()

    # --- views ----------------------------------------------------------------------------
    def toggle_maximised(self, name: str) -> None:
        """Double-click a view: it fills the window; again: back to four views."""
        self._maximised = None if self._maximised == name else name
        for n, frame in self._frames.items():
            frame.setVisible(self._maximised is None or n == self._maximised)

    def reset_views(self) -> None:
        for v in (self.axial, self.coronal, self.sagittal):
            v.reset_view()
        self.volume.reset_camera()

    def render_all(self) -> None:
        for v in self.views.values():
            v.render_now()

    def save_screenshots(self, folder: str | Path, prefix: str = "") -> dict[str, Path]:
        """PNG of each view at native resolution: {view name: path}."""
        folder = Path(folder)
        return {name: save_screenshot(v.GetRenderWindow(), folder / f"{prefix}{name}.png")
                for name, v in self.views.items()}

    def save_window_png(self, path: str | Path) -> Path:
        """The whole window as the screen shows it (views, label panel, status bar)."""
        from PySide6.QtCore import QCoreApplication

        self.render_all()
        QCoreApplication.processEvents()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.screen().grabWindow(self.winId()).save(str(path), "PNG")
        return path

    def choose_screenshot_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save screenshots to")
        if folder:
            saved = self.save_screenshots(folder)
            self.statusBar().showMessage(f"Saved {len(saved)} screenshots to {folder}", 8000)

    def _show_probe(self, result) -> None:
        self.probe_label.setText(result.text() if result is not None else "")

    def show_bindings(self) -> None:
        QMessageBox.information(self, "Mouse and keys", slice_interaction.__doc__.strip())

    def closeEvent(self, ev) -> None:  # noqa: N802 (Qt)
        self.loader.shutdown()
        for v in self.views.values():
            v.detach()
        self.labels.detach()
        self.state.events.disconnect("labels", self._sync_actions)
        self.state.events.disconnect("volume_rendering", self._sync_actions)
        for v in self.views.values():
            v.Finalize()
        super().closeEvent(ev)
