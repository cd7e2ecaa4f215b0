"""The known segmentation the fake nnU-Net writes, as a function of HU and world position.

Shared by the fake (inside the TotalSegmentator env, on TotalSegmentator's resampled canonical
image) and by the tests (on the original CT grid), so a test can check that TotalSegmentator's
real resampling / reorientation and our mapping put every label back where the rule says.
numpy only.

Rule (world RAS mm, centre c = TC_FAKE_CENTER):
    soft tissue (-100 <= HU < 200) with x >  c_x -> liver
    soft tissue (-100 <= HU < 200) with x <= c_x -> spleen
    bone (HU >= 200)                             -> vertebrae_L1
    liver segments: inside the liver, 1 + octant index of (x > c_x + 30, y > c_y, z > c_z)
"""
from __future__ import annotations

import numpy as np

SOFT_LO, SOFT_HI, BONE = -100.0, 200.0, 200.0
SEGMENT_X_OFFSET = 30.0


def world_grid(shape: tuple[int, int, int], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, z world coordinates (mm) of every voxel centre, each of shape ``shape``."""
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    xyz = affine[:3, :3] @ ijk + affine[:3, 3:4]
    return tuple(a.reshape(shape) for a in xyz)  # type: ignore[return-value]


def regions(hu: np.ndarray, affine: np.ndarray, centre: tuple[float, float, float]) -> dict[str, np.ndarray]:
    """Boolean masks of the rule's structures; 'segments' holds ids 1..8 (0 outside the liver)."""
    x, y, z = world_grid(hu.shape, affine)
    soft = (hu >= SOFT_LO) & (hu < SOFT_HI)
    liver = soft & (x > centre[0])
    octant = ((x > centre[0] + SEGMENT_X_OFFSET).astype(np.uint8) + 2 * (y > centre[1]) + 4 * (z > centre[2]))
    return {
        "liver": liver,
        "spleen": soft & (x <= centre[0]),
        "vertebrae_L1": hu >= BONE,
        "segments": np.where(liver, octant + 1, 0).astype(np.uint8),
    }
