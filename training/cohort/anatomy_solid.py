"""Solid organs: kidneys, adrenals, spleen, gallbladder and the liver with its Couinaud
segments (I-VIII) and intrahepatic vessels.

Couinaud segments follow the classic landmarks: the middle hepatic vein plane (Cantlie's line,
gallbladder fossa to IVC) splits right from left liver; the right hepatic vein plane splits the
right liver into the anterior (V/VIII) and posterior (VI/VII) sectors; the left hepatic vein /
umbilical plane splits segment IV from the lateral segments II/III; the portal plane splits
superior (VII, VIII, II) from inferior (VI, V, III) segments; the caudate lobe (I) sits between
the IVC and the porta hepatis.
"""
from __future__ import annotations

import numpy as np

from .anatomy_frame import Frame
from .anatomy_vessels import HEPATIC_VEINS, PORTAL_BRANCHES, paint_vessel, ref_path
from .grid import Box, Canvas, lid, lut
from .intensities import Tissue as T
from .shapes import ellipsoid_box, ellipsoid_rho, rot_x, rot_y, rot_z

FREE = lut(T.FAT)


def paint_kidneys_and_adrenals(canvas: Canvas, frame: Frame) -> None:
    grid = canvas.grid
    for side, name, zc in ((1.0, "kidney_right", -12.0), (-1.0, "kidney_left", 2.0)):
        c = frame.p(side * 68.0, -28.0, zc, name)
        semi = np.array([24.0, 20.0, 54.0]) * frame.s(name)
        rot = rot_z(side * -25.0) @ rot_y(side * -12.0)
        box = ellipsoid_box(grid, c, semi, rot)
        if box is None:
            continue
        rho = ellipsoid_rho(box, c, semi, rot)
        hilum = np.array([-side, 0.55, 0.0]) / np.hypot(1.0, 0.55)
        toward = ((box.x - c[0]) * hilum[0] + (box.y - c[1]) * hilum[1]) / np.float32(semi[0])
        tissue = np.where(rho > 0.78, T.KIDNEY_CORTEX, T.KIDNEY_MEDULLA).astype(np.uint8)
        tissue = np.where((rho <= 0.72) & (toward > 0.25), T.RENAL_SINUS, tissue).astype(np.uint8)
        canvas.paint(box, rho <= 1, tissue, FREE, lid(name))
    for side, name, jit, c_ref in ((1.0, "adrenal_gland_right", "adrenal_right", (36.0, -20.0, 50.0)),
                                    (-1.0, "adrenal_gland_left", "adrenal_left", (-34.0, -16.0, 42.0))):
        c = frame.p(*c_ref, jit)
        semi = np.array([3.5, 13.0, 14.0]) * frame.s(jit)
        rot = rot_z(side * -30.0)
        box = ellipsoid_box(grid, c, semi, rot)
        if box is not None:
            canvas.paint(box, ellipsoid_rho(box, c, semi, rot) <= 1, T.ADRENAL, FREE, lid(name))


def paint_spleen(canvas: Canvas, frame: Frame) -> None:
    c = frame.p(-96.0, -28.0, 52.0, "spleen")
    semi = np.array([24.0, 58.0, 52.0]) * frame.s("spleen")
    rot = rot_z(30.0)
    box = ellipsoid_box(canvas.grid, c, semi, rot)
    if box is None:
        return
    hilum_c = frame.p(-64.0, -8.0, 50.0, "spleen")
    hilum = ellipsoid_rho(box, hilum_c, np.array([22.0, 30.0, 40.0]) * frame.s("spleen")) <= 1
    canvas.paint(box, (ellipsoid_rho(box, c, semi, rot) <= 1) & ~hilum, T.SPLEEN, FREE, lid("spleen"))


def paint_gallbladder(canvas: Canvas, frame: Frame) -> None:
    c = frame.p(44.0, 40.0, 18.0, "gallbladder")
    semi = np.array([15.0, 16.0, 34.0]) * frame.s("gallbladder")
    rot = rot_x(25.0)
    box = ellipsoid_box(canvas.grid, c, semi, rot)
    if box is None:
        return
    rho = ellipsoid_rho(box, c, semi, rot)
    tissue = np.where(rho > 1 - 2.0 / semi[0], T.GI_WALL, T.BILE).astype(np.uint8)
    canvas.paint(box, rho <= 1, tissue, FREE, lid("gallbladder"))


