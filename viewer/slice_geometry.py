"""Where each voxel lands on screen in the axial, coronal and sagittal views.

The views slice the CT in its own voxel order (no resampling, so a slice change is a numpy view
and a copy) and lay the slice out on screen in radiological convention, derived from the affine:

- axial:    patient right on screen left, anterior up   (screen right = L, up = A)
- coronal:  patient right on screen left, superior up   (screen right = L, up = S)
- sagittal: anterior on screen left, superior up        (screen right = P, up = S), as in 3D Slicer

For each plane we find the voxel axis closest to each screen axis (like ITK-SNAP's anatomical
slicing); for an oblique acquisition the slice is the voxel plane nearest the anatomical one and the
orientation letters name the dominant direction plus any secondary one beyond ~10 degrees.

Display coordinates (u, v) are millimetres on the view's plane: u grows to screen right, v to
screen up, and pixel (row r, col c) of a slice sits at (u0 + c*du, v0 + r*dv).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PLANES = ("axial", "coronal", "sagittal")

# (world axis, sign) of screen right and screen up; world axes 0=x(R), 1=y(A), 2=z(S)
_SCREEN_AXES = {
    "axial": ((0, -1), (1, +1)),
    "coronal": ((0, -1), (2, +1)),
    "sagittal": ((1, -1), (2, +1)),
}
# plane whose slices are perpendicular to each world axis (names the crosshair colours)
PLANE_OF_WORLD_AXIS = {0: "sagittal", 1: "coronal", 2: "axial"}
NORMAL_WORLD_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}

_LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))  # (negative, positive) end of each world axis
_OBLIQUE = np.sin(np.radians(10.0))


def direction_letters(direction: np.ndarray) -> str:
    """Anatomical letters of a world direction: dominant first, e.g. (-1,0,0) -> 'L', tilted -> 'LA'."""
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    order = np.argsort(-np.abs(d))
    out = ""
    for rank, ax in enumerate(order):
        if rank == 0 or abs(d[ax]) > _OBLIQUE:
            out += _LETTERS[ax][int(d[ax] > 0)]
    return out


def voxel_axis_of_world(affine: np.ndarray) -> tuple[list[int], list[int]]:
    """For each world axis (x, y, z): the voxel axis that runs most nearly along it, and the sign.

    Greedy over the largest |cosines| (as nibabel's io_orientation), so each voxel axis is used once.
    """
    m = np.asarray(affine, dtype=float)[:3, :3]
    cos = m / np.linalg.norm(m, axis=0, keepdims=True)  # cos[w, a]: world axis w vs voxel axis a
    work = np.abs(cos)
    axis = [0, 0, 0]
    sign = [1, 1, 1]
    for _ in range(3):
        w, a = np.unravel_index(int(np.argmax(work)), work.shape)
        axis[w] = int(a)
        sign[w] = 1 if cos[w, a] >= 0 else -1
        work[w, :] = -1.0
        work[:, a] = -1.0
    return axis, sign


@dataclass(frozen=True, eq=False)
class SliceGeometry:
    """Voxel <-> display mapping of one plane for one volume grid (shape + affine)."""

    plane: str
    shape: tuple[int, int, int]
    affine: np.ndarray
    axis_u: int  # voxel axis along screen right
    axis_v: int  # voxel axis along screen up
    axis_n: int  # voxel axis across slices
    flip_u: bool  # True when voxel index grows toward screen left
    flip_v: bool  # True when voxel index grows toward screen down
    sign_n: int  # +1 when voxel index grows toward the plane's positive world axis (S, A, R)
    du: float  # mm per column
    dv: float  # mm per row
    u0: float  # display u of column 0 centre
    v0: float  # display v of row 0 centre
    letters: dict  # {'left','right','top','bottom'} -> anatomical letters

    @classmethod
    def create(cls, plane: str, shape: tuple[int, int, int], affine: np.ndarray) -> "SliceGeometry":
        if plane not in _SCREEN_AXES:
            raise ValueError(f"unknown plane {plane!r}; expected one of {PLANES}")
        affine = np.asarray(affine, dtype=float)
        vox_of, sign_of = voxel_axis_of_world(affine)
        (wu, su), (wv, sv) = _SCREEN_AXES[plane]
        wn = NORMAL_WORLD_AXIS[plane]
        a_u, a_v, a_n = vox_of[wu], vox_of[wv], vox_of[wn]
        flip_u = sign_of[wu] * su < 0
        flip_v = sign_of[wv] * sv < 0
        cols = affine[:3, :3]
        du, dv = float(np.linalg.norm(cols[:, a_u])), float(np.linalg.norm(cols[:, a_v]))
        # screen-right / screen-up world directions as the voxel grid actually runs
        right = cols[:, a_u] * (-1 if flip_u else 1)
        up = cols[:, a_v] * (-1 if flip_v else 1)
        letters = {
            "right": direction_letters(right), "left": direction_letters(-right),
            "top": direction_letters(up), "bottom": direction_letters(-up),
        }
        # anchor display coords on the world coordinate of the volume centre (stable, readable)
        centre = (np.asarray(shape, dtype=float) - 1) / 2
        c_world = affine[:3, :3] @ centre + affine[:3, 3]
        u_c = su * c_world[wu]
        v_c = sv * c_world[wv]
        n_u, n_v = shape[a_u], shape[a_v]
        u0 = u_c - du * (n_u - 1) / 2
        v0 = v_c - dv * (n_v - 1) / 2
        return cls(plane, tuple(int(s) for s in shape), affine, a_u, a_v, a_n, bool(flip_u),
                   bool(flip_v), int(sign_of[wn]), du, dv, float(u0), float(v0), letters)

    # --- sizes ---------------------------------------------------------------------------
    @property
    def n_cols(self) -> int:
        return self.shape[self.axis_u]

    @property
    def n_rows(self) -> int:
        return self.shape[self.axis_v]

    @property
    def n_slices(self) -> int:
        return self.shape[self.axis_n]

    def extent(self) -> tuple[float, float, float, float]:
        """(u_min, u_max, v_min, v_max) of the slice's outer pixel edges, mm."""
        return (self.u0 - self.du / 2, self.u0 + self.du * (self.n_cols - 0.5),
                self.v0 - self.dv / 2, self.v0 + self.dv * (self.n_rows - 0.5))

    # --- slicing -------------------------------------------------------------------------
    def extract(self, volume: np.ndarray, index: int) -> np.ndarray:
        """2D view (n_rows, n_cols) of ``volume`` (I, J, K) at slice ``index``: row 0 = screen bottom."""
        return self.orient(_take(volume, index, self.axis_n))

    def orient(self, sl: np.ndarray) -> np.ndarray:
        """A slice in voxel order (the two remaining axes, ascending) as displayed (rows v, cols u)."""
        if self.axis_u < self.axis_v:
            sl = sl.T
        if self.flip_u:
            sl = sl[:, ::-1]
        if self.flip_v:
            sl = sl[::-1, :]
        return sl

    # --- coordinates ---------------------------------------------------------------------
    def world_to_voxel(self, world: np.ndarray) -> np.ndarray:
        inv = self.__dict__.get("_inv")
        if inv is None:  # cached: this runs several times per slice step
            inv = np.linalg.inv(self.affine)
            object.__setattr__(self, "_inv", inv)
        return inv[:3, :3] @ np.asarray(world, dtype=float) + inv[:3, 3]

    def voxel_to_world(self, voxel: np.ndarray) -> np.ndarray:
        return self.affine[:3, :3] @ np.asarray(voxel, dtype=float) + self.affine[:3, 3]

    def slice_index(self, world: np.ndarray) -> int:
        """Slice (voxel index along axis_n) that contains a world point, clamped to the volume."""
        k = int(np.rint(self.world_to_voxel(world)[self.axis_n]))
        return min(max(k, 0), self.n_slices - 1)

    def voxel_to_display(self, voxel: np.ndarray) -> tuple[float, float]:
        col = voxel[self.axis_u]
        row = voxel[self.axis_v]
        if self.flip_u:
            col = self.n_cols - 1 - col
        if self.flip_v:
            row = self.n_rows - 1 - row
        return float(self.u0 + self.du * col), float(self.v0 + self.dv * row)

    def world_to_display(self, world: np.ndarray) -> tuple[float, float]:
        return self.voxel_to_display(self.world_to_voxel(world))

    def display_to_voxel(self, u: float, v: float, slice_index: float) -> np.ndarray:
        """Fractional voxel (3,) under display point (u, v) on the given slice."""
        col = (u - self.u0) / self.du
        row = (v - self.v0) / self.dv
        if self.flip_u:
            col = self.n_cols - 1 - col
        if self.flip_v:
            row = self.n_rows - 1 - row
        vox = np.zeros(3)
        vox[self.axis_u], vox[self.axis_v], vox[self.axis_n] = col, row, slice_index
        return vox

    def display_to_world(self, u: float, v: float, slice_index: float) -> np.ndarray:
        return self.voxel_to_world(self.display_to_voxel(u, v, slice_index))

    def stepped(self, world: np.ndarray, delta: int) -> np.ndarray:
        """World point moved ``delta`` slices toward the plane's positive axis (S, A or R)."""
        vox = self.world_to_voxel(world)
        k = int(np.rint(vox[self.axis_n])) + int(delta) * self.sign_n
        vox[self.axis_n] = min(max(k, 0), self.n_slices - 1)
        return self.voxel_to_world(vox)

    def slice_position(self, index: int) -> str:
        """Where slice ``index`` lies along the plane's world axis, e.g. 'S 12.0 mm'."""
        vox = (np.asarray(self.shape, dtype=float) - 1) / 2
        vox[self.axis_n] = index
        w = NORMAL_WORLD_AXIS[self.plane]
        pos = self.voxel_to_world(vox)[w]
        return f"{_LETTERS[w][int(pos >= 0)]} {abs(pos):.1f} mm"


def _take(volume: np.ndarray, index: int, axis: int) -> np.ndarray:
    """A view (no copy) of one slice along ``axis``."""
    idx: list = [slice(None)] * 3
    idx[axis] = int(index)
    return volume[tuple(idx)]


def world_to_letters(world: np.ndarray) -> str:
    """RAS mm as a radiologist reads it, e.g. 'R 12.3  P 4.5  S 100.2'."""
    parts = []
    for ax, val in enumerate(np.asarray(world, dtype=float)):
        parts.append(f"{_LETTERS[ax][int(val >= 0)]} {abs(val):.1f}")
    return "  ".join(parts)
