"""A DICOM series (folder or one of its files) -> CTVolume.

Choosing the series: ``series_uid`` when given; else the largest CT series (most slices),
recorded in CTVolume.warnings when the folder holds other image series. A folder with image
series but no CT is refused (listing what it has) unless ``series_uid`` or one of its files
names the series; a non-CT series loaded that way gets a warning (its values are not HU).
Within a series, images of another size/orientation (e.g. a localizer) are left out with a
warning, duplicate SOP instances are read once. An enhanced (multi-frame) image is split into its
frames (dicom_multiframe), which then go through the same checks as single-frame files.

Pipeline: header scan (no pixels) -> series choice -> slice order/geometry checks
(dicom_geometry) -> decoder and memory checks -> one int16 (K, rows, cols) array filled slice by
slice -> optional tilt resampling. The volume is returned as its (I, J, K) = (cols, rows, K)
transposed view, Fortran-contiguous like a NIfTI volume: no copy.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path

import numpy as np
from pydicom.errors import InvalidDicomError
from pydicom.uid import CTImageStorage

from inference.ct_io.dicom_geometry import SAME_POSITION_TOL, require_geometry, resample_tilt, stack_geometry
from inference.ct_io.dicom_multiframe import frame_headers, frame_slice_uid, is_multi_frame, read_frames_into
from inference.ct_io.dicom_pixels import check_decoders, read_slice_into
from inference.ct_io.dicom_scan import ScanResult, SliceHeader, read_slice_header, scan_folder
from inference.ct_io.hu_convert import clip_warning
from inference.ct_io.memory_guard import check_fits
from inference.ct_volume import CTVolume
from inference.errors import InputError

log = logging.getLogger(__name__)


def _series_text(scan: ScanResult, limit: int = 6) -> str:
    items = [
        f"{s.modality or '?'} '{s.description}' ({s.n_slices} images {s.rows}x{s.cols}, uid {s.uid})"
        for s in scan.summaries()
    ]
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def _no_images_error(folder: Path, scan: ScanResult) -> InputError:
    if scan.n_files == 0:
        return InputError(folder, "is empty: no files to load")
    if sum(scan.skipped.values()) == scan.skipped["non-DICOM file(s)"]:
        return InputError(
            folder,
            f"contains no DICOM files ({scan.n_files} other files); to load a NIfTI, choose the "
            ".nii/.nii.gz file itself",
        )
    broken = "; ".join(f"{p.name}: {why}" for p, why in scan.unreadable[:3])
    return InputError(
        folder,
        f"contains no DICOM image series (found {scan.skipped_text()})" + (f" [{broken}]" if broken else ""),
    )


def choose_series(folder: Path, scan: ScanResult, series_uid: str | None) -> tuple[str, list[str]]:
    """The UID to load and the warnings that record the choice."""
    summaries = scan.summaries()
    if not summaries:
        raise _no_images_error(folder, scan)
    if series_uid is not None:
        if series_uid not in scan.series:
            raise InputError(
                folder, f"has no image series with uid {series_uid}; it has: {_series_text(scan)}"
            )
        return series_uid, []
    cts = [s for s in summaries if s.modality == "CT"]
    if not cts:
        raise InputError(
            folder,
            f"contains no CT series; it has: {_series_text(scan)}. Pass series_uid (or choose one "
            "of its files) to load one of them anyway",
        )
    chosen = cts[0]
    warnings = []
    if len(summaries) > 1:
        warnings.append(
            f"the folder holds {len(summaries)} image series; loaded the largest CT series "
            f"'{chosen.description}' ({chosen.n_slices} images, uid {chosen.uid}). All series: "
            f"{_series_text(scan)}"
        )
    return chosen.uid, warnings


def _main_stack(
    folder: Path, headers: list[SliceHeader]
) -> tuple[list[SliceHeader], list[tuple[SliceHeader, str]], list[str]]:
    """Drop duplicate instances and images that do not belong to the main stack.

    Returns (stack, left out with the reason, warnings)."""
    warnings: list[str] = []
    unique: dict[str, SliceHeader] = {}
    for h in sorted(headers, key=lambda h: str(h.path)):
        unique.setdefault(h.sop_instance_uid or str(h.path), h)
    if len(unique) < len(headers):
        warnings.append(f"{len(headers) - len(unique)} duplicate file(s) of the same image were read once")
    headers = [f for h in unique.values() for f in (frame_headers(h) if is_multi_frame(h) else [h])]

    def key(h: SliceHeader) -> tuple:  # frames of a multi-frame image are grouped like files
        iop = tuple(round(v, 3) for v in h.orientation) if h.orientation else None
        return (h.rows, h.cols, iop)

    # a slice without usable geometry is a broken file, not a localizer: name it, never drop it
    require_geometry(headers)
    groups = Counter(key(h) for h in headers)
    left_out: list[tuple[SliceHeader, str]] = []
    if len(groups) > 1:
        main, n = groups.most_common(1)[0]
        for h in headers:
            if key(h) == main:
                continue
            if (h.rows, h.cols) != main[:2]:
                why = f"its size {h.cols}x{h.rows} differs from the stack's {main[1]}x{main[0]}"
            else:
                why = f"its ImageOrientationPatient {list(h.orientation or ())} differs from the stack's {list(main[2] or ())}"
            left_out.append((h, why))
        names = ", ".join(h.label for h, _ in left_out[:5]) + (", ..." if len(left_out) > 5 else "")
        warnings.append(
            f"left out {len(left_out)} image(s) of the series whose size or orientation differs "
            f"from the main {n}-image stack (localizer or reformat?): {names}"
        )
        headers = [h for h in headers if key(h) == main]
    return headers, left_out, warnings


def _one_acquisition(folder: Path, headers: list[SliceHeader],
                     named: Path | None) -> tuple[list[SliceHeader], list[str]]:
    """A series holding several acquisitions at the same positions (phases, repeated scans under one
    SeriesInstanceUID) -> the one of the file the user named, else the largest, with a warning that
    names the others. Duplicates that AcquisitionNumber does not explain are left to the geometry
    checks, which refuse them."""
    def place(h: SliceHeader) -> tuple:
        return tuple(round(v / SAME_POSITION_TOL) for v in h.position or ())

    if len({place(h) for h in headers}) == len(headers):
        return headers, []
    groups: dict[str, list[SliceHeader]] = {}
    for h in headers:
        groups.setdefault(h.acquisition, []).append(h)
    if len(groups) < 2 or any(len({place(h) for h in g}) < len(g) for g in groups.values()):
        return headers, []
    chosen = next((h.acquisition for h in headers if named is not None and h.path == named), None)
    if chosen is None:
        chosen = max(groups, key=lambda a: (len(groups[a]), -_number_or(a)))
    def where(h: SliceHeader) -> str:
        return str(h.path.relative_to(folder)) if h.path.is_relative_to(folder) else str(h.path)

    others = ", ".join(f"{a or 'none'} ({len(g)} images, e.g. {where(g[0])})" for a, g in groups.items() if a != chosen)
    return groups[chosen], [
        f"the series holds {len(groups)} acquisitions at the same positions; loaded AcquisitionNumber "
        f"{chosen or 'none'} ({len(groups[chosen])} images). The others: {others}; open one of their files "
        "to load that acquisition"]


def _number_or(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")


def _require_usable_values(headers: list[SliceHeader]) -> None:
    """A slice whose rescale values are unusable would load with wrong HU: refuse, naming it."""
    for h in headers:
        if h.problems:
            raise InputError(h.path, "; ".join(h.problems))


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _scan_for(path: Path, series_uid: str | None) -> tuple[Path, ScanResult, str | None]:
    """Folder -> recursive scan; one file -> its folder (not recursive) and its series."""
    if path.is_dir():
        return path, scan_folder(path, recursive=True), series_uid
    try:
        header = read_slice_header(path)
    except InvalidDicomError as exc:
        if _is_gzip(path):
            raise InputError(path, "is gzip-compressed but not a NIfTI image; decompress it (gunzip) "
                             "and open the DICOM file or its folder") from exc
        raise InputError(path, "is neither a NIfTI (.nii/.nii.gz) nor a DICOM file") from exc
    except Exception as exc:
        raise InputError(path, f"is an unreadable DICOM file ({exc})") from exc
    if header == "DICOMDIR":  # a media index, as on a CD: load what it indexes (its folder tree)
        scan = scan_folder(path.parent, recursive=True)
        if not scan.series:
            raise InputError(path, "is a DICOMDIR (a media index), but no image series lies in its folder tree")
        return path.parent, scan, series_uid
    if isinstance(header, str):
        raise InputError(path, f"is a {header}, not a CT image slice")
    return path.parent, scan_folder(path.parent, recursive=False), series_uid or header[0].series_uid


def read_dicom(
    path: str | Path, series_uid: str | None = None, *, memory_limit_bytes: int | None = None
) -> CTVolume:
    """Load a DICOM series from a folder (recursive) or from one of its files."""
    path = Path(path)
    folder, scan, series_uid = _scan_for(path, series_uid)
    uid, warnings = choose_series(folder, scan, series_uid)
    headers, left_out, stack_warnings = _main_stack(folder, scan.series[uid])
    headers, acquisition_warnings = _one_acquisition(folder, headers, path if path.is_file() else None)
    warnings += list(scan.info[uid].notes) + stack_warnings + acquisition_warnings
    if scan.unreadable:
        warnings.append(
            f"skipped {len(scan.unreadable)} unreadable DICOM file(s): "
            + "; ".join(f"{p.name} ({why})" for p, why in scan.unreadable[:3])
        )
    _require_usable_values(headers)
    try:
        geom = stack_geometry(folder, headers, left_out)
    except InputError as exc:
        if scan.unreadable:  # a broken file often is the "missing" slice: name it
            where = scan.unreadable[0][0] if len(scan.unreadable) == 1 and exc.path == folder else exc.path
            raise InputError(where, f"{exc.problem} ({warnings[-1]})") from exc
        raise
    warnings += geom.warnings
    ordered = [headers[i] for i in geom.order]
    first = ordered[0]
    if first.modality != "CT":
        warnings.append(
            f"modality is {first.modality or 'unknown'}, not CT: values are rescaled stored values, "
            "not Hounsfield units, and the analysis is meant for CT"
        )
    check_decoders(ordered)
    k, rows, cols = len(ordered), first.rows, first.cols
    check_fits(k * rows * cols * 2, folder, f"the {cols}x{rows}x{k} series", memory_limit_bytes)

    stack = np.empty((k, rows, cols), dtype=np.int16)
    n_clipped = 0
    multi_frame: dict[Path, dict[int, tuple[int, SliceHeader]]] = {}  # file -> {frame: (slot, header)}
    for i, h in enumerate(ordered):
        if h.frame:
            multi_frame.setdefault(h.path, {})[h.frame] = (i, h)
        else:
            n_clipped += read_slice_into(stack[i], h)
    for placed in multi_frame.values():
        n_clipped += read_frames_into(stack, placed)
    if n_clipped:
        warnings.append(clip_warning(n_clipped))
    if geom.tilt_shift_px is not None:
        resample_tilt(stack, geom.tilt_shift_px)
    for w in warnings:
        log.warning("%s: %s", path, w)
    info = scan.info[uid]
    if multi_frame:  # slices named by derived UIDs, written by the DICOM export (dicom_multiframe)
        study = dataclasses.replace(info.study, sop_instance_uids=tuple(frame_slice_uid(h) for h in ordered),
                                    sop_class_uid=CTImageStorage, derived_slices=True)
    else:
        study = dataclasses.replace(info.study, sop_instance_uids=tuple(h.sop_instance_uid for h in ordered))
    return CTVolume(
        hu=stack.transpose(2, 1, 0),  # (K, rows, cols) -> (I=cols, J=rows, K), a view
        affine=geom.affine,
        source_path=path,
        series_description=info.description,
        series_uid=uid,
        modality=first.modality,
        study=study,
        warnings=tuple(warnings),
        slice_thickness_mm=info.slice_thickness_mm,
    )
