"""Small VTK prop factories shared by the slice and 3D views (GUI thread only)."""
from __future__ import annotations

import numpy as np
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text rendering backend)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (OpenGL backend for the factories)
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersSources import vtkPlaneSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkCoordinate, vtkPolyDataMapper, vtkTextActor, vtkTexture

# 3D Slicer's view colours: axial red, sagittal yellow, coronal green
PLANE_RGB = {"axial": (0.95, 0.33, 0.33), "sagittal": (0.93, 0.85, 0.31), "coronal": (0.43, 0.73, 0.31)}


def image_data(buffer: np.ndarray, spacing: tuple[float, float], origin: tuple[float, float, float]) -> vtkImageData:
    """vtkImageData sharing memory with a C-contiguous (rows, cols[, comps]) numpy buffer.

    Row 0 is the bottom of the image (VTK's y grows upward). The buffer must outlive the image;
    the returned array keeps a reference to it.
    """
    rows, cols = buffer.shape[:2]
    comps = buffer.shape[2] if buffer.ndim == 3 else 1
    img = vtkImageData()
    img.SetDimensions(cols, rows, 1)
    img.SetSpacing(spacing[0], spacing[1], 1.0)
    img.SetOrigin(*origin)
    arr = numpy_to_vtk(buffer.reshape(rows * cols, comps) if comps > 1 else buffer.reshape(-1), deep=False)
    arr.SetName("scalars")
    img.GetPointData().SetScalars(arr)
    return img


class TexturedQuad:
    """An RGBA image on a rectangle: the cheapest way to draw a 2D picture on software OpenGL
    (about half the frame cost of vtkImageActor's slice mapper, measured on llvmpipe)."""

    def __init__(self) -> None:
        self.plane = vtkPlaneSource()
        self.texture = vtkTexture()
        self.texture.InterpolateOff()
        self.texture.SetColorModeToDirectScalars()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(self.plane.GetOutputPort())
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.SetTexture(self.texture)
        self.actor.GetProperty().LightingOff()
        # opaque by contract: otherwise VTK scans every alpha value after each upload (~8 ms at 512^2)
        self.actor.ForceOpaqueOn()

    def set_image(self, img: vtkImageData) -> None:
        self.texture.SetInputData(img)

    def set_rect(self, x0: float, x1: float, y0: float, y1: float, z: float = 0.0) -> None:
        """Corners: texture pixel row 0 at y0 (bottom), column 0 at x0 (left)."""
        self.plane.SetOrigin(x0, y0, z)
        self.plane.SetPoint1(x1, y0, z)
        self.plane.SetPoint2(x0, y1, z)

    def touch(self) -> None:
        """The image's pixels changed in place: upload them at the next render."""
        img = self.texture.GetInput()
        img.GetPointData().GetScalars().Modified()
        img.Modified()


class Polyline:
    """A set of line segments whose points are moved in place (crosshair, ROI box)."""

    def __init__(self, n_points: int, segments: list[tuple[int, int]], rgb: tuple[float, float, float],
                 width: float = 1.0):
        self.points = vtkPoints()
        self.points.SetNumberOfPoints(n_points)
        for i in range(n_points):
            self.points.SetPoint(i, 0.0, 0.0, 0.0)
        lines = vtkCellArray()
        for a, b in segments:
            lines.InsertNextCell(2)
            lines.InsertCellPoint(a)
            lines.InsertCellPoint(b)
        self.poly = vtkPolyData()
        self.poly.SetPoints(self.points)
        self.poly.SetLines(lines)
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(self.poly)
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        p = self.actor.GetProperty()
        p.SetColor(*rgb)
        p.SetLineWidth(width)
        p.LightingOff()

    def set_points(self, pts: list[tuple[float, float, float]]) -> None:
        for i, xyz in enumerate(pts):
            self.points.SetPoint(i, *xyz)
        self.points.Modified()
        self.poly.Modified()


def edge_letters() -> dict[str, vtkTextActor]:
    """Four text actors at the middle of each viewport edge for orientation letters. The top one
    sits a text line below the edge, so it never runs into the corner text of a narrow view."""
    place = {"left": (0.01, 0.5, 0, 1), "right": (0.99, 0.5, 2, 1),
             "top": (0.5, 1.0, 1, 2), "bottom": (0.5, 0.015, 1, 0)}
    out = {}
    for side, (x, y, hj, vj) in place.items():
        t = vtkTextActor()
        t.SetTextScaleModeToNone()
        coord = t.GetPositionCoordinate()
        if side == "top":  # 22 display pixels below the top centre (the corner text is 14 px)
            ref = vtkCoordinate()
            ref.SetCoordinateSystemToNormalizedViewport()
            ref.SetValue(x, y)
            coord.SetReferenceCoordinate(ref)
            coord.SetCoordinateSystemToDisplay()
            coord.SetValue(0, -22)
        else:
            coord.SetCoordinateSystemToNormalizedViewport()
            coord.SetValue(x, y)
        tp = t.GetTextProperty()
        tp.SetFontSize(17)
        tp.BoldOn()
        tp.ShadowOn()
        tp.SetColor(0.95, 0.95, 0.95)
        (tp.SetJustificationToLeft, tp.SetJustificationToCentered, tp.SetJustificationToRight)[hj]()
        (tp.SetVerticalJustificationToBottom, tp.SetVerticalJustificationToCentered,
         tp.SetVerticalJustificationToTop)[vj]()
        out[side] = t
    return out


