"""Raw stored values -> int16 Hounsfield units, one slice or chunk at a time.

Both readers fill a preallocated int16 volume with this, so no float64 copy of a whole volume
ever exists: temporaries are the size of one chunk. Values are ``rint(raw * slope + inter)``
clipped to the int16 range; the number of clipped voxels is returned so the caller can warn.
"""
from __future__ import annotations

import numpy as np

INT16_MIN, INT16_MAX = -32768, 32767


def is_identity(slope: float, inter: float) -> bool:
    return float(slope) == 1.0 and float(inter) == 0.0


def _work_float(dtype: np.dtype) -> type:
    """float32 is exact for every <=16-bit integer and float32 input; wider inputs need float64."""
    return np.float32 if np.dtype(dtype).itemsize <= 2 or dtype == np.float32 else np.float64


def to_hu_into(out: np.ndarray, raw: np.ndarray, slope: float = 1.0, inter: float = 0.0) -> int:
    """Write ``rint(raw * slope + inter)`` clipped to int16 into ``out``; return #clipped voxels.

    out: int16 array, any shape; raw: integer or float array of the same shape (may share
    memory with ``out``, e.g. a uint16 view of it). Non-finite raw values must be checked by the
    caller before (NaN has no HU).
    """
    slope, inter = float(slope), float(inter)
    if raw.dtype == np.int16 and is_identity(slope, inter):
        if raw is not out:
            np.copyto(out, raw)
        return 0
    integral = raw.dtype.kind in "iub" and slope == 1.0 and inter == round(inter)
    if integral and raw.dtype.itemsize <= 2:
        tmp = raw.astype(np.int32)
        if inter:
            tmp += int(inter)
    else:
        tmp = raw.astype(_work_float(raw.dtype))
        if slope != 1.0:
            tmp *= slope
        if inter:
            tmp += inter
        np.rint(tmp, out=tmp)
    n_clipped = int(np.count_nonzero(tmp < INT16_MIN) + np.count_nonzero(tmp > INT16_MAX))
    if n_clipped:
        np.clip(tmp, INT16_MIN, INT16_MAX, out=tmp)
    np.copyto(out, tmp, casting="unsafe")
    return n_clipped


def clip_warning(n_clipped: int) -> str:
    return (
        f"{n_clipped} voxel(s) lay outside the int16 range (-32768..32767 HU) after rescaling "
        "and were clipped"
    )
