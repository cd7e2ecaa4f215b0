"""Body wall, skeleton, trunk muscles, heart and lung bases of a synthetic case."""
from __future__ import annotations

import numpy as np

from .anatomy_frame import REF_CAVITY_BACK, Frame
from .grid import Canvas, lid, lut
from .intensities import Tissue as T
from .shapes import Path, ellipsoid_box, ellipsoid_rho, smooth_path, tube_field

_P = 2.4  # superellipse exponent: a boxy, lying-down abdomen


def superellipse(x, y, half_width: float, front: float, back: float) -> np.ndarray:
    """Level (< 1 inside) of a superellipse spanning [-half_width, half_width] x [back, front]."""
    yc, hb = (front + back) / 2.0, (front - back) / 2.0
    return np.abs(x / np.float32(half_width)) ** _P + np.abs((y - np.float32(yc)) / np.float32(hb)) ** _P


def paint_body_wall(canvas: Canvas, frame: Frame) -> None:
    """Skin, subcutaneous fat, muscle wall and the (fat-filled) cavity; air and the circle
    outside the reconstruction field elsewhere. The body is the same at every z."""
    grid, b = canvas.grid, frame.body
    x = grid.axes[0][:, None]
    y = grid.axes[1][None, :]
    front, back = b.centre_y + b.half_depth, b.centre_y - b.half_depth
    flat_back = back + 0.07 * b.half_depth
    body = (superellipse(x, y, b.half_width, front, back) <= 1) & (y >= flat_back)
    under_skin = (superellipse(x, y, b.half_width - 2, front - 2, back + 2) <= 1) & (y >= flat_back + 2)
    muscle_out = superellipse(x, y, b.half_width - b.fat_side, front - b.fat_front, back + b.fat_back) <= 1
    cavity = superellipse(x, y, b.cavity_half_width, b.cavity_front, b.cavity_back) <= 1
    slab = np.full(body.shape, T.AIR, dtype=np.uint8)
    slab[body] = T.SKIN
    slab[under_skin] = T.FAT_SUBCUT
    slab[under_skin & muscle_out] = T.MUSCLE_WALL
    slab[under_skin & cavity] = T.FAT
    radius = 0.5 * min(grid.shape[0] * grid.spacing[0], grid.shape[1] * grid.spacing[1])
    slab[(x ** 2 + y ** 2 > radius ** 2) & (slab == T.AIR)] = T.OUTSIDE_FOV
    canvas.tissue[...] = slab[:, :, None]
    # paraspinal (autochthon) muscles: two bellies either side of the spinous processes, filling
    # the thick midline part of the posterior wall
    cy = b.spine_back - 0.5 * (b.back_wall - 4.0)
    bellies = ((np.abs(x) - 30.0) / 31.0) ** 2 + ((y - cy) / (0.5 * b.back_wall)) ** 2 <= 1
    bellies |= (np.abs(x) < 14.0) & (y < b.spine_back)  # between them, behind the spine
    posterior = bellies & ((slab == T.MUSCLE_WALL) | (slab == T.FAT)) & (y < b.spine_back + 4)
    canvas.tissue[posterior] = T.MUSCLE
    canvas.organs[posterior] = lid("autochthon")


LEVEL_MM = 35.0  # one vertebral body plus its disc
BODY_HALF_MM = 14.0  # half height of a vertebral body


# vertebral levels, top to bottom: (label, reference z of the body centre, body semi-axes x, y)
def _levels():
    names = ["T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    out = []
    for n, name in enumerate(names):
        z = 134.0 - LEVEL_MM * n
        out.append((name, z, 20.0 + 0.8 * n, 15.0 + 0.5 * n))
    return out


def spine_centre_y(frame: Frame) -> float:
    """World y of the vertebral body centres."""
    return float(frame.p(0, REF_CAVITY_BACK + 12, 0)[1])


def paint_spine(canvas: Canvas, frame: Frame) -> None:
    """Vertebral bodies (cortex + marrow), discs, posterior elements, canal with the cord."""
    grid = canvas.grid
    into = lut(T.AIR, T.SKIN, T.OUTSIDE_FOV, invert=True)
    yc = spine_centre_y(frame)
    for name, zr, ax, ay in _levels():
        zc = zr + frame.dz
        label = lid("thoracic_vertebrae") if name.startswith("T") else lid("lumbar_vertebrae")
        half = LEVEL_MM / 2.0
        box = grid.box((-70, yc - 80, zc - half), (70, yc + ay + 2, zc + half))
        if box is None:
            continue
        dx, dy, dz = box.x, box.y - np.float32(yc), box.z - np.float32(zc)
        ell = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2)
        in_body_z = np.abs(dz) <= BODY_HALF_MM
        body = (ell <= 1) & in_body_z
        canvas.paint(box, body & ((ell > 1 - 2.5 / ay) | (np.abs(dz) > BODY_HALF_MM - 1.5)), T.BONE_CORTEX, into, label)
        canvas.paint(box, body & (ell <= 1 - 2.5 / ay) & (np.abs(dz) <= BODY_HALF_MM - 1.5), T.BONE_MARROW, into, label)
        canvas.paint(box, (ell <= 0.97) & ~in_body_z, T.DISC, into, 0)
        # canal and posterior arch (continuous: laminae and facets), spinous and transverse processes
        cy = yc - ay - 11.0
        rr = np.sqrt(dx ** 2 + (box.y - np.float32(cy)) ** 2)
        arch = (rr > 9.5) & (rr <= 16.0) & (box.y < yc - ay + 3)
        spinous = (np.abs(dx) <= 4.0) & (box.y < cy - 12) & (box.y > cy - 42) & (np.abs(dz) <= 10.0)
        trans_len = 38.0 if name.startswith("L") else 26.0
        transverse = (np.abs(dx) <= trans_len) & (np.abs(box.y - np.float32(cy + 6)) <= 3.5) & (np.abs(dz) <= 5.0)
        canvas.paint(box, arch | spinous | transverse, T.RIB, into, label)
        canvas.paint(box, (rr <= 9.5) & (rr > 5.0), T.CSF, into, 0)
        canvas.paint(box, rr <= 5.0, T.CORD, into, lid("spinal_cord"))


