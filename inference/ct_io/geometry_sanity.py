"""Is a voxel -> world affine one a CT can have? One rule for both readers and CTVolume.

A singular, non-finite or absurd affine (pixel spacing 0, an orientation of zeros or NaN,
spacing 1e300 mm or a NIfTI pixdim of 1e38) would load and then fail deep inside resampling or
the viewer with a traceback ("Unable to find out axis nan", LinAlgError). It is refused here,
at load time, with the file named and the spacing in words.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.errors import InputError

# Voxel sizes a clinical CT can have: micro-CT reconstructions go down to ~0.01 mm, the
# thickest clinical slices are ~10 mm; beyond these limits the header is broken, not the scan.
MIN_SPACING_MM = 0.005
MAX_SPACING_MM = 100.0
# Scanner coordinates stay within a few metres of the isocentre.
MAX_ORIGIN_MM = 1e5
# Axes this close to parallel give a degenerate (flattened) grid.
MIN_ABS_DET_RATIO = 1e-3


def affine_problem(affine: np.ndarray) -> str | None:
    """What is wrong with ``affine`` (4x4 voxel -> RAS mm) for a CT, or None when it is usable."""
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        return f"its voxel-to-world matrix has shape {a.shape}, not 4x4"
    if not np.all(np.isfinite(a)):
        return "its voxel-to-world matrix holds NaN or infinite values"
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    if spacing.min() < MIN_SPACING_MM or spacing.max() > MAX_SPACING_MM:
        sizes = " x ".join(f"{s:.4g}" for s in spacing)
        return (f"its voxel size is {sizes} mm; a CT voxel measures between {MIN_SPACING_MM} and "
                f"{MAX_SPACING_MM:g} mm along each axis (broken spacing or orientation in the header)")
    if abs(np.linalg.det(a[:3, :3])) < MIN_ABS_DET_RATIO * float(np.prod(spacing)):
        return "its voxel axes are (nearly) parallel: the orientation in the header gives no 3D grid"
    if np.abs(a[:3, 3]).max() > MAX_ORIGIN_MM:
        return f"its origin {tuple(round(float(v), 1) for v in a[:3, 3])} mm lies impossibly far from the scanner"
    return None


def require_sane_affine(path: str | Path | None, affine: np.ndarray) -> None:
    """Raise InputError naming ``path`` when ``affine`` is not one a CT can have."""
    problem = affine_problem(affine)
    if problem is not None:
        raise InputError(path, f"cannot be placed in 3D: {problem}")