def _side(px, py, p0, p1):
    """z of the 2D cross product (p1 - p0) x (p - p0): > 0 left of the directed line p0 -> p1."""
    return (p1[0] - p0[0]) * (py - p0[1]) - (p1[1] - p0[1]) * (px - p0[0])


def couinaud_segments(box: Box, frame: Frame) -> np.ndarray:
    """Couinaud segment number (1-8) of every voxel in ``box`` (uint8, box shape), from planes
    through the hepatic veins, the portal plane and the caudate ellipsoid (reference anatomy)."""
    off = frame.offsets["liver"]
    xr, yr = frame.to_ref(box.x - np.float32(off[0]), box.y - np.float32(off[1]))
    zr = box.z - np.float32(frame.dz + off[2])
    mid = HEPATIC_VEINS["middle"]
    rgt = HEPATIC_VEINS["right"]
    lft = HEPATIC_VEINS["left"]
    right_liver = _side(xr, yr, mid[0], mid[-1]) < 0
    posterior = _side(xr, yr, rgt[0], rgt[-1]) < 0
    lateral = _side(xr, yr, lft[0], lft[-1]) > 0
    superior = zr > 38.0
    seg2_not3 = (zr - 38.0) - 0.6 * (yr - 30.0) > 0  # II: posterosuperior, III: anteroinferior
    seg = np.full(np.broadcast_shapes(xr.shape, zr.shape), 4, dtype=np.uint8)
    seg = np.where(lateral, np.where(seg2_not3, 2, 3), seg)
    seg = np.where(right_liver & posterior, np.where(superior, 7, 6), seg)
    seg = np.where(right_liver & ~posterior, np.where(superior, 8, 5), seg)
    caudate = ((xr - 6.0) / 15.0) ** 2 + ((yr - 6.0) / 13.0) ** 2 + ((zr - 58.0) / 24.0) ** 2 <= 1
    return np.where(caudate, 1, seg).astype(np.uint8)


def liver_shape(box: Box, frame: Frame) -> np.ndarray:
    """Boolean liver mask (before clipping by other organs): right lobe + left lobe ellipsoids
    cut by the oblique inferior surface."""
    s = frame.s("liver")
    off = frame.offsets["liver"]
    xr, yr = frame.to_ref(box.x - np.float32(off[0]), box.y - np.float32(off[1]))
    zr = box.z - np.float32(frame.dz + off[2])
    right = ((xr - 68) / (70 * s)) ** 2 + ((yr - 2) / (86 * s)) ** 2 + ((zr - 54) / (80 * s)) ** 2 <= 1
    # inferior surface: oblique (lower laterally and posteriorly) and gently curved
    right &= zr > 22.0 - 0.42 * (xr - 20.0) + 0.12 * yr + 0.0035 * (xr - 55.0) ** 2 - 0.002 * yr ** 2
    left = ((xr - 2) / (60 * s)) ** 2 + ((yr - 46) / (36 * s)) ** 2 + ((zr - 70) / (40 * s)) ** 2 <= 1
    left &= zr > 46.0 - 0.08 * xr - 0.15 * (yr - 40.0)
    return right | left


def paint_liver(canvas: Canvas, frame: Frame) -> None:
    grid = canvas.grid
    lo = frame.p(-80.0, -100.0, -60.0, "liver")
    hi = frame.p(150.0, 100.0, 140.0, "liver")
    box = grid.box(lo, hi)
    if box is None:
        return
    mask = liver_shape(box, frame)
    seg = couinaud_segments(box, frame)
    part_ids = np.zeros(9, dtype=np.uint8)
    for n in range(1, 9):
        part_ids[n] = lid(f"liver_segment_{n}")
    canvas.paint(box, mask, T.LIVER, FREE, lid("liver"), part_ids[seg])
    # intrahepatic vessels stay labelled liver (as TotalSegmentator's liver mask includes them)
    inside = lut(T.LIVER)
    for rows in HEPATIC_VEINS.values():
        paint_vessel(canvas, ref_path(frame, rows, "liver"), T.HEPATIC_VEIN, lid("liver"), inside)
    for rows in PORTAL_BRANCHES.values():
        paint_vessel(canvas, ref_path(frame, rows, "liver"), T.PORTAL, lid("liver"), inside)