class CornerText:
    """Text in the four viewport corners (0 lower-left, 1 lower-right, 2 upper-left, 3 upper-right),
    with vtkCornerAnnotation's SetText/GetText but a fixed font size: vtkCornerAnnotation fits
    its font anew whenever a text changes, ~18 ms per frame on software OpenGL."""

    _PLACE = {0: (0.008, 0.012, 0, 0), 1: (0.992, 0.012, 2, 0), 2: (0.008, 0.988, 0, 2), 3: (0.992, 0.988, 2, 2)}

    def __init__(self, font_size: int = 14):
        self.actors: dict[int, vtkTextActor] = {}
        for corner, (x, y, hj, vj) in self._PLACE.items():
            t = vtkTextActor()
            t.SetTextScaleModeToNone()
            coord = t.GetPositionCoordinate()
            coord.SetCoordinateSystemToNormalizedViewport()
            coord.SetValue(x, y)
            tp = t.GetTextProperty()
            tp.SetFontSize(font_size)
            tp.ShadowOn()
            tp.SetColor(0.9, 0.9, 0.9)
            (tp.SetJustificationToLeft, tp.SetJustificationToCentered, tp.SetJustificationToRight)[hj]()
            (tp.SetVerticalJustificationToBottom, tp.SetVerticalJustificationToCentered,
             tp.SetVerticalJustificationToTop)[vj]()
            t.SetInput("")
            t.VisibilityOff()  # an empty corner costs nothing to draw
            self.actors[corner] = t
        self._enabled = True
        self._full: dict[int, str] = {}
        self._fitted_for: tuple | None = None

    def add_to(self, renderer) -> None:
        for t in self.actors.values():
            renderer.AddViewProp(t)

    GAP_PX = 12  # between the two texts of one edge

    def SetText(self, corner: int, text: str) -> None:  # noqa: N802 (VTK naming)
        t = self.actors[corner]
        if self._full.get(corner) != text:
            self._full[corner] = text
            t.SetInput(text)
            self._fitted_for = None
        t.SetVisibility(self._enabled and bool(text))

    def GetText(self, corner: int) -> str:  # noqa: N802
        """The full text of a corner (what is drawn may be shortened to fit, see ``fit``)."""
        return self._full.get(corner, "")

    def shown_text(self, corner: int) -> str:
        return self.actors[corner].GetInput() or ""

    def fit(self, renderer) -> None:
        """Shorten the right-hand text of each edge (ROI list, probe) with "…" until it no longer
        reaches the left-hand one (slice position, window/level), for the viewport's width now.
        Measured with the actors' own font, only when a text or the width changed."""
        width = renderer.GetSize()[0]
        key = (width, tuple(sorted(self._full.items())))
        if width <= 0 or key == self._fitted_for:
            return
        self._fitted_for = key
        size = [0.0, 0.0]
        for left, right in ((2, 3), (0, 1)):
            full = self._full.get(right, "")
            if not full:
                continue
            lt = self.actors[left]
            lw = 0.0
            if self._full.get(left):
                lt.GetSize(renderer, size)
                lw = size[0]
            room = width * (1 - 2 * 0.008) - lw - self.GAP_PX
            rt = self.actors[right]
            text = full
            rt.SetInput(text)
            rt.GetSize(renderer, size)
            while size[0] > room and len(text) > 1:
                text = text[: max(1, int(len(text) * max(room, 0) / size[0]) - 1)] if size[0] > 2 * room \
                    else text[:-2]
                rt.SetInput(text.rstrip(" ,") + "…")
                rt.GetSize(renderer, size)
            if text != full and room <= 0:
                rt.SetInput("")

    def VisibilityOff(self) -> None:  # noqa: N802
        self._enabled = False
        for t in self.actors.values():
            t.VisibilityOff()

    def VisibilityOn(self) -> None:  # noqa: N802
        self._enabled = True
        for t in self.actors.values():
            t.SetVisibility(bool(t.GetInput()))
