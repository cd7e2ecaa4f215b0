"""Pixel data of one DICOM slice -> one int16 HU plane of a preallocated volume.

Fast path (uncompressed little-endian 16-bit, nearly every CT): seek to the pixel data element
found during the header scan and ``readinto`` the volume's own memory, then correct unused high
bits and rescale in place; no per-file dataset parse, no temporary copy of the pixels.
Everything else (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, HTJ2K, RLE, deflate, big
endian, 8-bit) goes through pydicom's pixel-data plugins. A transfer syntax with no installed
decoder is refused before anything is allocated, naming the package to install.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pydicom
from pydicom import uid as U
from pydicom.pixels import get_decoder

from inference.ct_io.dicom_scan import PIXEL_TAGS_LE, SliceHeader
from inference.ct_io.hu_convert import to_hu_into
from inference.errors import InputError

# What to `pip install` for each compressed transfer syntax (pydicom names the plugins too).
_HINTS = {
    U.JPEGBaseline8Bit: "pylibjpeg pylibjpeg-libjpeg",
    U.JPEGExtended12Bit: "pylibjpeg pylibjpeg-libjpeg",
    U.JPEGLossless: "pylibjpeg pylibjpeg-libjpeg",
    U.JPEGLosslessSV1: "pylibjpeg pylibjpeg-libjpeg",
    U.JPEGLSLossless: "pyjpegls",
    U.JPEGLSNearLossless: "pyjpegls",
    U.JPEG2000Lossless: "pylibjpeg pylibjpeg-openjpeg",
    U.JPEG2000: "pylibjpeg pylibjpeg-openjpeg",
    U.HTJ2KLossless: "pylibjpeg pylibjpeg-openjpeg",
    U.HTJ2KLosslessRPCL: "pylibjpeg pylibjpeg-openjpeg",
    U.HTJ2K: "pylibjpeg pylibjpeg-openjpeg",
    U.RLELossless: "pylibjpeg pylibjpeg-rle",
}


def _ts_text(ts: U.UID) -> str:
    return f"{ts.name} ({ts})" if ts.name != str(ts) else str(ts)


def check_decoders(headers: Iterable[SliceHeader]) -> None:
    """Refuse transfer syntaxes that pydicom cannot decode here (no decoder or no plugin)."""
    first_by_ts: dict[str, SliceHeader] = {}
    for h in headers:
        first_by_ts.setdefault(str(h.transfer_syntax), h)
    for h in first_by_ts.values():
        ts = h.transfer_syntax
        try:
            decoder = get_decoder(ts)
        except (NotImplementedError, ValueError) as exc:
            raise InputError(
                h.path, f"uses transfer syntax {_ts_text(ts)}, which cannot be decoded ({exc})"
            ) from exc
        if not decoder.is_available:
            hint = _HINTS.get(ts, "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg")
            missing = "; ".join(decoder.missing_dependencies) or "no plugin registered"
            raise InputError(
                h.path,
                f"pixel data is compressed as {_ts_text(ts)} and no installed decoder can read it; "
                f"install one with `pip install {hint}` (pydicom plugins: {missing})",
            )


def _native_ok(h: SliceHeader) -> bool:
    ts = h.transfer_syntax
    try:
        simple = not ts.is_encapsulated and not ts.is_deflated and ts.is_little_endian
    except ValueError:  # not a known transfer syntax
        return False
    return (
        simple
        and h.pixel_offset is not None
        and h.bits_allocated == 16
        and h.samples_per_pixel == 1
        and h.n_frames == 1
    )


def _read_native(out: np.ndarray, h: SliceHeader) -> None:
    need = h.rows * h.cols * 2
    with open(h.path, "rb") as f:
        f.seek(h.pixel_offset)  # type: ignore[arg-type]
        head = f.read(12)
        if head[:4] != PIXEL_TAGS_LE[0]:
            raise InputError(h.path, "pixel data element not found where the header ended")
        if head[4:6] in (b"OB", b"OW", b"UN"):  # explicit VR: VR, 2 reserved, 4-byte length
            length, start = int.from_bytes(head[8:12], "little"), 12
        else:  # implicit VR: 4-byte length
            length, start = int.from_bytes(head[4:8], "little"), 8
        if length == 0xFFFFFFFF or length != need:
            # more bytes than Rows x Columns would load as a reshaped (sheared) image
            raise InputError(h.path, _size_mismatch(h, length, need))
        f.seek(h.pixel_offset + start)  # type: ignore[operator]
        view = memoryview(out).cast("B")
        got = 0
        while got < need:
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
    if got < need:
        raise InputError(
            h.path, f"pixel data is cut short: the file ends after {got} of {need} bytes (truncated file?)"
        )


def _size_mismatch(h: SliceHeader, length: int, need: int) -> str:
    held = "an undefined length" if length == 0xFFFFFFFF else f"{length} bytes"
    return (f"pixel data holds {held} but Rows x Columns = {h.rows} x {h.cols} at "
            f"{h.bits_allocated} bits needs {need}: the header's image size does not match its pixels")


def _native_length_problem(ds: pydicom.Dataset, h: SliceHeader) -> str | None:
    """Uncompressed pixel data whose length disagrees with Rows x Columns (pydicom would drop the
    excess with a warning and show a reshaped image)."""
    try:
        if h.transfer_syntax.is_encapsulated:
            return None
    except ValueError:
        return None
    length = len(ds.PixelData)
    need = h.rows * h.cols * h.samples_per_pixel * h.bits_allocated // 8
    if length not in (need, need + (need % 2)):  # odd lengths are padded to even
        return _size_mismatch(h, length, need)
    return None


def _correct_unused_bits(raw: np.ndarray, bits_stored: int) -> None:
    """Sign-extend (signed) or mask (unsigned) values stored in fewer bits than allocated,
    as PS3.5 8.1.1 requires and pydicom does."""
    shift = raw.dtype.itemsize * 8 - bits_stored
    if 0 < shift < raw.dtype.itemsize * 8:
        np.left_shift(raw, shift, out=raw)
        np.right_shift(raw, shift, out=raw)


def _read_decoded(h: SliceHeader) -> np.ndarray:
    try:
        ds = pydicom.dcmread(h.path, force=True)
        if "PixelData" not in ds:  # pydicom drops an element cut off by the end of the file
            raise InputError(h.path, f"pixel data ({_ts_text(h.transfer_syntax)}) is cut off (truncated file?)")
        if h.n_frames == 1 and h.bits_allocated % 8 == 0 and (problem := _native_length_problem(ds, h)):
            raise InputError(h.path, problem)
        arr = ds.pixel_array
    except InputError:
        raise
    except Exception as exc:  # plugins raise RuntimeError/ValueError/OSError/... on bad data
        missing = "missing" in str(exc) and "dependenc" in str(exc)
        problem = (
            f"no installed decoder can read {_ts_text(h.transfer_syntax)}; install "
            f"`{_HINTS.get(h.transfer_syntax, 'pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg')}`"
            if missing
            else f"pixel data ({_ts_text(h.transfer_syntax)}) could not be decoded; the file may "
            f"be truncated or corrupt ({type(exc).__name__}: {exc})"
        )
        raise InputError(h.path, problem) from exc
    if arr.shape != (h.rows, h.cols):
        raise InputError(
            h.path,
            f"decoded pixel array has shape {arr.shape}, expected one {h.rows}x{h.cols} grey image "
            "(colour or multi-frame images are not CT slices)",
        )
    return arr


def _int16_in_place(out: np.ndarray, h: SliceHeader) -> bool:
    """The usual CT case: slope 1, integer intercept, and every storable value + intercept fits
    int16 (e.g. 12-bit unsigned, intercept -1024). Then the stored values already read into
    ``out`` (unused bits corrected, so unsigned ones are < 2**15 and read the same as int16) are
    shifted in place: no temporary, no clipping possible."""
    if h.slope != 1.0 or h.intercept != round(h.intercept) or h.bits_stored > 15:
        return False
    bs = h.bits_stored
    lo, hi = (-(1 << (bs - 1)), (1 << (bs - 1)) - 1) if h.pixel_representation else (0, (1 << bs) - 1)
    inter = int(h.intercept)
    if lo + inter < -32768 or hi + inter > 32767:
        return False
    if inter:
        np.add(out, np.int16(inter), out=out)
    return True


def read_slice_into(out: np.ndarray, h: SliceHeader) -> int:
    """Fill ``out`` (int16 (rows, cols), C-contiguous) with the HU of slice ``h``; return #clipped."""
    if _native_ok(h):
        _read_native(out, h)
        raw = out if h.pixel_representation == 1 else out.view(np.uint16)
        _correct_unused_bits(raw, h.bits_stored)
        if _int16_in_place(out, h):
            return 0
        return to_hu_into(out, raw, h.slope, h.intercept)
    return to_hu_into(out, _read_decoded(h), h.slope, h.intercept)
