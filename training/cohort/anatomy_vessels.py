"""Contrast-filled great vessels: aorta and iliac arteries, IVC and iliac veins, portal,
superior mesenteric and splenic veins, the superior mesenteric artery and the renal veins.

Paths are written in the reference body (see anatomy_frame) as (x, y, z, radius) rows.
"""
from __future__ import annotations

import numpy as np

from .anatomy_frame import Frame
from .grid import Canvas, lid, lut
from .intensities import Tissue as T
from .shapes import Path, smooth_path, tube_field

AORTA = [(-10, -9, 145, 12.5), (-10, -8, 60, 12), (-9, -5, 0, 11), (-8, -3, -85, 9.5)]
IVC = [(24, -12, -102, 10), (24, -12, 0, 11), (25, -10, 60, 12), (20, 0, 100, 13), (8, 12, 130, 14)]
PORTAL = [(12, 12, 2, 7.0), (25, 10, 19, 7.0), (38, 12, 33, 6.5)]
SMV = [(10, 22, -62, 5.0), (12, 16, -22, 5.5), (12, 12, 2, 6.0)]
SPLENIC_VEIN = [(12, 12, 2, 4.5), (-12, 8, 12, 4.5), (-45, -6, 20, 4.5), (-72, -22, 32, 4.5), (-86, -28, 40, 4.0)]
SMA = [(-10, 0, 15, 4.0), (-6, 14, 5, 4.0), (-4, 24, -10, 4.0), (-2, 30, -62, 3.5)]
LEFT_RENAL_VEIN = [(-50, -22, 0, 4.5), (-25, -2, 2, 4.5), (-6, 6, 3, 4.0), (16, -4, 3, 5.0)]
RIGHT_RENAL_VEIN = [(46, -22, -8, 4.5), (24, -12, -2, 5.0)]
# hepatic veins from the IVC confluence outwards (painted inside the liver later)
HEPATIC_VEINS = {
    "right": [(26, -6, 92, 5.0), (70, 8, 75, 4.0), (108, 28, 45, 2.0)],
    "middle": [(20, -2, 92, 4.5), (34, 28, 70, 3.5), (44, 58, 40, 2.0)],
    "left": [(14, 0, 92, 4.0), (2, 30, 80, 3.0), (-12, 62, 64, 2.0)],
}
PORTAL_BRANCHES = {
    "right": [(38, 12, 33, 5.5), (75, 2, 36, 4.0), (100, -8, 38, 2.5)],
    "left": [(38, 12, 33, 4.5), (12, 30, 44, 3.5), (-12, 44, 50, 2.5)],
}


def ref_path(frame: Frame, rows, organ: str | None = None, step_mm: float | None = None,
             scale: float = 1.0) -> Path:
    rows = np.asarray(rows, dtype=np.float64)
    pts = frame.pts(rows[:, :3], organ)
    return smooth_path(pts, rows[:, 3] * scale, step_mm=step_mm)


def paint_vessel(canvas: Canvas, path: Path, tissue: int, organ: int, into) -> None:
    tf = tube_field(canvas.grid, path, want_t=False)
    if tf is not None:
        canvas.paint(tf.box, tf.q <= 1, tissue, into, organ)


def paint_great_vessels(canvas: Canvas, frame: Frame) -> dict[str, Path]:
    """Aorta, IVC and their iliac branches; they claim free space before any organ."""
    into = lut(T.FAT)
    paths = {"aorta": ref_path(frame, AORTA), "ivc": ref_path(frame, IVC)}
    paint_vessel(canvas, paths["aorta"], T.ARTERY, lid("aorta"), into)
    paint_vessel(canvas, paths["ivc"], T.IVC, lid("inferior_vena_cava"), into)
    for side in (1.0, -1.0):
        art = ref_path(frame, [(-8, -3, -85, 7.5), (side * 40, -8, -128, 7.0), (side * 56, -5, -165, 6.5)])
        vein = ref_path(frame, [(24, -12, -100, 8.5), (side * 38, -16, -128, 8.0), (side * 52, -14, -165, 7.5)])
        paint_vessel(canvas, art, T.ARTERY, lid("iliac_artery"), into)
        paint_vessel(canvas, vein, T.IVC, lid("iliac_vena"), into)
    return paths


def paint_visceral_vessels(canvas: Canvas, frame: Frame) -> dict[str, Path]:
    """Portal system (labelled), SMA and renal veins (unlabelled, as in TotalSegmentator 'total')."""
    into = lut(T.FAT)
    portal = lid("portal_vein_and_splenic_vein")
    paths = {
        "portal_vein": ref_path(frame, PORTAL),
        "smv": ref_path(frame, SMV),
        "splenic_vein": ref_path(frame, SPLENIC_VEIN),
        "sma": ref_path(frame, SMA),
    }
    for name in ("portal_vein", "smv", "splenic_vein"):
        paint_vessel(canvas, paths[name], T.PORTAL, portal, into)
    paint_vessel(canvas, paths["sma"], T.ARTERY, 0, into)
    paint_vessel(canvas, ref_path(frame, LEFT_RENAL_VEIN), T.IVC, 0, into)
    paint_vessel(canvas, ref_path(frame, RIGHT_RENAL_VEIN), T.IVC, 0, into)
    return paths
