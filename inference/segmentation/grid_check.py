"""Put a label volume read from a file onto a CT's voxel grid, or refuse with a clear reason.

A mask is accepted when it covers the same voxels as the CT: the same affine within a small
tolerance, or the same grid stored in another axis order / direction (e.g. flipped or
transposed axes, as some tools write LPS or canonical RAS). Anything else (another voxel size,
another field of view, a shifted origin) is refused: resampling labels silently would hide a
wrong pairing of mask and CT.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from nibabel import orientations

from inference.errors import InputError

# How far (as a fraction of the smallest CT voxel size) any grid corner may move between
# the two affines. Files store affines in float32, and tools round origins differently.
CORNER_TOLERANCE_VOXELS = 0.05


def grid_corners(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """(8, 3) world positions (mm) of the centres of the 8 corner voxels."""
    idx = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)],
                   dtype=np.float64)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def grid_mismatch_mm(shape_a: tuple[int, ...], affine_a: np.ndarray,
                     shape_b: tuple[int, ...], affine_b: np.ndarray) -> float:
    """Largest distance (mm) between matching corner voxels, +inf when the shapes differ."""
    if tuple(shape_a) != tuple(shape_b):
        return float("inf")
    pts_a = grid_corners(tuple(shape_a), affine_a)  # type: ignore[arg-type]
    pts_b = grid_corners(tuple(shape_b), affine_b)  # type: ignore[arg-type]
    # Also compare one step along each axis: catches a wrong spacing on an axis of length 1.
    steps = np.abs(affine_a[:3, :3] - affine_b[:3, :3]).max()
    return float(max(np.linalg.norm(pts_a - pts_b, axis=1).max(), steps))


def _describe(shape: tuple[int, ...], affine: np.ndarray) -> str:
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    codes = "".join(orientations.aff2axcodes(affine))
    return (f"shape {tuple(int(s) for s in shape)}, spacing {tuple(round(float(s), 3) for s in spacing)} mm, "
            f"orientation {codes}, origin {tuple(round(float(v), 2) for v in affine[:3, 3])}")


def fit_to_ct_grid(labels: np.ndarray, label_affine: np.ndarray, ct_shape: tuple[int, int, int],
                   ct_affine: np.ndarray, label_path: str | Path | None, ct_path: str | Path | None
                   ) -> tuple[np.ndarray, str | None]:
    """Return ``labels`` rearranged onto the CT grid and a note when it had to be reoriented.

    labels:       (I', J', K') integer array as stored in the mask file.
    label_affine: 4x4 voxel -> RAS mm of the mask file.
    Returns (array of shape ct_shape, note or None). Raises InputError naming both files when the
    mask is not on the CT's grid.
    """
    if labels.ndim == 4 and labels.shape[3] == 1:
        labels = labels[..., 0]
    if labels.ndim != 3:
        raise InputError(label_path, f"a label volume must be 3D, this file has shape {labels.shape}")
    tol = CORNER_TOLERANCE_VOXELS * float(np.linalg.norm(ct_affine[:3, :3], axis=0).min())
    if grid_mismatch_mm(labels.shape, label_affine, ct_shape, ct_affine) <= tol:
        return labels, None

    # Same voxels in another axis order or direction? Rearrange the mask into the CT's order.
    transform = orientations.ornt_transform(orientations.io_orientation(label_affine),
                                            orientations.io_orientation(ct_affine))
    moved = orientations.apply_orientation(labels, transform)
    moved_affine = label_affine @ orientations.inv_ornt_aff(transform, labels.shape)
    if grid_mismatch_mm(moved.shape, moved_affine, ct_shape, ct_affine) <= tol:
        note = (f"{label_path}: stored as {''.join(orientations.aff2axcodes(label_affine))}, "
                f"reoriented to the CT's {''.join(orientations.aff2axcodes(ct_affine))} voxel order")
        return np.ascontiguousarray(moved), note

    raise InputError(
        label_path,
        f"the mask is not on the grid of the CT {ct_path}: mask has {_describe(labels.shape, label_affine)}; "
        f"CT has {_describe(ct_shape, ct_affine)}. Use a mask computed from this CT "
        f"(or resample it onto the CT grid first).",
    )
