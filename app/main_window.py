"""The workstation's main window: patient banner, four views (3D Slicer's four-up layout), the
label panel on the left, the reasoning panel on the right, menus and a toolbar.

Axial top-left, 3D top-right, sagittal bottom-left, coronal bottom-right. The window is thin:
the case, the run and the review live in the controller's case model, the settings in one
SettingsStore; long work runs on the controller's worker threads, and a step that fails keeps
the case on screen and says which file and why.
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFrame, QGridLayout, QLabel, QMainWindow, QMessageBox, QProgressBar,
                               QVBoxLayout, QWidget)

from app import dialog_flows, pacs_flows
from app.case_controller import CaseController
from app.label_list import LabelList
from app.domain_banner import DomainBanner
from app.patient_banner import PatientBanner
from inference.case_folder import CT_NAMES, resolve_case
from app.reasoning_panel import ReasoningPanel
from app.recent_cases import RecentCases
from app.settings import AppSettings, load_settings, qsettings, save_settings
from app.settings_store import SettingsStore
from viewer import slice_interaction
from viewer.scene_state import SceneState
from viewer.screenshot import save_screenshot
from viewer.slice_view import SliceView
from viewer.volume_view import VolumeView
from viewer.vtk_props import PLANE_RGB
from viewer.window_presets import PRESETS

TITLE = "TumorChain Workstation"


class MainWindow(QMainWindow):
    def __init__(self, state: SceneState | None = None, settings: AppSettings | None = None,
                 preload_model: bool = False, expert_factory=None):
        super().__init__()
        self.state = state or SceneState()
        self.store = qsettings()
        self.settings_store = SettingsStore(settings or load_settings(self.store),
                                            writer=partial(save_settings, store=self.store))
        self.recent = RecentCases(self.store)
        self.controller = CaseController(self.state, self.settings_store, self, expert_factory=expert_factory,
                                         preload_model=preload_model)
        self.loader = self.controller.loader
        self.setWindowTitle(TITLE)
        self.setAcceptDrops(True)
        self.resize(1700, 1000)
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
        self.banner = PatientBanner()
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(self.banner)
        self.domain_banner = DomainBanner()
        outer.addWidget(self.domain_banner)
        outer.addLayout(grid, 1)
        self.setCentralWidget(central)

        self.labels = LabelList(self.state)
        self._dock("Labels", "labels", self.labels, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.panel = ReasoningPanel(self.controller)
        self.panel.setMinimumWidth(430)
        self.reasoning_dock = self._dock("Reasoning", "reasoning", self.panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.reasoning_dock], [520], Qt.Orientation.Horizontal)

        self.probe_label = QLabel("")
        self.progress = QProgressBar(maximumWidth=260, minimum=0, maximum=100, textVisible=True)
        _keep_place_when_hidden(self.progress)  # showing it must not resize the views (a VTK re-render each)
        self.progress.hide()
        self.model_label = QLabel("")
        self.model_label.setObjectName("cardMeta")
        self.statusBar().addWidget(self.probe_label, 1)
        self.statusBar().addPermanentWidget(self.model_label)
        self.statusBar().addPermanentWidget(self.progress)
        from app.weights_import import WeightsImportFlow

        self.weights_import = WeightsImportFlow(self)
        self._build_menus()
        self._show_model_setting()
        self._restore_layout()

        c = self.controller
        c.case_opened.connect(self._on_case_opened)
        c.model.events.connect("masks", lambda: self.banner.show_case(self.state.ct))
        c.model.events.connect("run", self.show_domain)
        self.settings_store.events.connect("changed", self._on_settings_changed)
        c.error.connect(lambda title, msg: self.show_error(msg, title))
        c.non_ct_refused.connect(self._confirm_non_ct)
        c.message.connect(lambda msg: self.statusBar().showMessage(msg, 15000))
        c.job_progress.connect(self._on_progress)
        c.busy_changed.connect(self._on_busy)
        c.model_loaded.connect(lambda d: self.model_label.setText(f"Model: {d}"))
        c.exported.connect(lambda result: dialog_flows.show_export_result(self, result))
        self.panel.export_requested.connect(lambda: dialog_flows.export_report(self))
        self.panel.details_requested.connect(lambda: dialog_flows.show_run_details(self))
        self.pacs_retrier = pacs_flows.QueueRetrier(self)  # the send queue goes out while the window is open

    @property
    def settings(self) -> AppSettings:
        return self.settings_store.current

    def _dock(self, title: str, name: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(area, dock)
        return dock

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
        a, bar = self._action, self.menuBar()
        f = bar.addMenu("&File")
        a(f, "&Open CT File...", lambda: dialog_flows.choose_file(self), QKeySequence.StandardKey.Open)
        a(f, "Open &DICOM or Case Folder...", lambda: dialog_flows.choose_folder(self), "Ctrl+Shift+O")
        a(f, "Open Organ &Masks...", lambda: dialog_flows.choose_masks(self), "Ctrl+M")
        a(f, "Open Demo &Case", self.open_demo)
        a(f, "Open from &PACS...", lambda: pacs_flows.open_from_pacs(self), "Ctrl+Shift+P")
        self.recent_menu = f.addMenu("&Recent Cases")
        self.recent_menu.aboutToShow.connect(lambda: dialog_flows.fill_recent_menu(self))
        f.addSeparator()
        self.export_action = a(f, "&Export Report...", lambda: dialog_flows.export_report(self), "Ctrl+E")
        a(f, "Send to PAC&S...", lambda: pacs_flows.send_to_pacs(self))
        a(f, "Save &Screenshots...", lambda: dialog_flows.choose_screenshot_folder(self), "Ctrl+Shift+S")
        f.addSeparator()
        a(f, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        case = bar.addMenu("&Case")
        a(case, "&Segment Organs", lambda: self.controller.segment(), "Ctrl+Shift+G")
        self.analyze_action = a(case, "&Analyze", self.panel.bar.request, "Ctrl+Return")
        a(case, "&Cancel Running Work", self.controller.cancel, "Ctrl+.")
        case.addSeparator()
        a(case, "&Next Round", lambda: self.panel.step_round(1), "Alt+Down")
        a(case, "&Previous Round", lambda: self.panel.step_round(-1), "Alt+Up")
        a(case, "Run &Details...", lambda: dialog_flows.show_run_details(self), "Ctrl+I")
        edit = bar.addMenu("&Edit")
        a(edit, "&Settings...", lambda: dialog_flows.edit_settings(self), "Ctrl+,")
        a(edit, "&Model Card...", lambda: dialog_flows.show_model_card(self))
        a(edit, "&Import Weights Pack...", lambda: self.weights_import.choose_and_start())
        view_menu = bar.addMenu("&View")
        wl = view_menu.addMenu("Window/Level")
        for p in PRESETS:
            a(wl, f"{p.name.capitalize()}  ({p.window:.0f}/{p.level:.0f}, key {p.key})",
              lambda _=False, p=p: self.state.set_window_level(p.window, p.level))
        self.fill_action = a(view_menu, "Label &Fill", self.state.set_fill, checkable=True)
        self.outline_action = a(view_menu, "Label &Outline", self.state.set_outline, checkable=True)
        self.vr_action = a(view_menu, "CT &Volume Rendering (3D)", self.state.set_volume_rendering, checkable=True)
        view_menu.addSeparator()
        a(view_menu, "&Clear Highlight", self.state.clear_highlight)
        a(view_menu, "&Reset Views", self.reset_views)
        help_menu = bar.addMenu("&Help")
        a(help_menu, "&Mouse and Keys", self.show_bindings)
        a(help_menu, "&About", lambda: dialog_flows.show_about(self))
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
    def open_path(self, path: str | Path, masks: str | Path | None = None) -> bool:
        """Start loading a CT (file, DICOM folder or case folder) and optional masks."""
        return self.controller.open_path(path, masks)

    def open_masks(self, path: str | Path) -> bool:
        """Load organ masks for the CT on screen."""
        return self.controller.open_masks(path)

    def open_demo(self) -> bool:
        from app.main import DEMO_CASE

        return self.open_path(DEMO_CASE)

    @property
    def loading(self) -> bool:
        return self.loader.busy

    def _on_progress(self, kind: str, fraction: float, message: str) -> None:
        self.progress.show()
        self.progress.setValue(int(fraction * 100))
        self.progress.setFormat(f"{message} %p%")

    def _on_busy(self) -> None:
        kinds = self.controller.busy_kinds()
        if not kinds:
            self.progress.hide()
        elif self.progress.isHidden():
            self.progress.setValue(0)
            self.progress.setFormat(f"{kinds[0]} %p%")
            self.progress.show()

    def _on_case_opened(self, case) -> None:
        name = case.ct.series_description or Path(case.ct.source_path).name
        self.setWindowTitle(f"{name} - {TITLE}")
        self.banner.show_case(case.ct)
        self.show_domain()
        note = f"Loaded {name} in {case.seconds:.1f} s"
        if case.warnings:
            note += " - " + "; ".join(case.warnings)
        self.statusBar().showMessage(note, 15000)
        req = case.request
        # a case folder opened with its own masks reopens as the folder
        folder_case = (req.masks is not None and resolve_case(req.ct.parent).organs == req.masks
                       and req.ct.name in CT_NAMES)
        self.recent.add(req.ct.parent if folder_case else req.ct, None if folder_case else req.masks, name)

    def _on_settings_changed(self, old: AppSettings, new: AppSettings) -> None:
        # a loaded model's description stays until another model is chosen
        if (old.model_dir, old.device) != (new.model_dir, new.device):
            self._show_model_setting()
            self.show_domain()

    def show_domain(self, *_args) -> None:
        """The training-domain banner for the CT on screen and the model (card) in use."""
        self.domain_banner.show_reasons(*self.controller.domain_problems())

    def _show_model_setting(self) -> None:
        folder = self.settings.model_dir
        self.model_label.setText(f"Model: {Path(folder).name} ({self.settings.device})" if folder
                                 else "No model: Edit > Settings")

    def _confirm_non_ct(self, reasons: str) -> None:
        """Ask before analyzing a volume that does not look like CT; the run records a yes."""
        self.last_error = f"does not look like CT: {reasons}"
        if self.error_box is not None:
            self.error_box.close()
            self.error_box.deleteLater()
        box = QMessageBox(QMessageBox.Icon.Warning, "Not a CT?",
                          f"{Path(self.state.ct.source_path).name} does not look like a CT in Hounsfield units:"
                          f"\n\n{reasons}.\n\nThe model reads CT only; its answers on other images mean "
                          "nothing. Analyze anyway? The run will record this override.",
                          QMessageBox.StandardButton.Cancel, self)
        anyway = box.addButton("Analyze anyway", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda b: self.controller.analyze_anyway() if b is anyway else None)
        self.error_box = box
        box.open()

    def show_error(self, message: str, title: str = "Could not open") -> None:
        """Tell the user what failed (non-blocking dialog); the current case stays on screen."""
        self.last_error = message
        if self.error_box is not None:
            self.error_box.close()
            self.error_box.deleteLater()
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        self.error_box.open()

    def wait_for_load(self, timeout_ms: int = 60000) -> None:
        """Block until the running load finishes and its result is delivered (scripts, tests)."""
        self.wait_until(lambda: not self.loader.busy, timeout_ms)

    def wait_until(self, done, timeout_ms: int = 60000) -> bool:
        deadline = time.monotonic() + timeout_ms / 1000
        while not done() and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.005)
        return done()

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
        """The whole window as the screen shows it (views, panels, status bar)."""
        self.render_all()
        QCoreApplication.processEvents()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.screen().grabWindow(self.winId()).save(str(path), "PNG")
        return path

    def _show_probe(self, result) -> None:
        self.probe_label.setText(result.text() if result is not None else "")

    def show_bindings(self) -> None:
        QMessageBox.information(self, "Mouse and keys", slice_interaction.__doc__.strip())

    def _restore_layout(self) -> None:
        """Window size and panel layout as the user left them (kept with the settings)."""
        geometry, state = self.store.value("window/geometry"), self.store.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, ev) -> None:  # noqa: N802 (Qt)
        self.store.setValue("window/geometry", self.saveGeometry())
        self.store.setValue("window/state", self.saveState())
        self.store.sync()
        self.controller.shutdown()
        self.pacs_retrier.shutdown()
        self.weights_import.runner.shutdown()  # a QThread destroyed while running aborts the process
        for v in self.views.values():
            v.detach()
        self.labels.detach()
        self.state.events.disconnect("labels", self._sync_actions)
        self.state.events.disconnect("volume_rendering", self._sync_actions)
        for v in self.views.values():
            v.Finalize()
        super().closeEvent(ev)


def _keep_place_when_hidden(widget) -> None:
    """A widget that comes and goes during work keeps its space, so its layout does not change."""
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)
