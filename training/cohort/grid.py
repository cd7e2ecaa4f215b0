"""Voxel grid of a synthetic case, the sub-box arithmetic every painter uses, and the
label canvas the anatomy is painted on.

World coordinates are RAS millimetres (x towards the patient's right, y anterior, z superior).
Voxel (i, j, k) maps to world through a positive diagonal affine whose origin puts the volume
centre at (0, 0, 0), like the real example CT in shared/data. Painters work on small boxes, not
on the whole volume: that is what makes a case take a fraction of a second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from inference.labels import merged_labels

# Field of view used when the caller gives a shape but no spacing: a full abdominal axial FOV and
# dome-of-liver to pelvic-inlet craniocaudally.
DEFAULT_FOV_MM = (384.0, 384.0, 256.0)


@lru_cache(maxsize=None)
def lid(name: str) -> int:
    """Merged-scheme id (organ or substructure) of a label name; ids live only in the JSON table."""
    return merged_labels().by_name(name).id


@dataclass(frozen=True)
class Box:
    """A sub-box of the grid: index slices plus broadcastable world coordinates.

    x: (nx, 1, 1), y: (1, ny, 1), z: (1, 1, nz) float32 world mm of the voxel centres.
    """

    sl: tuple[slice, slice, slice]
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.x.shape[0], self.y.shape[1], self.z.shape[2])


class Grid:
    """Shape, spacing and affine of one synthetic volume."""

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float] | None = None):
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise ValueError(f"grid shape must be three sizes >= 8, got {shape}")
        if spacing is None:
            spacing = tuple(f / n for f, n in zip(DEFAULT_FOV_MM, self.shape))
        self.spacing = tuple(float(s) for s in spacing)
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"grid spacing must be three positive sizes in mm, got {spacing}")
        self.origin = tuple(-(n - 1) / 2.0 * s for n, s in zip(self.shape, self.spacing))
        self.axes = tuple(
            (o + np.arange(n, dtype=np.float64) * s).astype(np.float32)
            for o, n, s in zip(self.origin, self.shape, self.spacing)
        )

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel (i, j, k, 1) -> RAS mm."""
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = self.origin
        return aff

    @property
    def voxel_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def extent_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """World (lo, hi) corners of the voxel centres."""
        lo = np.array(self.origin)
        return lo, lo + (np.array(self.shape) - 1) * np.array(self.spacing)

    def _range(self, axis: int, lo: float, hi: float) -> slice:
        o, s, n = self.origin[axis], self.spacing[axis], self.shape[axis]
        i0 = max(0, math.ceil((lo - o) / s))
        i1 = min(n, math.floor((hi - o) / s) + 1)
        return slice(i0, max(i0, i1))

    def box(self, lo, hi) -> Box | None:
        """The voxels whose centres lie in the world box [lo, hi]; None when it misses the grid."""
        sl = tuple(self._range(a, float(lo[a]), float(hi[a])) for a in range(3))
        if any(s.stop <= s.start for s in sl):
            return None
        return self.box_from_slices(sl)

    def box_from_slices(self, sl: tuple[slice, slice, slice]) -> Box:
        x, y, z = (self.axes[a][sl[a]] for a in range(3))
        return Box(sl, x[:, None, None], y[None, :, None], z[None, None, :])

    def to_index(self, xyz) -> np.ndarray:
        """World mm (..., 3) -> fractional voxel indices (..., 3)."""
        return (np.asarray(xyz, dtype=np.float64) - np.array(self.origin)) / np.array(self.spacing)

    def to_world(self, ijk) -> np.ndarray:
        """Voxel indices (..., 3) -> world mm (..., 3)."""
        return np.asarray(ijk, dtype=np.float64) * np.array(self.spacing) + np.array(self.origin)

def lut(*tissues: int, invert: bool = False) -> np.ndarray:
    """(256,) bool lookup: which tissue classes a painter may overwrite."""
    table = np.zeros(256, dtype=bool)
    table[list(tissues)] = True
    return ~table if invert else table


class Canvas:
    """Tissue classes and label maps being painted; first painter to claim free space wins.

    tissue: uint8 (I, J, K) tissue class (intensities.Tissue), decides HU and texture.
    organs: uint8 (I, J, K) merged-scheme organ ids.
    parts:  uint8 (I, J, K) substructure ids (>= 100) or 0.
    """

    def __init__(self, grid: Grid):
        self.grid = grid
        self.tissue = np.zeros(grid.shape, dtype=np.uint8)
        self.organs = np.zeros(grid.shape, dtype=np.uint8)
        self.parts = np.zeros(grid.shape, dtype=np.uint8)

    def paint(self, box: Box | None, mask, tissue, into: np.ndarray, organ: int | None = None,
              part=None) -> np.ndarray | None:
        """Paint ``tissue`` (scalar or box-shaped array) where ``mask`` holds and the current tissue
        is allowed by ``into``; set the organ (and part) label there. Returns the painted mask."""
        if box is None:
            return None
        mask = np.broadcast_to(mask, box.shape)
        cur = self.tissue[box.sl]
        ok = mask & into[cur]
        if np.isscalar(tissue):
            cur[ok] = tissue
        else:
            cur[ok] = np.broadcast_to(tissue, box.shape)[ok]
        if organ is not None:
            self.organs[box.sl][ok] = organ
        if part is not None:
            if np.isscalar(part):
                self.parts[box.sl][ok] = part
            else:
                self.parts[box.sl][ok] = np.broadcast_to(part, box.shape)[ok]
        return ok
