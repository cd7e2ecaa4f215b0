"""NIfTI-1/2 (.nii, .nii.gz) -> CTVolume, streaming voxels straight into an int16 volume.

The file's voxel order and affine are kept exactly (``img.affine``: sform if set, else qform, as
nibabel decides); nothing is reoriented. Stored values are scaled by scl_slope/scl_inter, rounded
and clipped to int16 HU.

Memory and speed: nibabel reads only the header; the voxel bytes are then read from the file
ourselves in chunks of ``CHUNK_BYTES`` into a preallocated Fortran-order int16 array (the file's
own layout), so the peak is the int16 volume plus one chunk. Unscaled native-endian int16, the
common case, is read with a single ``readinto`` into the volume itself, zero copies. ``.gz``
files are inflated with ISA-L (the ``isal`` package) when installed, a drop-in for ``gzip`` that
is 2-3x faster; plain ``gzip`` otherwise.

Refused with InputError: not NIfTI, truncated or corrupt files, 2D (one slice) images, 4D+
images with more than one volume (a singleton 4th dimension is fine), complex/RGB data, NaN or
infinite voxels (counted), a singular affine, and volumes larger than available memory.
"""
from __future__ import annotations

import gzip
import logging
import math
import zlib
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener

from inference.ct_io.geometry_sanity import require_sane_affine
from inference.ct_io.hu_convert import clip_warning, is_identity, to_hu_into
from inference.ct_io.memory_guard import check_fits
from inference.ct_volume import CTVolume
from inference.errors import InputError

try:  # optional accelerator; same API as gzip
    from isal import igzip as _fast_gzip
    from isal.isal_zlib import error as _IsalError
except ImportError:  # pragma: no cover - depends on the installation
    _fast_gzip = None
    _IsalError = zlib.error

# What a truncated or corrupt file raises while inflating/reading (BadGzipFile is an OSError).
_READ_ERRORS = (OSError, EOFError, zlib.error, _IsalError, ValueError)

log = logging.getLogger(__name__)

CHUNK_BYTES = 4 * 2**20


def _open_voxels(filename: str) -> BinaryIO:
    if filename.endswith(".gz"):
        return (_fast_gzip or gzip).open(filename, "rb")  # type: ignore[return-value]
    if filename.endswith((".nii", ".img")):
        return open(filename, "rb")
    return ImageOpener(filename, "rb")  # .bz2, .zst: let nibabel pick


