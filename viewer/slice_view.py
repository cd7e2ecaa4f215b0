"""One MPR slice view (axial, coronal or sagittal) of the scene state, in a Qt widget.

It renders the state (CT slice under window/level, organ overlay, crosshair, ROI box, orientation
letters, annotations) and turns mouse and keys into state changes (``SliceInteraction``). It holds
display buffers only; the case lives in the ``SceneState``. Every VTK call is on the GUI thread.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QPainter, QPen

from viewer.offscreen_widget import OffscreenVtkWidget
from viewer.overlay import OverlayStyle, compose_codes, upsample_factor
from viewer.slab_cache import SlabCache
from viewer.slice_image import blend_codes, upsample_linear, window_grey
from viewer.probe import ProbeResult, probe
from viewer.scene_state import SceneState
from viewer.slice_geometry import PLANE_OF_WORLD_AXIS, SliceGeometry, voxel_axis_of_world
from viewer.slice_interaction import SliceInteraction
from viewer.vtk_props import PLANE_RGB, CornerText, Polyline, TexturedQuad, edge_letters, image_data

_Z_IMAGE, _Z_LINES = 0.0, 1.0  # layer depths in display space (camera looks down -z)
MAX_ZOOM = 3.0  # ROI framing never zooms past this many times the fitted view


class SliceView(OffscreenVtkWidget):
    """MPR view of one plane. Signals: ``probed(ProbeResult | None)`` on mouse move,
    ``rendered()`` after each frame is on screen, ``double_clicked()`` (the app maximises the view)."""

    probed = Signal(object)
    double_clicked = Signal()

    def __init__(self, state: SceneState, plane: str, parent=None):
        super().__init__(parent)
        self.state = state
        self.plane = plane
        self.geometry: SliceGeometry | None = None
        self.slice_index = -1
        self._factor = 1
        self._style: OverlayStyle | None = None
        self._saved_camera: tuple | None = None
        self._fitted = True

        self.renderer.SetBackground(0.0, 0.0, 0.0)
        cam = self.renderer.GetActiveCamera()
        cam.ParallelProjectionOn()
        cam.SetViewUp(0, 1, 0)

        self.renderer.SetUseOIT(False)  # nothing translucent to sort; OIT passes cost ~40 % of a frame
        # one opaque texture: CT under window/level with the overlay blended in (slice_image.py)
        self.picture = TexturedQuad()
        self.picture.set_image(image_data(np.zeros((1, 1, 4), np.uint8), (1.0, 1.0), (0.0, 0.0, 0.0)))
        self.image_actor = self.picture.actor
        self.image_actor.VisibilityOff()
        self.renderer.AddActor(self.image_actor)
        self._dirty_slice = self._dirty_overlay = self._dirty_grey = False
        # the crosshair is painted by Qt over the VTK frame: moving it costs a repaint, not a frame
        self.crosshair_rgb: dict[str, tuple[int, int, int]] = {}  # 'vertical', 'horizontal'
        self.show_crosshair = True
        self.roi_box = Polyline(4, [(0, 1), (1, 2), (2, 3), (3, 0)], tuple(c / 255 for c in state.highlight_rgb), 2.0)
        self.roi_box.actor.VisibilityOff()
        self.renderer.AddActor(self.roi_box.actor)
        self.letters = edge_letters()
        for t in self.letters.values():
            self.renderer.AddViewProp(t)
        self.annotation = CornerText()
        self.annotation.add_to(self.renderer)

        self.interaction = SliceInteraction(self)
        self.setCursor(QCursor(Qt.CursorShape.CrossCursor))
        self._handlers = {"case": self._on_case, "cursor": self._on_cursor, "window_level": self._on_window_level,
                          "labels": self._on_labels, "highlight": self._on_highlight}
        for name, fn in self._handlers.items():
            state.events.connect(name, fn)
        self._on_case()

    # --- lifecycle ------------------------------------------------------------------------
    def detach(self) -> None:
        """Stop observing the state (before the widget goes away)."""
        for name, fn in self._handlers.items():
            self.state.events.disconnect(name, fn)
        self._render_timer.stop()

    def closeEvent(self, ev) -> None:  # noqa: N802 (Qt)
        self.detach()
        super().closeEvent(ev)

    # --- rendering ------------------------------------------------------------------------
    def before_render(self) -> None:
        if self.geometry is not None and (self._dirty_slice or self._dirty_overlay or self._dirty_grey):
            self._refresh_image()
        self.annotation.fit(self.renderer)  # corner texts of one edge never run into each other

    def resizeEvent(self, ev) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(ev)
        if self._fitted and self.geometry is not None:
            self.reset_view()

    # --- state observers ------------------------------------------------------------------
    def _on_case(self) -> None:
        ct = self.state.ct
        self.slice_index = -1
        self._saved_camera = None
        if ct is None:
            self.geometry = None
            self._hu = self._organs = self._parts = None
            self._slabs = []
            for a in (self.image_actor, self.roi_box.actor):
                a.VisibilityOff()
            for t in self.letters.values():
                t.SetInput("")
            for corner in range(4):
                self.annotation.SetText(corner, "")
            self.request_render()
            return
        g = self.geometry = SliceGeometry.create(self.plane, ct.shape, ct.affine)
        f = self._factor = upsample_factor(g.n_rows, g.n_cols)
        self._hu = np.zeros((g.n_rows, g.n_cols), dtype=np.int16)  # this slice, display order
        self._organs = np.zeros((g.n_rows, g.n_cols), dtype=np.uint8)
        self._parts = np.zeros((g.n_rows, g.n_cols), dtype=np.uint8) if self._has_parts() else None
        self._grey = np.zeros((g.n_rows * f, g.n_cols * f), dtype=np.uint8)
        self._codes = np.zeros((g.n_rows * f, g.n_cols * f), dtype=np.uint16)  # overlay style codes
        self._scratch = np.zeros(g.n_rows * f * g.n_cols * f, dtype=np.uint32)
        self._rgb = np.full((g.n_rows * f, g.n_cols * f, 4), 255, dtype=np.uint8)  # RGBA uploads as is
        masks = self.state.masks
        self._slabs = [SlabCache(v, g.axis_n) for v in (ct.hu, masks.organs if masks is not None else None,
                                                       masks.parts if masks is not None else None) if v is not None]
        self.picture.set_image(image_data(self._rgb, (g.du / f, g.dv / f), (0.0, 0.0, 0.0)))
        self.picture.set_rect(*g.extent(), _Z_IMAGE)
        self.image_actor.VisibilityOn()
        self._build_crosshair()
        for side, t in self.letters.items():
            t.SetInput(g.letters[side])
        self._style = OverlayStyle.from_state(self.state)
        self._on_window_level()
        self._update_slice()
        self._dirty_slice = True
        self._update_roi_box()
        self.annotation.SetText(3, "")
        self.annotation.SetText(1, "")
        self.reset_view()

    def _build_crosshair(self) -> None:
        g = self.geometry
        vox_of, _ = voxel_axis_of_world(g.affine)
        world_of_vox = {a: w for w, a in enumerate(vox_of)}
        # a vertical line marks constant u: the plane perpendicular to u's world axis, in its colour
        rgb = {k: PLANE_RGB[PLANE_OF_WORLD_AXIS[world_of_vox[a]]] for k, a in (("vertical", g.axis_u),
                                                                             ("horizontal", g.axis_v))}
        self.crosshair_rgb = {k: tuple(round(c * 255) for c in v) for k, v in rgb.items()}

    def _on_cursor(self) -> None:
        if self.geometry is None:
            return
        before = self.slice_index
        self._update_slice()
        if self.slice_index != before:
            self.request_render()
        else:
            self.update()  # only the crosshair moved

    def paint_overlay(self, painter: QPainter) -> None:
        g = self.geometry
        if g is None or not self.show_crosshair:
            return
        x, y = self.display_to_widget(*g.world_to_display(self.state.cursor))
        u_min, u_max, v_min, v_max = g.extent()
        (xa, ya), (xb, yb) = self.display_to_widget(u_min, v_min), self.display_to_widget(u_max, v_max)
        painter.setPen(QPen(QColor(*self.crosshair_rgb["vertical"]), 0))
        painter.drawLine(QPointF(x, ya), QPointF(x, yb))
        painter.setPen(QPen(QColor(*self.crosshair_rgb["horizontal"]), 0))
        painter.drawLine(QPointF(xa, y), QPointF(xb, y))

    def _on_window_level(self) -> None:
        self._dirty_grey = True
        self.annotation.SetText(0, f"W {self.state.window:.0f}  L {self.state.level:.0f}")
        self.request_render()

    def _on_labels(self) -> None:
        if self.geometry is None:
            return
        self._style = OverlayStyle.from_state(self.state)
        self._dirty_overlay = True
        self.request_render()

    def _on_highlight(self) -> None:
        if self.geometry is None:
            return
        self._style = OverlayStyle.from_state(self.state)
        roi = self.state.roi
        if roi is not None:
            if self._saved_camera is None:
                self._saved_camera = self._camera_state()
            self._frame_roi()
            names = ", ".join(self.state.label_name(i) for i in roi.label_ids)
            self.annotation.SetText(3, f"ROI: {names}")
        else:
            if self._saved_camera is not None:
                self._restore_camera(self._saved_camera)
                self._saved_camera = None
            self.annotation.SetText(3, "")
        self._dirty_overlay = True
        self._update_roi_box()
        self.request_render()

    # --- content updates ------------------------------------------------------------------
    def _has_parts(self) -> bool:
        return self.state.masks is not None and self.state.masks.parts is not None

    def _update_slice(self) -> None:
        """Note the slice under the cursor; the picture is rebuilt at the next render."""
        g = self.geometry
        k = g.slice_index(self.state.cursor)
        if k == self.slice_index:
            return
        self.slice_index = k
        self._dirty_slice = True
        self._update_roi_box()
        self.annotation.SetText(2, f"{self.plane.capitalize()}  {g.slice_position(k)}  ({k + 1}/{g.n_slices})")

    def _refresh_image(self) -> None:
        """Rebuild what changed: slice arrays, overlay (RGBA), grey (window/level), then the blend."""
        g, k, st, f = self.geometry, self.slice_index, self.state, self._factor
        if self._dirty_slice:
            for slab, buf in zip(self._slabs, (self._hu, self._organs, self._parts)):
                np.copyto(buf, g.orient(slab.get(k)))
            self._dirty_overlay = self._dirty_grey = True
        if self._dirty_grey:
            np.copyto(self._grey, upsample_linear(window_grey(self._hu, st.window, st.level), f))
        if self._dirty_overlay:
            if st.masks is None:
                self._codes[...] = 0
            else:
                compose_codes(self._organs, self._parts, self._style, f, out=self._codes)
        blend_codes(self._grey, self._codes, self._style.blend_table(), self._rgb, self._scratch)
        self._dirty_slice = self._dirty_overlay = self._dirty_grey = False
        self.picture.touch()

    def _update_roi_box(self) -> None:
        roi, g = self.state.roi, self.geometry
        n = g.axis_n if g is not None else 0
        if roi is None or g is None or not (roi.voxel_min[n] <= self.slice_index <= roi.voxel_max[n]):
            self.roi_box.actor.VisibilityOff()
            return
        lo = np.asarray(roi.voxel_min, dtype=float) - 0.5
        hi = np.asarray(roi.voxel_max, dtype=float) + 0.5
        corners = []
        for cu, cv in ((lo, lo), (hi, lo), (hi, hi), (lo, hi)):
            vox = np.zeros(3)
            vox[g.axis_u], vox[g.axis_v] = cu[g.axis_u], cv[g.axis_v]
            u, v = g.voxel_to_display(vox)
            corners.append((u, v, _Z_LINES))
        self.roi_box.set_points(corners)
        self.roi_box.actor.VisibilityOn()

    # --- camera ---------------------------------------------------------------------------
    def reset_view(self) -> None:
        """Fit the whole slice in the view (the 'r' key)."""
        if self.geometry is None:
            return
        u_min, u_max, v_min, v_max = self.geometry.extent()
        self._set_camera(((u_min + u_max) / 2, (v_min + v_max) / 2), self._fit_scale(u_max - u_min, v_max - v_min))
        self._fitted = True
        self.request_render()

    def _fit_scale(self, width: float, height: float) -> float:
        w, h = self.GetRenderWindow().GetSize()
        aspect = (w / h) if w > 0 and h > 0 else 1.0
        return max(height / 2, width / 2 / aspect) * 1.04

    def _frame_roi(self) -> None:
        roi, g = self.state.roi, self.geometry
        lo = np.asarray(roi.voxel_min, dtype=float) - 0.5
        hi = np.asarray(roi.voxel_max, dtype=float) + 0.5
        (ua, va), (ub, vb) = g.voxel_to_display(lo), g.voxel_to_display(hi)
        u_min, u_max, v_min, v_max = g.extent()
        fit_all = self._fit_scale(u_max - u_min, v_max - v_min)
        scale = self._fit_scale(abs(ub - ua), abs(vb - va)) * 1.6
        scale = min(max(scale, fit_all / MAX_ZOOM), fit_all)
        self._set_camera(((ua + ub) / 2, (va + vb) / 2), scale)
        self._fitted = False

    def _set_camera(self, centre: tuple[float, float], scale: float) -> None:
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(centre[0], centre[1], 0.0)
        cam.SetPosition(centre[0], centre[1], 1000.0)
        cam.SetViewUp(0, 1, 0)
        cam.SetParallelScale(scale)
        cam.SetClippingRange(1.0, 2000.0)

    def _camera_state(self) -> tuple:
        cam = self.renderer.GetActiveCamera()
        return cam.GetFocalPoint()[:2], cam.GetParallelScale(), self._fitted

    def _restore_camera(self, saved: tuple) -> None:
        centre, scale, fitted = saved
        self._set_camera(centre, scale)
        self._fitted = fitted
        if fitted:
            self.reset_view()

    def zoom(self, factor: float) -> None:
        cam = self.renderer.GetActiveCamera()
        cam.SetParallelScale(cam.GetParallelScale() / factor)
        self._fitted = False
        self.request_render()

    def pan(self, du: float, dv: float) -> None:
        """Move the picture by (du, dv) mm (positive = picture moves right / up)."""
        cam = self.renderer.GetActiveCamera()
        fx, fy, _ = cam.GetFocalPoint()
        self._set_camera((fx - du, fy - dv), cam.GetParallelScale())
        self._fitted = False
        self.request_render()

    # --- coordinates for interaction ------------------------------------------------------
    def widget_to_display(self, x: float, y: float) -> tuple[float, float]:
        """Qt widget pixel (logical, y down) -> display (u, v) mm on this view."""
        w, h = self.GetRenderWindow().GetSize()
        cam = self.renderer.GetActiveCamera()
        scale = cam.GetParallelScale()  # half the viewport height in mm
        dpr = self.devicePixelRatioF()
        xd, yd = x * dpr + 0.5, (self.height() - y) * dpr - 0.5
        mm_per_px = 2 * scale / max(h, 1)
        fx, fy, _ = cam.GetFocalPoint()
        return fx + (xd - w / 2) * mm_per_px, fy + (yd - h / 2) * mm_per_px

    def mm_per_pixel(self) -> float:
        _, h = self.GetRenderWindow().GetSize()
        return 2 * self.renderer.GetActiveCamera().GetParallelScale() / max(h, 1) * self.devicePixelRatioF()

    def world_at(self, x: float, y: float) -> np.ndarray | None:
        """World point (RAS mm) under a widget pixel on the current slice."""
        if self.geometry is None:
            return None
        u, v = self.widget_to_display(x, y)
        return self.geometry.display_to_world(u, v, self.slice_index)

    def world_to_widget(self, world: np.ndarray) -> tuple[float, float]:
        """Widget pixel (logical, y down) where a world point appears (tests, overlays)."""
        return self.display_to_widget(*self.geometry.world_to_display(world))

    def display_to_widget(self, u: float, v: float) -> tuple[float, float]:
        """Display (u, v) mm -> widget pixel (logical, y down): the inverse of widget_to_display."""
        w, h = self.GetRenderWindow().GetSize()
        cam = self.renderer.GetActiveCamera()
        px_per_mm = max(h, 1) / (2 * cam.GetParallelScale())
        fx, fy, _ = cam.GetFocalPoint()
        dpr = self.devicePixelRatioF()
        xd, yd = w / 2 + (u - fx) * px_per_mm, h / 2 + (v - fy) * px_per_mm
        return (xd - 0.5) / dpr, self.height() - (yd + 0.5) / dpr

    def show_probe(self, result: ProbeResult | None) -> None:
        self.annotation.SetText(1, result.text() if result is not None else "")
        self.probed.emit(result)
        self.request_render()

    def probe_at(self, x: float, y: float) -> ProbeResult | None:
        world = self.world_at(x, y)
        return probe(self.state, world) if world is not None else None

    # --- Qt event plumbing (all interaction lives in SliceInteraction) --------------------
    def mousePressEvent(self, ev) -> None:  # noqa: N802
        self.interaction.press(ev)

    def mouseReleaseEvent(self, ev) -> None:  # noqa: N802
        self.interaction.release(ev)

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802
        self.interaction.move(ev)

    def mouseDoubleClickEvent(self, ev) -> None:  # noqa: N802
        self.double_clicked.emit()

    def wheelEvent(self, ev) -> None:  # noqa: N802
        self.interaction.wheel(ev)

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        if not self.interaction.key(ev):
            ev.ignore()

    def keyReleaseEvent(self, ev) -> None:  # noqa: N802
        ev.ignore()

    def leaveEvent(self, ev) -> None:  # noqa: N802
        self.show_probe(None)
