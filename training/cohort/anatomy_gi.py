"""Hollow digestive organs and the pancreas as tubes along smooth centrelines: esophagus,
stomach (cardia, fundus, body, antrum, pylorus), duodenum, pancreas (head, body, tail), colon
(cecum to rectum) and small-bowel loops.

Hollow organs get an enhancing wall and a lumen of fluid with an air-fluid level (air rises
anteriorly in a supine patient); the colon holds mottled stool with gas bubbles.
"""
from __future__ import annotations

import numpy as np

from .anatomy_frame import Frame
from .anatomy_vessels import ref_path
from .grid import Canvas, lid, lut
from .intensities import Tissue as T
from .shapes import Path, TubeField, smooth_path, tube_field

FREE = lut(T.FAT)

ESOPHAGUS = [(-2, 4, 145, 9.0), (-6, 8, 112, 9.0), (-20, 12, 94, 9.5), (-38, 8, 84, 10.0)]
GE_JUNCTION = (-38.0, 8.0, 84.0)
STOMACH = [(-58, -8, 106, 26), (-62, 4, 90, 33), (-66, 26, 66, 34), (-58, 44, 42, 30), (-34, 58, 24, 25),
           (-4, 62, 16, 21), (18, 50, 16, 17), (30, 36, 18, 11)]
DUODENUM = [(30, 36, 18, 11), (46, 26, 15, 12), (56, 10, 6, 12), (57, 5, -16, 12), (52, 7, -36, 11),
            (34, 13, -46, 10), (5, 14, -50, 10), (-20, 15, -45, 10), (-30, 17, -30, 10), (-27, 22, -16, 10)]
PANCREAS = [(30, 8, -22, 12), (31, 14, -8, 17), (14, 24, 4, 12), (-12, 21, 12, 11), (-44, 5, 20, 10),
            (-72, -14, 30, 9)]
COLON = [(86, 26, -104, 27), (94, 16, -72, 24), (96, 12, -30, 22), (86, 30, -4, 21), (50, 56, -22, 20),
         (0, 60, -40, 20), (-50, 56, -24, 20), (-86, 30, 22, 19), (-102, 6, 0, 18), (-102, 2, -50, 17),
         (-96, 12, -86, 17), (-66, 36, -106, 16), (-20, 36, -118, 16), (8, 0, -124, 16), (2, -32, -140, 18)]
# colon parts by control point index where each part starts
COLON_PARTS = (("cecum", 0), ("ascending_colon", 1), ("transverse_colon", 3), ("descending_colon", 7),
               ("sigmoid_colon", 10), ("rectum", 13))


def _parts_by_t(t: np.ndarray, starts: list[tuple[str, float]]) -> np.ndarray:
    out = np.zeros(t.shape, dtype=np.uint8)
    for name, t0 in starts:
        out[t >= t0] = lid(name)
    return out


def _hollow_tissue(tf: TubeField, path: Path, wall_mm: float, content: int, air_level: float,
                   texture: np.ndarray | None = None, bubbles: float | None = None) -> np.ndarray:
    """Wall / content / gas tissue classes over a tube field (uint8, box shape).

    air_level: gas fills the lumen where the voxel is more than ``air_level * r`` anterior to the
    centreline (1 = no gas). bubbles: texture threshold above which stool holds gas pockets."""
    r = np.interp(tf.t, path.t, path.radii).astype(np.float32)
    cy = np.interp(tf.t, path.t, path.points[:, 1]).astype(np.float32)
    wall = tf.q * r > r - np.float32(wall_mm)
    tissue = np.where(wall, T.GI_WALL, content).astype(np.uint8)
    gas = ~wall & ((tf.box.y - cy) > np.float32(air_level) * r)
    if bubbles is not None and texture is not None:
        gas |= ~wall & (texture[tf.box.sl] > np.float32(bubbles))
    tissue[gas] = T.GI_AIR
    return tissue


def paint_esophagus(canvas: Canvas, frame: Frame) -> Path:
    path = ref_path(frame, ESOPHAGUS, "esophagus", scale=frame.s("esophagus"))
    tf = tube_field(canvas.grid, path)
    if tf is not None:
        tissue = np.where(tf.q < 0.22, T.GI_AIR, T.GI_WALL).astype(np.uint8)
        canvas.paint(tf.box, tf.q <= 1, tissue, FREE, lid("esophagus"), lid("esophagus_lower"))
    return path


