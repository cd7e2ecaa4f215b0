"""Geometric primitives evaluated on grid boxes: ellipsoids and variable-radius tubes along
smooth paths. Every function works in world millimetres and returns fields only for the
bounding box of the shape."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .grid import Box, Grid


def rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random 3x3 rotation (columns = local axes in world)."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def local_coords(box: Box, centre, rot: np.ndarray | None):
    """Box voxel offsets from ``centre`` expressed along the rotation's axes (three arrays)."""
    dx = box.x - np.float32(centre[0])
    dy = box.y - np.float32(centre[1])
    dz = box.z - np.float32(centre[2])
    if rot is None:
        return dx, dy, dz
    r = rot.astype(np.float32)
    return tuple(r[0, k] * dx + r[1, k] * dy + r[2, k] * dz for k in range(3))


def ellipsoid_box(grid: Grid, centre, semi, rot: np.ndarray | None = None, pad: float = 0.0) -> Box | None:
    semi = np.asarray(semi, dtype=np.float64)
    ext = semi if rot is None else np.sqrt(((rot * semi[None, :]) ** 2).sum(axis=1))
    c = np.asarray(centre, dtype=np.float64)
    return grid.box(c - ext - pad, c + ext + pad)


def ellipsoid_rho(box: Box, centre, semi, rot: np.ndarray | None = None) -> np.ndarray:
    """Normalised radius (< 1 inside) of an ellipsoid over ``box``; float32, box shape."""
    u, v, w = local_coords(box, centre, rot)
    a, b, c = (np.float32(s) for s in semi)
    return np.sqrt((u / a) ** 2 + (v / b) ** 2 + (w / c) ** 2)


@dataclass(frozen=True)
class Path:
    """A smooth centreline: points (N, 3) mm, radii (N,) mm, arc-length parameter t (N,) in [0, 1]
    and ``knots`` (M,): the t of each control point the path was built from."""

    points: np.ndarray
    radii: np.ndarray
    t: np.ndarray
    knots: np.ndarray

    def at(self, t: float) -> np.ndarray:
        """World point at parameter t (linear between samples)."""
        return np.array([np.interp(t, self.t, self.points[:, a]) for a in range(3)])

def smooth_path(ctrl, radii, step_mm: float | None = None) -> Path:
    """Catmull-Rom curve through control points (M, 3) with radii (M,), resampled every ~step
    (default: about the tube radius, 6-20 mm: fewer, longer segments for wide tubes overlap less
    while the chord error stays near a millimetre)."""
    ctrl = np.asarray(ctrl, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    if step_mm is None:
        step_mm = float(np.clip(0.9 * np.median(radii), 6.0, 20.0))
    ext = np.vstack([2 * ctrl[0] - ctrl[1], ctrl, 2 * ctrl[-1] - ctrl[-2]])
    pts, rad, seg_of = [], [], []
    for i in range(len(ctrl) - 1):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        n = max(2, int(math.ceil(np.linalg.norm(p2 - p1) / step_mm)))
        s = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
        seg = 0.5 * ((2 * p1) + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s ** 2
                     + (-p0 + 3 * p1 - 3 * p2 + p3) * s ** 3)
        pts.append(seg)
        rad.append(radii[i] + (radii[i + 1] - radii[i]) * s[:, 0])
        seg_of.append(np.full(n, i))
    pts.append(ctrl[-1:])
    rad.append(radii[-1:])
    seg_of.append(np.array([len(ctrl) - 1]))
    points = np.vstack(pts)
    r = np.concatenate(rad)
    seg_idx = np.concatenate(seg_of)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    t = arc / max(arc[-1], 1e-6)
    knots = np.array([t[np.argmax(seg_idx >= i)] for i in range(len(ctrl))])
    return Path(points, r, t, knots)


@dataclass
class TubeField:
    """Distance field of a tube over its bounding box.

    q: float32 box-shaped d / r(t) (< 1 inside the tube); t: float32 path parameter of the
    nearest centreline point (None when not asked for).
    """

    box: Box
    q: np.ndarray
    t: np.ndarray | None


def tube_field(grid: Grid, path: Path, scale: float = 1.0, want_t: bool = True) -> TubeField | None:
    """Evaluate a tube of radius ``scale * path.radii`` segment by segment inside its box.

    Each segment only touches the voxels of its own padded bounding box; distances are built
    from 1-D coordinate differences by broadcasting, which keeps the per-segment cost small."""
    pts, rad, tt = path.points, path.radii * scale, path.t
    pad = float(rad.max())
    box = grid.box(pts.min(axis=0) - pad, pts.max(axis=0) + pad)
    if box is None:
        return None
    q = np.full(box.shape, np.inf, dtype=np.float32)
    t = np.zeros(box.shape, dtype=np.float32) if want_t else None
    start = np.array([s.start for s in box.sl])
    stop = np.array([s.stop for s in box.sl])
    origin, spacing = np.array(grid.origin), np.array(grid.spacing)
    p0, p1 = pts[:-1], pts[1:]
    rmax = np.maximum(rad[:-1], rad[1:])[:, None]
    i0 = np.maximum(np.ceil((np.minimum(p0, p1) - rmax - origin) / spacing).astype(int), start)
    i1 = np.minimum(np.floor((np.maximum(p0, p1) + rmax - origin) / spacing).astype(int) + 1, stop)
    axes = grid.axes
    for i in np.flatnonzero(np.all(i1 > i0, axis=1)):
        a, b = i0[i], i1[i]
        seg = (p1[i] - p0[i]).astype(np.float32)
        ll = np.float32(max(float(seg @ seg), 1e-6))
        dx = (axes[0][a[0]:b[0]] - np.float32(p0[i][0]))[:, None, None]
        dy = (axes[1][a[1]:b[1]] - np.float32(p0[i][1]))[None, :, None]
        dz = (axes[2][a[2]:b[2]] - np.float32(p0[i][2]))[None, None, :]
        dot = (dx * seg[0] + dy * seg[1]) + dz * seg[2]
        u = dot * (np.float32(1.0) / ll)
        np.clip(u, 0.0, 1.0, out=u)
        # squared distance to the segment: |d|^2 - u (2 d.s - u |s|^2)
        dist = (dx * dx + dy * dy) + dz * dz
        dot *= 2.0
        dot -= u * ll
        dot *= u
        dist -= dot
        np.maximum(dist, 0.0, out=dist)
        np.sqrt(dist, out=dist)
        radius = u * np.float32(rad[i + 1] - rad[i])
        radius += np.float32(rad[i])
        dist /= radius
        local = tuple(slice(lo - s0, hi - s0) for lo, hi, s0 in zip(a, b, start))
        qv = q[local]
        better = dist < qv
        qv[better] = dist[better]
        if want_t:
            t[local][better] = u[better] * np.float32(tt[i + 1] - tt[i]) + np.float32(tt[i])
    return TubeField(box, q, t)