def _volume_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) < 3 or min(shape[:3]) <= 1:
        raise InputError(
            path,
            f"is a 2D image (shape {shape}); a CT volume needs at least 2 slices along each of 3 axes",
        )
    extra = shape[3:]
    if any(n > 1 for n in extra):
        raise InputError(
            path,
            f"is a {len(shape)}D image of shape {shape} with {math.prod(extra)} volumes "
            "(a time series or vector image?); give a single 3D CT volume",
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


def _check_affine(path: Path, img: nib.Nifti1Image) -> tuple[np.ndarray, list[str]]:
    warnings: list[str] = []
    affine = np.asarray(img.affine, dtype=np.float64)
    require_sane_affine(path, affine)
    hdr = img.header
    if int(hdr["sform_code"]) == 0 and int(hdr["qform_code"]) == 0:
        warnings.append(
            "the NIfTI header sets no orientation (qform_code = sform_code = 0); positions use "
            "the voxel sizes only, so left/right and orientation may be wrong"
        )
    return affine, warnings


def _read_exact(f: BinaryIO, view: memoryview) -> int:
    """readinto in CHUNK_BYTES pieces: GzipFile.readinto is read(n) + copy, so one call for the
    whole volume would hold a second full-size copy for a moment (2x peak memory)."""
    got = 0
    while got < len(view):
        n = f.readinto(view[got : got + CHUNK_BYTES])
        if not n:
            break
        got += n
    return got


def _stream_voxels(
    path: Path, f: BinaryIO, out_flat: np.ndarray, raw_dtype: np.dtype, slope: float, inter: float
) -> int:
    """Fill out_flat (int16, 1-D view of the volume in file order) from f; return #clipped."""
    n_vox = out_flat.size
    itemsize = raw_dtype.itemsize
    if raw_dtype == np.dtype(np.int16) and is_identity(slope, inter):
        got = _read_exact(f, memoryview(out_flat).cast("B"))
        _require(path, got, n_vox * itemsize)
        return 0
    is_float = raw_dtype.kind == "f"
    chunk_vox = max(CHUNK_BYTES // itemsize, 1)
    buf = np.empty(min(chunk_vox, n_vox), dtype=raw_dtype)
    n_nan = n_inf = n_clipped = 0
    for start in range(0, n_vox, chunk_vox):
        n = min(chunk_vox, n_vox - start)
        raw = buf[:n]
        got = _read_exact(f, memoryview(raw).cast("B"))
        if got < n * itemsize:  # this chunk came short: the file ends before the volume does
            _require(path, start * itemsize + got, n_vox * itemsize)
        if not raw_dtype.isnative:
            raw = raw.astype(raw_dtype.newbyteorder("="))
        if is_float:
            n_nan += int(np.count_nonzero(np.isnan(raw)))
            n_inf += int(np.count_nonzero(np.isinf(raw)))
            if n_nan or n_inf:
                continue  # keep counting, refuse below
        n_clipped += to_hu_into(out_flat[start : start + n], raw, slope, inter)
    if n_nan or n_inf:
        parts = [f"{n_nan} NaN" if n_nan else "", f"{n_inf} infinite" if n_inf else ""]
        raise InputError(
            path,
            f"has {' and '.join(p for p in parts if p)} voxel(s) out of {n_vox}; a CT volume "
            "needs a finite HU value in every voxel",
        )
    return n_clipped


def _require(path: Path, got: int, expected: int) -> None:
    if got < expected:
        raise InputError(
            path,
            f"is truncated: the header promises {expected} bytes of voxel data but the file holds "
            f"only {got}",
        )


def _description(img: nib.Nifti1Image) -> str:
    try:
        return bytes(img.header["descrip"].item()).decode("latin-1").strip("\x00 ")
    except (KeyError, ValueError, TypeError):
        return ""


def read_nifti(path: str | Path, *, memory_limit_bytes: int | None = None) -> CTVolume:
    """Load a NIfTI file as a CTVolume (hu int16 (I, J, K) in file order, affine = img.affine)."""
    path = Path(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for bad headers
        raise InputError(path, f"is not a readable NIfTI image ({type(exc).__name__}: {exc})") from exc
    if not isinstance(img, nib.Nifti1Pair):  # Nifti1Image, Nifti2Image and pairs
        raise InputError(path, f"is not a NIfTI image (read as {type(img).__name__})")
    proxy = img.dataobj
    raw_dtype = np.dtype(proxy.dtype)
    if raw_dtype.kind not in "iuf" or raw_dtype.fields is not None:
        raise InputError(path, f"has voxel type {raw_dtype} (complex or RGB); a CT needs integer or float HU values")
    shape = _volume_shape(path, tuple(int(s) for s in img.shape))
    affine, warnings = _check_affine(path, img)
    check_fits(
        math.prod(shape) * 2, path, f"the {shape[0]}x{shape[1]}x{shape[2]} volume", memory_limit_bytes
    )
    slope, inter = float(proxy.slope), float(proxy.inter)
    if not (math.isfinite(slope) and math.isfinite(inter)):
        raise InputError(path, f"has a non-finite scl_slope/scl_inter ({slope}, {inter})")

    hu = np.empty(shape, dtype=np.int16, order="F")  # F order = NIfTI's own voxel order
    out_flat = hu.reshape(-1, order="F")  # a view: the volume's bytes in file order
    try:
        with _open_voxels(str(proxy.file_like)) as f:
            f.seek(int(proxy.offset))
            n_clipped = _stream_voxels(path, f, out_flat, raw_dtype, slope, inter)
            # Step onto the gzip trailer: its CRC is checked only at the end of the stream, and
            # corruption can still inflate to the right number of (wrong) bytes.
            f.read(1)
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(
            path, f"could not be read: the file is truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    if n_clipped:
        warnings.append(clip_warning(n_clipped))
    for w in warnings:
        log.warning("%s: %s", path, w)
    return CTVolume(
        hu=hu,
        affine=affine,
        source_path=path,
        series_description=_description(img),
        modality="CT",
        warnings=tuple(warnings),
    )
