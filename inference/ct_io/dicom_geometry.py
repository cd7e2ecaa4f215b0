"""Geometry of a stack of DICOM slices: order, spacing checks, gantry tilt, LPS -> RAS affine.

Slices are ordered by projecting ImagePositionPatient onto the slice normal
(row cosine x column cosine of ImageOrientationPatient), never by InstanceNumber or file name.

Refused (InputError naming files and positions): missing position/orientation/pixel spacing,
slices with different orientations or pixel spacings, a single slice, two slices at one
position, and unequal spacing or missing slices, e.g. "gap of 6.0 mm between slice 12
(z=-30.0 mm, IM12) and slice 13 (z=-24.0 mm, IM13) where spacing is 3.0 mm: 1 slice missing".
A wrong volume is worse than none: a missing slice would silently stretch anatomy.

Gantry tilt (decision: RESAMPLE, not refuse). A tilted gantry gives slices whose positions step
along a direction that is not perpendicular to the slice plane (ImageOrientationPatient not
orthogonal to the stacking direction); GantryDetectorTilt alone is not trusted, the positions
decide. The stack is then a sheared grid: slice k is offset in-plane by k * t mm. We keep each
slice's plane and resample every slice by its in-plane offset (scipy.ndimage.shift, linear,
one slice at a time in float32, outside the field filled with the volume's lowest value) onto
the orthogonal grid (row, column, normal), and record a warning with the angle and the largest
shift. Downstream code (model preprocessing, viewer, exports) may then assume an orthogonal
affine. Offsets that add up to less than half a pixel over the whole stack count as no tilt.
Positions that do not lie on a line are refused.

World coordinates: DICOM patient space is LPS; the returned affine maps voxel (i, j, k) ->
RAS mm, i = column index (along the row cosine), j = row index, k = sorted slice index.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from inference.ct_io.dicom_scan import SliceHeader
from inference.ct_io.geometry_sanity import MAX_SPACING_MM, MIN_SPACING_MM
from inference.errors import InputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
ORIENTATION_TOL = 1e-3  # direction cosines
PIXEL_SPACING_TOL = 1e-3  # mm
SAME_POSITION_TOL = 1e-2  # mm
TILT_MIN_DRIFT_PX = 0.5  # total in-plane drift over the stack below this = no tilt
LINE_TOL_PX = 0.5  # positions off their fitted line by more than this are refused
UNIT_TOL = 0.02  # direction cosines are unit vectors; writers round them to a few digits


@dataclass
class StackGeometry:
    """order: indices into the header list in k order. affine: 4x4 voxel -> RAS mm.
    tilt_shift_px: (K, 2) in-plane shift (row, col pixels) that maps each slice onto the
    orthogonal grid, or None when the stack is not tilted."""

    order: list[int]
    affine: np.ndarray
    slice_spacing: float
    tilt_shift_px: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)


def _slice_text(k: int, z: float, h: SliceHeader) -> str:
    return f"slice {k + 1} (z={z:.2f} mm, {h.label})"


def require_geometry(headers: Sequence[SliceHeader]) -> None:
    for h in headers:
        missing = [
            name
            for name, value in (
                ("ImagePositionPatient", h.position),
                ("ImageOrientationPatient", h.orientation),
                ("PixelSpacing", h.pixel_spacing),
            )
            if value is None
        ]
        if missing:
            raise InputError(
                h.path, f"has no valid {', '.join(missing)}; the slice cannot be placed in 3D"
            )
        row_sp, col_sp = h.pixel_spacing  # type: ignore[misc]
        if not (MIN_SPACING_MM <= row_sp <= MAX_SPACING_MM and MIN_SPACING_MM <= col_sp <= MAX_SPACING_MM):
            # negative spacing would mirror the image, 0 flattens it: neither is a valid header
            raise InputError(
                h.path,
                f"has PixelSpacing {row_sp:g}\\{col_sp:g} mm; a pixel spacing is a distance between "
                f"{MIN_SPACING_MM} and {MAX_SPACING_MM:g} mm, so the slice cannot be placed in 3D",
            )
        iop = np.asarray(h.orientation, dtype=np.float64)
        norms = np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])
        if not all(abs(n - 1.0) <= UNIT_TOL for n in norms):
            raise InputError(
                h.path,
                f"has ImageOrientationPatient {list(h.orientation)}, whose row and column directions "  # type: ignore[arg-type]
                "are not unit vectors; the slice cannot be placed in 3D",
            )


def _check_consistent(folder: Path, headers: Sequence[SliceHeader]) -> None:
    iop = np.array([h.orientation for h in headers], dtype=np.float64)
    bad = np.flatnonzero(np.abs(iop - iop[0]).max(axis=1) > ORIENTATION_TOL)
    if bad.size:
        h0, h1 = headers[0], headers[int(bad[0])]
        raise InputError(
            folder,
            f"the series mixes slice orientations: {h0.label} has ImageOrientationPatient "
            f"{list(h0.orientation)} but {h1.label} has {list(h1.orientation)}",
        )
    ps = np.array([h.pixel_spacing for h in headers], dtype=np.float64)
    bad = np.flatnonzero(np.abs(ps - ps[0]).max(axis=1) > PIXEL_SPACING_TOL)
    if bad.size:
        h0, h1 = headers[0], headers[int(bad[0])]
        raise InputError(
            folder,
            f"the series mixes pixel spacings: {h0.label} has {list(h0.pixel_spacing)} mm, "
            f"{h1.label} has {list(h1.pixel_spacing)} mm",
        )


def _check_spacing(folder: Path, hs: Sequence[SliceHeader], s: np.ndarray,
                   left_out: Sequence[tuple[float, SliceHeader, str]] = ()) -> float:
    """s: sorted positions along the normal (mm). Returns the nominal spacing.

    left_out: (position along the normal, header, why) of images of this series that were left
    out of the stack; a gap they fall into is explained by them, and the error names their file."""
    gaps = np.diff(s)
    dup = np.flatnonzero(gaps < SAME_POSITION_TOL)
    if dup.size:
        k = int(dup[0])
        raise InputError(
            folder,
            f"{_slice_text(k, s[k], hs[k])} and {_slice_text(k + 1, s[k + 1], hs[k + 1])} lie at "
            "the same position (two acquisitions or duplicate images in one series?)",
        )
    nominal = float(np.median(gaps))
    tol = max(0.02, 0.01 * nominal)
    bad = np.flatnonzero(np.abs(gaps - nominal) > tol)
    if not bad.size:
        return nominal
    details, all_missing, culprits = [], True, []
    for k in bad[:3]:
        k = int(k)
        ratio = gaps[k] / nominal
        between = f"between {_slice_text(k, s[k], hs[k])} and {_slice_text(k + 1, s[k + 1], hs[k + 1])}"
        inside = [(z, h, why) for z, h, why in left_out if s[k] < z < s[k + 1]]
        culprits += [h for _, h, _ in inside]
        explained = "".join(
            f"; {h.label} (z={z:.2f} mm) belongs there but was left out: {why}" for z, h, why in inside
        )
        if ratio > 1.5 and abs(ratio - round(ratio)) < 0.1:
            n = int(round(ratio)) - 1
            details.append(
                f"gap of {gaps[k]:.2f} mm {between} where spacing is {nominal:.2f} mm: "
                f"{n} slice{'s' if n > 1 else ''} missing{explained}"
            )
        else:
            all_missing = False
            details.append(
                f"spacing of {gaps[k]:.2f} mm {between} where the others are {nominal:.2f} mm{explained}"
            )
    more = f" (and {bad.size - 3} more)" if bad.size > 3 else ""
    what = "slices are missing" if all_missing else "slice spacing is not uniform"
    raise InputError(
        culprits[0].path if len(culprits) == 1 and bad.size == 1 else folder,
        f"{what} in the series ({bad.size} of {gaps.size} gaps differ): " + "; ".join(details) + more,
    )


def stack_geometry(folder: str | Path, headers: Sequence[SliceHeader],
                   left_out: Sequence[tuple[SliceHeader, str]] = ()) -> StackGeometry:
    """Order, check and place a single-frame slice stack (all same size/orientation).

    left_out: images of the series kept out of the stack, with the reason (named in a gap error)."""
    folder = Path(folder)
    if len(headers) < 2:
        where = headers[0].path if headers else folder
        raise InputError(where, "the series has a single slice (a 2D image); a CT volume needs several")
    require_geometry(headers)
    _check_consistent(folder, headers)
    iop = np.array(headers[0].orientation, dtype=np.float64)
    r, c = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    if abs(float(r @ c)) > ORIENTATION_TOL:
        raise InputError(
            headers[0].path,
            f"ImageOrientationPatient {list(iop)} has row and column directions that are not perpendicular",
        )
    n = np.cross(r, c)
    pos = np.array([h.position for h in headers], dtype=np.float64)
    order = [int(i) for i in np.argsort(pos @ n, kind="stable")]
    pos = pos[order]
    hs = [headers[i] for i in order]
    s = pos @ n
    placed = [(float(np.asarray(h.position) @ n), h, why) for h, why in left_out if h.position is not None]
    _check_spacing(folder, hs, s, placed)
    row_sp, col_sp = headers[0].pixel_spacing  # between rows (along c), between columns (along r)
    pix = np.array([col_sp, row_sp])  # mm per pixel along r, c

    # In-plane drift of each slice relative to slice 0, fitted as a line in s (gantry tilt).
    d = pos - pos[0]
    offset = np.stack([d @ r, d @ c], axis=1)  # (K, 2) mm along r, c
    ds = s - s[0]
    t = (offset * ds[:, None]).sum(axis=0) / float((ds**2).sum())  # mm in-plane per mm along n
    off_line = np.abs(offset - ds[:, None] * t) / pix
    if off_line.max() > LINE_TOL_PX:
        k = int(off_line.max(axis=1).argmax())
        raise InputError(
            folder,
            f"slice positions do not lie on a straight line: {_slice_text(k, s[k], hs[k])} is "
            f"{off_line[k].max():.1f} pixels off the line through the others",
        )
    spacing = float(ds[-1] / (len(hs) - 1))  # mean spacing: exact for an even stack
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = r * col_sp, c * row_sp, n * spacing
    lps[:3, 3] = pos[0]
    affine = np.eye(4)
    affine[:3, :] = LPS_TO_RAS @ lps[:3, :]
    geom = StackGeometry(order=order, affine=affine, slice_spacing=spacing)

    drift_px = np.abs(t) * ds[-1] / pix
    header_tilt = max((abs(h.gantry_tilt) for h in hs), default=0.0)
    if drift_px.max() < TILT_MIN_DRIFT_PX:
        if header_tilt > 0.01:
            geom.warnings.append(
                f"GantryDetectorTilt is {header_tilt:.1f} deg but the slice positions already form "
                "an orthogonal grid (corrected by the scanner); loaded as is"
            )
        return geom
    angle = float(np.degrees(np.arctan(np.linalg.norm(t))))
    shift_rc = ds[:, None] * t / pix  # pixels along (i: r, j: c)
    geom.tilt_shift_px = shift_rc[:, ::-1].copy()  # -> (row index j, column index i) of each slice array
    geom.warnings.append(
        f"gantry tilt of {angle:.1f} deg detected from the slice positions (GantryDetectorTilt "
        f"{header_tilt:.1f} deg): resampled the slices onto an orthogonal grid with linear "
        f"interpolation; the last slice moved by {np.linalg.norm(t) * ds[-1]:.1f} mm in-plane and "
        "the area shifted in from outside the field holds the volume's lowest value"
    )
    return geom


def resample_tilt(stack: np.ndarray, shift_px: np.ndarray) -> None:
    """Shift each slice in place onto the orthogonal grid.

    stack: int16 (K, rows, cols); shift_px: (K, 2) shift in (row, col) pixels per slice, so
    that new[k][y, x] = old[k][y - shift[k, 0], x - shift[k, 1]].
    """
    from scipy import ndimage  # only tilted series need it; importing costs ~0.5 s

    fill = float(stack.min())
    for k in range(stack.shape[0]):
        if not np.any(np.abs(shift_px[k]) > 1e-3):
            continue
        moved = ndimage.shift(
            stack[k].astype(np.float32), shift_px[k], order=1, mode="constant", cval=fill, prefilter=False
        )
        np.rint(moved, out=moved)
        np.clip(moved, -32768, 32767, out=moved)
        stack[k] = moved
