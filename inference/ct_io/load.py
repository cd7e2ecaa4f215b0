"""``load_ct``: one entry point for a NIfTI file, a DICOM folder or a single DICOM file.

Whatever goes wrong with the input surfaces as InputError(path, problem) with a readable
message; an unexpected library exception is logged with its traceback and reported the same
way, so a user never sees a raw traceback.
"""
from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

from inference.ct_io.dicom_reader import read_dicom
from inference.ct_io.dicom_scan import SeriesSummary, scan_folder
from inference.ct_io.nifti_reader import read_nifti
from inference.ct_volume import CTVolume
from inference.errors import InputError

log = logging.getLogger(__name__)

_NIFTI_SUFFIXES = (".nii", ".nii.gz", ".nii.bz2", ".nii.zst")


def _named_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


def _nifti_magic(head: bytes) -> bool:
    """A NIfTI-1 (sizeof_hdr 348, magic at 344) or NIfTI-2 (540, magic at 4) header."""
    for order in ("little", "big"):
        size = int.from_bytes(head[:4], order)
        if size == 348 and head[344:347] in (b"n+1", b"ni1"):
            return True
        if size == 540 and head[4:7] in (b"n+2", b"ni2"):
            return True
    return False


def _looks_like_nifti(path: Path) -> bool:
    """By content: a NIfTI header, plain or gzipped (the sizes alone also match raw DICOM bytes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(348)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as g:
                head = g.read(348)
    except (OSError, EOFError, zlib.error):
        return False
    return _nifti_magic(head)


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(p, "does not exist")
    return p


def load_ct(
    path: str | Path, series_uid: str | None = None, *, memory_limit_bytes: int | None = None
) -> CTVolume:
    """Load a CT as a CTVolume (int16 HU in file voxel order, voxel -> RAS affine).

    path: a .nii/.nii.gz file, a DICOM folder (searched recursively), or one DICOM file (its
    series is loaded from its folder). series_uid picks a DICOM series; default: the largest CT
    series (the choice is recorded in CTVolume.warnings). memory_limit_bytes replaces the
    measured available memory in the pre-allocation check (tests, callers with a budget).
    Raises InputError naming the file and the problem.
    """
    p = _existing(path)
    try:
        if p.is_file() and not _named_nifti(p) and _looks_like_nifti(p):
            raise InputError(
                p, "looks like a (gzipped) NIfTI image but its name does not end in .nii or "
                ".nii.gz; rename it so that its format is unambiguous"
            )
        if p.is_file() and _named_nifti(p):
            if series_uid is not None:
                raise InputError(p, "is a NIfTI file; series_uid applies to DICOM input only")
            return read_nifti(p, memory_limit_bytes=memory_limit_bytes)
        if p.is_dir() or p.is_file():
            return read_dicom(p, series_uid, memory_limit_bytes=memory_limit_bytes)
        raise InputError(p, "is neither a file nor a folder")
    except InputError:
        raise
    except PermissionError as exc:
        raise InputError(exc.filename or p, "cannot be read: permission denied") from exc
    except MemoryError as exc:
        raise InputError(p, "ran out of memory while loading; close other programs or use a smaller series") from exc
    except Exception as exc:  # a library failing on a malformed file: report, never a traceback
        log.error("unexpected error loading %s", p, exc_info=True)
        raise InputError(p, f"could not be loaded ({type(exc).__name__}: {exc})") from exc


def list_dicom_series(folder: str | Path) -> list[SeriesSummary]:
    """Image series below ``folder`` (recursive), largest first; non-image DICOM is ignored."""
    p = _existing(folder)
    if not p.is_dir():
        raise InputError(p, "is not a folder")
    try:
        return scan_folder(p, recursive=True).summaries()
    except PermissionError as exc:
        raise InputError(exc.filename or p, "cannot be read: permission denied") from exc
