"""The 3D view: smoothed organ surfaces, optional CT volume rendering, orientation marker.

Surfaces are built lazily, only for visible labels, one label per event-loop turn and only while
the user is not scrolling, so the slice views stay responsive during a build. Camera starts as
3D Slicer's: looking at the patient from the front (patient right on screen left), head up.
Mouse: left rotate, middle or Shift+left pan, right drag or wheel zoom; r resets the camera.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QTimer, Signal
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer

from viewer.scene_state import SceneState
from viewer.surfaces import SurfaceCache
from viewer.volume_rendering import CtVolumeProp
from viewer.vtk_props import CornerText

DIMMED_OPACITY = 0.12  # non-ROI surfaces while a ROI is highlighted
PARENT_OPACITY = 0.3  # an organ around the few of its parts that are shown
IDLE_BEFORE_BUILD_MS = 250  # wait this long after the last slice/cursor change before building


class VolumeView(QVTKRenderWindowInteractor):
    """3D view of the scene state. Signals: ``surfaces_ready()`` when every visible label has a
    surface; ``rendered()`` after each frame."""

    surfaces_ready = Signal()
    rendered = Signal()

    def __init__(self, state: SceneState, parent=None):
        super().__init__(parent)
        self.state = state
        self.surfaces: SurfaceCache | None = None  # organs (ids < 100)
        self.part_surfaces: SurfaceCache | None = None  # substructures (ids >= 100), when the case has them
        self.actors: dict[int, vtkActor] = {}
        self._queue: list[int] = []
        self._last_busy = 0.0
        self._saved_camera: tuple | None = None

        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.07, 0.08, 0.1)
        self.renderer.SetBackground2(0.22, 0.24, 0.3)
        self.renderer.GradientBackgroundOn()
        self.GetRenderWindow().AddRenderer(self.renderer)
        self._Iren.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self.annotation = CornerText()
        self.annotation.add_to(self.renderer)
        self.ct_volume = CtVolumeProp()
        self.renderer.AddViewProp(self.ct_volume.volume)
        self.marker = self._orientation_marker()

        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self.render_now)
        self._build_timer = QTimer(self)
        self._build_timer.setSingleShot(True)
        self._build_timer.timeout.connect(self._build_next)
        self._handlers = {"case": self._on_case, "labels": self._on_labels, "highlight": self._on_highlight,
                          "volume_rendering": self._on_volume_rendering, "cursor": self._note_busy,
                          "window_level": self._note_busy}
        for name, fn in self._handlers.items():
            state.events.connect(name, fn)
        self._on_case()

    def _orientation_marker(self) -> vtkOrientationMarkerWidget:
        cube = vtkAnnotatedCubeActor()
        for face, text in (("XPlus", "R"), ("XMinus", "L"), ("YPlus", "A"), ("YMinus", "P"),
                           ("ZPlus", "S"), ("ZMinus", "I")):
            getattr(cube, f"Set{face}FaceText")(text)
        cube.SetFaceTextScale(0.6)
        cube.GetCubeProperty().SetColor(0.55, 0.6, 0.7)
        cube.GetTextEdgesProperty().SetColor(0.9, 0.9, 0.9)
        marker = vtkOrientationMarkerWidget()
        marker.SetOrientationMarker(cube)
        marker.SetInteractor(self._Iren)
        marker.SetViewport(0.0, 0.0, 0.2, 0.2)
        marker.SetEnabled(1)
        marker.InteractiveOff()
        return marker

    # --- lifecycle / rendering -------------------------------------------------------------
    def detach(self) -> None:
        for name, fn in self._handlers.items():
            self.state.events.disconnect(name, fn)
        self._render_timer.stop()
        self._build_timer.stop()

    def closeEvent(self, ev) -> None:  # noqa: N802 (Qt)
        self.detach()
        self.marker.SetEnabled(0)
        super().closeEvent(ev)

    def request_render(self) -> None:
        if not self._render_timer.isActive():
            self._render_timer.start()

    def render_now(self) -> None:
        self._render_timer.stop()
        self.GetRenderWindow().Render()
        self.rendered.emit()

    def keyPressEvent(self, ev) -> None:  # noqa: N802 (Qt): only our keys, not VTK's (q, e quit)
        if ev.text() == "r":
            self.reset_camera()
        else:
            ev.ignore()

    def keyReleaseEvent(self, ev) -> None:  # noqa: N802
        ev.ignore()

    def reset_camera(self, bounds: tuple | None = None) -> None:
        """Anterior view, head up, fitted to ``bounds`` (x0, x1, y0, y1, z0, z1) or everything."""
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(0, 0, 0)
        cam.SetPosition(0, 1, 0)  # in front of the patient (+A), looking back (-A)
        cam.SetViewUp(0, 0, 1)
        if bounds is None:
            bounds = self._case_bounds()
        if bounds is not None:
            self.renderer.ResetCamera(bounds)
            cam.Zoom(1.3)  # ResetCamera fits the bounding sphere; the box itself can be larger
        self.renderer.ResetCameraClippingRange()
        self.request_render()

    def _case_bounds(self) -> tuple | None:
        ct = self.state.ct
        if ct is None:
            return None
        corners = np.array([[a, b, c] for a in (0, ct.shape[0] - 1) for b in (0, ct.shape[1] - 1)
                            for c in (0, ct.shape[2] - 1)])
        w = ct.voxel_to_world(corners)
        return (w[:, 0].min(), w[:, 0].max(), w[:, 1].min(), w[:, 1].max(), w[:, 2].min(), w[:, 2].max())

    # --- state observers --------------------------------------------------------------------
    def _on_case(self) -> None:
        for actor in self.actors.values():
            self.renderer.RemoveActor(actor)
        self.actors.clear()
        self._queue.clear()
        self._build_timer.stop()
        self._saved_camera = None
        for cache in (self.surfaces, self.part_surfaces):
            if cache is not None:
                cache.clear()
        self.surfaces = self.part_surfaces = None
        masks, ct = self.state.masks, self.state.ct
        if masks is not None and ct is not None:
            self.surfaces = SurfaceCache(masks.organs, masks.affine, boxes=self.state.organ_boxes)
            if masks.parts is not None:
                self.part_surfaces = SurfaceCache(masks.parts, masks.affine, boxes=self.state.part_boxes)
        self.ct_volume.set_ct(ct if self.state.volume_rendering else None)
        self.annotation.SetText(2, "")
        self.annotation.SetText(3, "")
        self.reset_camera()
        self._on_labels()

    def _note_busy(self) -> None:
        self._last_busy = time.perf_counter()

    def _on_labels(self) -> None:
        if self.surfaces is None:
            self.request_render()
            return
        wanted = sorted(i for i in self.state.visible if self._cache_for(i) is not None)
        self._queue = [i for i in wanted if i not in self._cache_for(i)]
        self._apply_styles()
        if self._queue:
            self._build_timer.start(0)
        else:
            self.annotation.SetText(2, "")
        self.request_render()

    def _on_highlight(self) -> None:
        roi = self.state.roi
        cam = self.renderer.GetActiveCamera()
        if roi is not None:
            if self._saved_camera is None:
                self._saved_camera = (cam.GetPosition(), cam.GetFocalPoint(), cam.GetViewUp(), cam.GetViewAngle())
            lo, hi = roi.world_min, roi.world_max
            bounds = (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
            self.renderer.ResetCamera(bounds)  # keeps the direction, centres and fits the ROI
            self.renderer.ResetCameraClippingRange()
            self.annotation.SetText(3, "ROI: " + ", ".join(self.state.label_name(i) for i in roi.label_ids))
        else:
            if self._saved_camera is not None:
                pos, focal, up, angle = self._saved_camera
                cam.SetPosition(pos)
                cam.SetFocalPoint(focal)
                cam.SetViewUp(up)
                cam.SetViewAngle(angle)
                self.renderer.ResetCameraClippingRange()
                self._saved_camera = None
            self.annotation.SetText(3, "")
        self._apply_styles()
        self.request_render()

    def _on_volume_rendering(self) -> None:
        self.ct_volume.set_ct(self.state.ct if self.state.volume_rendering else None)
        self.request_render()

    # --- surfaces -------------------------------------------------------------------------
    def _build_next(self) -> None:
        """Build one queued surface, then yield to the event loop (and to scrolling)."""
        if self.surfaces is None or not self._queue:
            return
        idle_ms = (time.perf_counter() - self._last_busy) * 1000
        if idle_ms < IDLE_BEFORE_BUILD_MS:
            self._build_timer.start(int(IDLE_BEFORE_BUILD_MS - idle_ms) + 1)
            return
        lid = self._queue.pop(0)
        self._add_actor(lid)
        total = len([i for i in self.state.visible if self._cache_for(i) is not None])
        if self._queue:
            self.annotation.SetText(2, f"building surfaces {total - len(self._queue)}/{total}")
            self._build_timer.start(0)
        else:
            self.annotation.SetText(2, "")
            self.surfaces_ready.emit()
        self.request_render()

    def build_visible_now(self) -> None:
        """Build every queued surface at once (tests, screenshots, benchmarks)."""
        while self._queue:
            self._add_actor(self._queue.pop(0))
        self._build_timer.stop()
        self.annotation.SetText(2, "")
        self.surfaces_ready.emit()

    def _cache_for(self, lid: int) -> SurfaceCache | None:
        return self.part_surfaces if lid >= 100 else self.surfaces

    def _add_actor(self, lid: int) -> None:
        poly = self._cache_for(lid).get(lid)
        if poly is None or lid in self.actors:
            return
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(poly)
        mapper.ScalarVisibilityOff()
        actor = vtkActor()
        actor.SetMapper(mapper)
        prop = actor.GetProperty()
        prop.SetSpecular(0.25)
        prop.SetSpecularPower(20)
        self.actors[lid] = actor
        self.renderer.AddActor(actor)
        self._apply_styles()

    def _apply_styles(self) -> None:
        st = self.state
        roi = set(st.highlight)
        # an organ whose parts are all shown would hide them: show the parts instead (they tile it);
        # with only some parts shown the organ turns translucent around them
        parts_of: dict[int, set[int]] = {}
        for i in st.present_ids:
            if i >= 100 and i in st.table:
                parts_of.setdefault(st.table.by_id(i).parent, set()).add(i)
        shown = {parent: parts & st.visible for parent, parts in parts_of.items()}
        for lid, actor in self.actors.items():
            prop = actor.GetProperty()
            prop.SetColor(*(c / 255 for c in st.colour(lid)))
            opacity = DIMMED_OPACITY if roi and lid not in roi else 1.0
            if shown.get(lid):
                opacity = min(opacity, PARENT_OPACITY)
            prop.SetOpacity(opacity)
            all_parts_shown = bool(shown.get(lid)) and shown[lid] == parts_of[lid]
            actor.SetVisibility(lid in st.visible and not all_parts_shown)
