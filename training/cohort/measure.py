"""Measurements a radiologist would take on a lesion mask: centroid, longest extent (diameter),
shortest in-plane extent (the short axis lymph node criterion), volume, mean HU, and the
substructure holding most of it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_erosion

from .grid import Grid

# 13 directions: axes, face diagonals, body diagonals
_DIRS = np.array([
    (1, 0, 0), (0, 1, 0), (0, 0, 1),
    (1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1),
    (1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1),
], dtype=np.float64)
_DIRS /= np.linalg.norm(_DIRS, axis=1, keepdims=True)
# in-plane (axial) directions every 22.5 degrees for the short axis
_AXIAL = np.array([(np.cos(a), np.sin(a), 0.0) for a in np.deg2rad(np.arange(0.0, 180.0, 22.5))])


@dataclass(frozen=True)
class MaskMeasure:
    voxels: int
    centroid_mm: np.ndarray
    centroid_voxel: tuple[int, int, int]
    diameter_mm: float
    short_axis_mm: float
    volume_ml: float


def _extents(points: np.ndarray, dirs: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Extent of a voxel set along each direction, counting the voxels' own size."""
    proj = points @ dirs.T
    return proj.max(axis=0) - proj.min(axis=0) + np.abs(dirs) @ spacing


def measure_mask(grid: Grid, ijk: np.ndarray) -> MaskMeasure:
    """ijk: (N, 3) voxel indices of one object."""
    spacing = np.asarray(grid.spacing)
    points = grid.to_world(ijk)
    centroid = points.mean(axis=0)
    cv = np.clip(np.rint(grid.to_index(centroid)).astype(int), 0, np.array(grid.shape) - 1)
    return MaskMeasure(
        voxels=int(len(ijk)),
        centroid_mm=centroid,
        centroid_voxel=tuple(int(v) for v in cv),
        diameter_mm=float(_extents(points, _DIRS, spacing).max()),
        short_axis_mm=float(_extents(points, _AXIAL, spacing).min()),
        volume_ml=float(len(ijk) * grid.voxel_mm3 / 1000.0),
    )


def majority_label(labels: np.ndarray) -> int:
    """Most frequent non-zero value of a 1-D uint8 array (0 when all are zero)."""
    counts = np.bincount(labels, minlength=256)
    counts[0] = 0
    return int(counts.argmax()) if counts.any() else 0


def interior_roi(mask: np.ndarray) -> np.ndarray:
    """The ROI a reader would place for a mean HU: the mask without its outer voxel layer
    (partial volume), unless that leaves too little of it (then the whole mask)."""
    inner = binary_erosion(mask)
    return inner if inner.sum() >= max(8, 0.25 * mask.sum()) else mask