def paint_stomach_and_duodenum(canvas: Canvas, frame: Frame, rng: np.random.Generator) -> dict[str, Path]:
    s = frame.s("stomach")
    stomach = ref_path(frame, STOMACH, "stomach", scale=s)
    tf = tube_field(canvas.grid, stomach)
    if tf is not None:
        k = stomach.knots
        parts = _parts_by_t(tf.t, [("stomach_body", 0.0), ("stomach_antrum", k[4]),
                                   ("stomach_pylorus", 0.5 * (k[6] + k[7]))])
        gej = frame.p(*GE_JUNCTION, "esophagus")
        above = tf.box.z > np.float32(gej[2])
        parts[above & (tf.t < k[3])] = lid("stomach_fundus")
        near = np.sqrt((tf.box.x - gej[0]) ** 2 + (tf.box.y - gej[1]) ** 2 + (tf.box.z - gej[2]) ** 2) < 24 * s
        parts[near & (tf.t < k[3])] = lid("stomach_cardia")
        tissue = _hollow_tissue(tf, stomach, 5.0, T.GI_FLUID, rng.uniform(0.0, 0.6))
        canvas.paint(tf.box, tf.q <= 1, tissue, FREE, lid("stomach"), parts)
    duodenum = ref_path(frame, DUODENUM, "duodenum", scale=frame.s("duodenum"))
    tf = tube_field(canvas.grid, duodenum)
    if tf is not None:
        tissue = _hollow_tissue(tf, duodenum, 3.0, T.GI_FLUID, rng.uniform(0.4, 1.0))
        canvas.paint(tf.box, tf.q <= 1, tissue, FREE, lid("duodenum"))
    return {"stomach": stomach, "duodenum": duodenum}


def pancreas_path(frame: Frame) -> Path:
    return ref_path(frame, PANCREAS, "pancreas", scale=frame.s("pancreas"))


def pancreas_parts(t: np.ndarray, path: Path) -> np.ndarray:
    k = path.knots
    return _parts_by_t(t, [("pancreas_head", 0.0), ("pancreas_body", k[2]), ("pancreas_tail", 0.5 * (k[3] + k[4]))])


def paint_pancreas(canvas: Canvas, frame: Frame) -> Path:
    path = pancreas_path(frame)
    tf = tube_field(canvas.grid, path)
    if tf is not None:
        canvas.paint(tf.box, tf.q <= 1, T.PANCREAS, FREE, lid("pancreas"), pancreas_parts(tf.t, path))
    return path


def paint_colon(canvas: Canvas, frame: Frame, texture: np.ndarray, rng: np.random.Generator) -> Path:
    path = ref_path(frame, COLON, "colon", scale=frame.s("colon"))
    tf = tube_field(canvas.grid, path)
    if tf is not None:
        parts = _parts_by_t(tf.t, [(name, path.knots[i]) for name, i in COLON_PARTS])
        tissue = _hollow_tissue(tf, path, 3.0, T.STOOL, rng.uniform(0.2, 0.8), texture, bubbles=1.1)
        canvas.paint(tf.box, tf.q <= 1, tissue, FREE, lid("colorectum"), parts)
    return path


def paint_small_bowel(canvas: Canvas, frame: Frame, rng: np.random.Generator) -> None:
    """A few fluid-filled loops as smooth random walks in the mid and lower abdomen; they only
    take space no other organ claimed."""
    lo = np.array([-70.0, -10.0, -125.0])
    hi = np.array([70.0, 55.0, -25.0])
    for _ in range(int(rng.integers(4, 7))):
        p = rng.uniform(lo, hi)
        d = rng.standard_normal(3)
        d /= np.linalg.norm(d)
        ctrl = [p.copy()]
        for _ in range(int(rng.integers(10, 18))):
            d = d + rng.normal(0.0, 0.7, 3)
            d /= np.linalg.norm(d)
            nxt = p + 16.0 * d
            out = (nxt < lo) | (nxt > hi)
            d[out] *= -1.0
            p = np.clip(p + 16.0 * d, lo, hi)
            ctrl.append(p.copy())
        radius = rng.uniform(10.0, 13.0) * frame.s("small_bowel")
        path = smooth_path(frame.pts(ctrl, "small_bowel"), np.full(len(ctrl), radius))
        tf = tube_field(canvas.grid, path)
        if tf is not None:
            tissue = _hollow_tissue(tf, path, 2.5, T.GI_FLUID, rng.uniform(0.5, 1.0))
            canvas.paint(tf.box, tf.q <= 1, tissue, FREE, lid("small_bowel"))