def paint_ribs_and_hips(canvas: Canvas, frame: Frame) -> None:
    """Rib cross-sections in the wall above the costal margin; iliac wings below the crest."""
    grid, b = canvas.grid, frame.body
    into = lut(T.MUSCLE_WALL, T.FAT_SUBCUT, T.FAT, T.MUSCLE)
    lo_z = frame.dz - 20.0
    box = grid.box((-400, -400, lo_z), (400, 400, 400))
    if box is not None:
        x, y, z = box.x, box.y, box.z
        ring = ((superellipse(x, y, b.cavity_half_width + 11, b.cavity_front + 11, b.cavity_back - 11) <= 1)
                & (superellipse(x, y, b.cavity_half_width + 1, b.cavity_front + 1, b.cavity_back - 1) > 1))
        xr, yr = frame.to_ref(x, y)
        margin = -10.0 + 0.45 * (yr + 60.0) + frame.dz  # costal margin: lower at the back
        zz = z - np.float32(frame.dz) + 0.5 * (yr - REF_CAVITY_BACK)  # ribs descend anteriorly
        phase = np.mod(zz - 4.0, 25.0)
        band = (phase < 7.0) & (z > margin)
        keep = ring & band & ~((np.abs(xr) < 35) & (yr > 30)) & ~(np.abs(xr) < 38)
        right = keep & (x > 0)
        canvas.paint(box, right, T.RIB, into, lid("rib_right"))
        canvas.paint(box, keep & ~right, T.RIB, into, lid("rib_left"))
    for side in (1.0, -1.0):
        c = frame.p(side * 30.0, -15.0, -90.0)
        semi = (95.0 * frame.sx, 62.0 * frame.sy, 110.0)
        hb = ellipsoid_box(grid, c, semi)
        if hb is None:
            continue
        rho = ellipsoid_rho(hb, c, semi)
        xr, yr = frame.to_ref(hb.x, hb.y)
        wing = ((rho <= 1) & (rho > 1 - 5.0 / semi[1]) & (hb.z < c[2] + 2) & (yr < 22)
                & (np.abs(xr) > 32) & (np.sign(hb.x) == side))
        canvas.paint(hb, wing, T.RIB, lut(T.MUSCLE_WALL, T.FAT_SUBCUT, T.FAT, T.MUSCLE), lid("hip"))


def paint_psoas(canvas: Canvas, frame: Frame) -> None:
    into = lut(T.FAT)
    ys = REF_CAVITY_BACK + 22.0
    for side in (1.0, -1.0):
        ctrl = [frame.p(side * x, ys, z) for x, z in ((22, 44), (27, 10), (34, -30), (42, -70), (50, -110), (56, -150))]
        path = smooth_path(ctrl, [3.0, 9.0, 15.0, 20.0, 23.0, 24.0], step_mm=12.0)
        tf = tube_field(canvas.grid, path, want_t=False)
        if tf is not None:
            canvas.paint(tf.box, tf.q <= 1, T.MUSCLE, into, lid("iliopsoas"))


def paint_heart_and_lungs(canvas: Canvas, frame: Frame, sleeves: tuple[Path, ...] = ()) -> None:
    """Everything free above the diaphragm: the heart's inferior part, then the lung bases.
    ``sleeves``: tubes (esophagus, aorta with a margin) kept as mediastinal fat."""
    grid = canvas.grid
    for sleeve in sleeves:
        tf = tube_field(grid, sleeve, want_t=False)
        if tf is not None:
            canvas.paint(tf.box, tf.q <= 1, T.RESERVED, lut(T.FAT))
    top = grid.extent_mm[1][2]
    box = grid.box((-400, -400, frame.dz + 20.0), (400, 400, top + 1))
    if box is None:
        canvas.tissue[canvas.tissue == T.RESERVED] = T.FAT
        return
    above = box.z > frame.diaphragm_z(box.x, box.y)
    c = frame.p(-15.0, 40.0, 150.0, "heart")
    semi = np.array([80.0, 58.0, 62.0]) * frame.s("heart")
    heart = ellipsoid_rho(box, c, semi) <= 1
    canvas.paint(box, above & heart, T.HEART, lut(T.FAT), lid("heart"))
    right = box.x > 0
    canvas.paint(box, above & right, T.LUNG, lut(T.FAT), lid("lung_lower_lobe_right"))
    canvas.paint(box, above & ~right, T.LUNG, lut(T.FAT), lid("lung_lower_lobe_left"))
    canvas.tissue[canvas.tissue == T.RESERVED] = T.FAT


def paint_frame_structures(canvas: Canvas, frame: Frame) -> None:
    paint_body_wall(canvas, frame)
    paint_spine(canvas, frame)
    paint_ribs_and_hips(canvas, frame)


