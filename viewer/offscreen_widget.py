"""A Qt widget that shows what an offscreen VTK render window draws.

Why not QVTKRenderWindowInteractor for the slice views: on software OpenGL (llvmpipe under Xvfb,
the CI and many remote desktops) an on-screen VTK frame pays a framebuffer blit, a buffer swap and
an X PutImage of the whole window: measured 6-13 ms for an empty 623x460 frame, against 0.75 ms
to render the same frame offscreen and read it back. Qt then paints the pixels through its own
backing store (shared memory on X11). VTK still does all the drawing; every call stays on the GUI
thread. Subclasses add props to ``renderer`` and handle Qt input events themselves.
"""
from __future__ import annotations

import numpy as np
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (OpenGL backend)
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkUnsignedCharArray
from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow


class OffscreenVtkWidget(QWidget):
    """``rendered()`` is emitted once a new VTK frame is on screen, ``painted()`` after every
    repaint (a new frame, or only ``paint_overlay`` content such as a moved crosshair)."""

    rendered = Signal()
    painted = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.renderer = vtkRenderer()
        self._window = vtkRenderWindow()
        self._window.SetOffScreenRendering(1)
        self._window.SetMultiSamples(0)
        self._window.AddRenderer(self.renderer)
        self._window.SetSize(max(self.width(), 1), max(self.height(), 1))
        # any Render(), also a screenshot's, first brings the scene up to date
        self._window.AddObserver("StartEvent", lambda *_: self.before_render())
        self._pixels = vtkUnsignedCharArray()
        self._frame: QImage | None = None
        self._frame_buffer = None  # numpy view of _pixels that the QImage reads
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self.render_now)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(64, 64)

    # --- the VTK side ---------------------------------------------------------------------
    def GetRenderWindow(self) -> vtkRenderWindow:  # noqa: N802 (VTK naming, as QVTK widgets)
        return self._window

    def Finalize(self) -> None:  # noqa: N802
        self._render_timer.stop()
        self._window.Finalize()

    def before_render(self) -> None:
        """Hook: update VTK data from the scene (called at the start of every Render)."""

    def paint_overlay(self, painter: QPainter) -> None:
        """Hook: draw what changes too often to be worth a VTK frame (widget pixels, y down)."""

    # --- frames ---------------------------------------------------------------------------
    def request_render(self) -> None:
        """Render once when control returns to the event loop (coalesces many changes)."""
        if not self._render_timer.isActive():
            self._render_timer.start()

    def render_now(self) -> None:
        """Render offscreen, read the frame back and paint it now."""
        self._render_timer.stop()
        w, h = self._window.GetSize()
        self._window.Render()
        self._window.GetRGBACharPixelData(0, 0, w - 1, h - 1, 0, self._pixels)
        self._frame_buffer = vtk_to_numpy(self._pixels)  # rows bottom-up: paintEvent flips
        self._frame = QImage(self._frame_buffer.data, w, h, 4 * w, QImage.Format.Format_RGBX8888)
        self._frame.setDevicePixelRatio(self.devicePixelRatioF())
        if self.isVisible():
            self.repaint()
        self.rendered.emit()

    def paintEvent(self, ev) -> None:  # noqa: N802 (Qt)
        p = QPainter(self)
        if self._frame is None:
            p.fillRect(self.rect(), self.palette().dark())
        else:
            p.translate(0, self.height())  # OpenGL rows run bottom-up: draw the frame flipped
            p.scale(1, -1)
            p.drawImage(0, 0, self._frame)
            p.resetTransform()
            self.paint_overlay(p)
        p.end()
        self.painted.emit()

    def grab_composited(self) -> np.ndarray:
        """What the widget shows (VTK frame + overlay), rendered now: (H, W, 3) uint8, row 0 = top."""
        self.render_now()
        img = self.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        w, h = img.width(), img.height()
        arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.bytesPerLine() * h)
        return arr.reshape(h, img.bytesPerLine())[:, :w * 3].reshape(h, w, 3).copy()

    def resizeEvent(self, ev) -> None:  # noqa: N802 (Qt)
        dpr = self.devicePixelRatioF()
        self._window.SetSize(max(int(round(self.width() * dpr)), 1), max(int(round(self.height() * dpr)), 1))
        self.request_render()
