"""Enhanced (multi-frame) CT: one file whose frames are the slices (Enhanced CT Image Storage and
Legacy Converted Enhanced CT Image Storage, as recent scanners and PACS converters write them).

Each frame's geometry and rescale live in functional groups (PS3.3 C.7.6.16): per frame in
PerFrameFunctionalGroupsSequence, or once for all frames in SharedFunctionalGroupsSequence.
``frame_headers`` turns the file into one SliceHeader per frame (``frame`` = its 1-based number),
so the series reader treats frames as it treats single-frame files: grouped by orientation
(a localizer frame is left out), ordered by position, checked for gaps and tilt, rescaled per
frame. ``read_frames_into`` decodes the file's frames once, in file order, through pydicom's
pixel plugins (any transfer syntax the single-frame path reads), and rescales each into its slot.
A DICOM SEG/SR cannot reference a frame as a slice, so the volume names its slices by UIDs derived
from the image and its frame numbers (``frame_slice_uid``), and the DICOM export writes those slices
as a classic CT series beside the SEG and SR that reference them.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pydicom

from inference.ct_io.dicom_scan import SliceHeader, _numbers, _rescale
from inference.ct_io.hu_convert import to_hu_into
from inference.errors import InputError


def is_multi_frame(h: SliceHeader) -> bool:
    """Frames to place by functional groups: several frames, or an enhanced image of one frame
    (its position lives in the functional groups too, not at the top level)."""
    return h.n_frames > 1 or "Enhanced" in pydicom.uid.UID(h.sop_class_uid).name


def _group(frame: pydicom.Dataset | None, shared: pydicom.Dataset | None, keyword: str) -> pydicom.Dataset | None:
    """The first item of a functional group macro, from the frame's groups or else the shared ones."""
    for groups in (frame, shared):
        seq = getattr(groups, keyword, None) if groups is not None else None
        if seq:
            return seq[0]
    return None


def frame_headers(h: SliceHeader) -> list[SliceHeader]:
    """One header per frame of the multi-frame image ``h``; InputError naming the file (and the
    frame) when its functional groups cannot place a frame."""
    try:
        ds = pydicom.dcmread(h.path, stop_before_pixels=True, force=True)
    except Exception as exc:  # pydicom raises many types on broken headers
        raise InputError(h.path, f"unreadable multi-frame DICOM header ({type(exc).__name__}: {exc})") from exc
    per_frame = list(getattr(ds, "PerFrameFunctionalGroupsSequence", None) or [])
    shared_seq = getattr(ds, "SharedFunctionalGroupsSequence", None)
    shared = shared_seq[0] if shared_seq else None
    if not per_frame and shared is None:
        raise InputError(h.path, f"is a multi-frame image with {h.n_frames} frames but no functional groups "
                         "(not an enhanced CT), so its frames cannot be placed in space")
    if per_frame and len(per_frame) != h.n_frames:
        raise InputError(h.path, f"declares {h.n_frames} frames (NumberOfFrames) but describes "
                         f"{len(per_frame)} in PerFrameFunctionalGroupsSequence")
    out = []
    for i in range(h.n_frames):
        frame = per_frame[i] if per_frame else None
        where = f"frame {i + 1} of {h.n_frames}"
        position = _numbers(_group(frame, shared, "PlanePositionSequence") or pydicom.Dataset(),
                            "ImagePositionPatient", 3)
        orientation = _numbers(_group(frame, shared, "PlaneOrientationSequence") or pydicom.Dataset(),
                               "ImageOrientationPatient", 6)
        measures = _group(frame, shared, "PixelMeasuresSequence") or pydicom.Dataset()
        spacing = _numbers(measures, "PixelSpacing", 2)
        missing = [name for name, v in (("ImagePositionPatient (PlanePositionSequence)", position),
                                        ("ImageOrientationPatient (PlaneOrientationSequence)", orientation),
                                        ("PixelSpacing (PixelMeasuresSequence)", spacing)) if v is None]
        if missing:
            raise InputError(h.path, f"{where} has no usable {' or '.join(missing)} in its functional groups, "
                             "so it cannot be placed in space")
        transform = _group(frame, shared, "PixelValueTransformationSequence")
        slope, intercept, problems = _rescale(transform) if transform is not None else (h.slope, h.intercept, [])
        out.append(dataclasses.replace(
            h, frame=i + 1, position=position, orientation=orientation,
            pixel_spacing=(spacing[0], spacing[1]), slope=slope, intercept=intercept,
            problems=h.problems + tuple(f"{where}: {p}" for p in problems)))
    return out


def frame_slice_uid(h: SliceHeader) -> str:
    """The SOP instance UID of the classic CT slice made from frame ``h.frame`` of its image: the same
    on every load, so a DICOM export's SEG/SR and its copy of the CT agree across sessions."""
    return pydicom.uid.generate_uid(entropy_srcs=[h.sop_instance_uid, f"frame {h.frame}"])


def classic_series_uid(series_uid: str) -> str:
    """The SeriesInstanceUID of that classic copy: its own series, beside the enhanced original."""
    return pydicom.uid.generate_uid(entropy_srcs=[series_uid, "classic slices"])


def _require_whole_native_pixels(h: SliceHeader) -> None:
    """Uncompressed frames cut off by the end of the file: say so plainly, before decoding."""
    ts = h.transfer_syntax
    try:
        native = not ts.is_encapsulated and not ts.is_deflated and ts.is_little_endian
    except ValueError:  # a private transfer syntax: the decoder will tell
        return
    if not native or h.pixel_offset is None:
        return
    with open(h.path, "rb") as f:
        f.seek(h.pixel_offset)
        head = f.read(12)
    start = 12 if head[4:6] in (b"OB", b"OW", b"UN") else 8  # explicit VR: tag, VR, 2 reserved, length
    need = h.n_frames * h.rows * h.cols * h.samples_per_pixel * h.bits_allocated // 8
    held = h.path.stat().st_size - h.pixel_offset - start
    if held < need:
        raise InputError(h.path, f"pixel data is cut short: the file holds {max(held, 0)} of the {need} bytes "
                         f"its {h.n_frames} frames need (truncated file?)")


def read_frames_into(stack: np.ndarray, placed: dict[int, tuple[int, SliceHeader]]) -> int:
    """Decode every frame of one file once and write frame f's HU into ``stack[slot]`` for each
    ``placed[f] = (slot, header)`` (frames not placed, e.g. a localizer, are skipped). Returns #clipped."""
    from pydicom.pixels import iter_pixels

    h = next(iter(placed.values()))[1]
    _require_whole_native_pixels(h)
    n_clipped, seen = 0, 0
    try:
        for number, raw in enumerate(iter_pixels(h.path), start=1):
            seen = number
            if number not in placed:
                continue
            if raw.shape != (h.rows, h.cols):
                raise InputError(h.path, f"frame {number} decodes to shape {raw.shape}, expected one "
                                 f"{h.rows}x{h.cols} grey image")
            slot, f = placed[number]
            n_clipped += to_hu_into(stack[slot], raw, f.slope, f.intercept)
    except InputError:
        raise
    except Exception as exc:  # plugins raise RuntimeError/ValueError/OSError/... on bad data
        raise InputError(h.path, f"pixel data of frame {seen + 1} could not be decoded; the file may be "
                         f"truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    if seen < h.n_frames:
        raise InputError(h.path, f"pixel data holds {seen} of its {h.n_frames} frames (truncated file?)")
    return n_clipped
