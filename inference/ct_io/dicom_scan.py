"""Find DICOM image series in a folder: read headers only, group by SeriesInstanceUID.

Every regular file is tried (DICOM files often have no extension); files that are not DICOM,
DICOMDIR, and DICOM objects that are not volume slices (SR, SEG, presentation states, key
objects, RT objects, encapsulated documents: anything without Rows/Columns or with a
non-volume modality/SOP class) are skipped and counted. Headers are read with
``stop_before_pixels=True``; the file offset where pixel data starts is remembered so the reader
can fill the volume without parsing the header a second time.
"""
from __future__ import annotations

import dataclasses
import math
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pydicom
from pydicom.datadict import tag_for_keyword as _tag_for_keyword
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import ImplicitVRLittleEndian, UID

from inference.ct_volume import StudyInfo

tag_for_keyword = lru_cache(maxsize=None)(_tag_for_keyword)

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
# Modalities / SOP classes that carry pixels but are not slices of an image volume.
NON_VOLUME_MODALITIES = {
    "SEG", "SR", "PR", "KO", "REG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "DOC", "RWV"
}
NON_VOLUME_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation
    "1.2.840.10008.5.1.4.1.1.481.2",  # RT Dose
}
PIXEL_TAGS_LE = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) little / big endian


@dataclass(frozen=True, slots=True)
class SliceHeader:
    """What the loader needs from one DICOM image file (header only)."""

    path: Path
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    rows: int
    cols: int
    n_frames: int
    orientation: tuple[float, ...] | None  # ImageOrientationPatient (6), LPS
    position: tuple[float, ...] | None  # ImagePositionPatient (3), LPS mm
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) mm
    slope: float
    intercept: float
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    transfer_syntax: UID
    gantry_tilt: float
    pixel_offset: int | None  # file offset of the (7FE0,0010) element, None if unknown
    # values present in the header but unusable (e.g. RescaleSlope "abc" or 0): loading this
    # slice would give wrong HU, so the reader refuses the series naming this file
    problems: tuple[str, ...] = ()
    frame: int = 0  # 1-based frame number within a multi-frame image (dicom_multiframe); 0: a single-frame file
    acquisition: str = ""  # AcquisitionNumber: tells apart acquisitions that share one series

    @property
    def label(self) -> str:
        """The file, and the frame within it, as messages name an image."""
        return f"{self.path.name} frame {self.frame}" if self.frame else self.path.name


@dataclass(frozen=True)
class SeriesInfo:
    """Series-level fields, read once per series (from the first file met)."""

    description: str
    series_number: int | None
    study: StudyInfo
    notes: tuple[str, ...] = ()  # fields that could not be read (see _value)
    slice_thickness_mm: float | None = None


@dataclass(frozen=True)
class SeriesSummary:
    """One image series found in a folder (for a chooser; sorted largest first)."""

    uid: str
    description: str
    modality: str
    n_slices: int
    rows: int
    cols: int
    series_number: int | None
    study: StudyInfo
    first_file: Path
    transfer_syntax: str


@dataclass
class ScanResult:
    series: dict[str, list[SliceHeader]] = field(default_factory=dict)
    info: dict[str, SeriesInfo] = field(default_factory=dict)
    n_files: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # DICOM-looking but broken

    def summaries(self) -> list[SeriesSummary]:
        out = []
        for uid, slices in self.series.items():
            first = min(slices, key=lambda h: str(h.path))
            info = self.info[uid]
            out.append(
                SeriesSummary(
                    uid=uid,
                    description=info.description,
                    modality=first.modality,
                    n_slices=sum(h.n_frames for h in slices),  # an enhanced image's frames are its slices
                    rows=first.rows,
                    cols=first.cols,
                    series_number=info.series_number,
                    study=info.study,
                    first_file=first.path,
                    transfer_syntax=first.transfer_syntax.name,
                )
            )
        out.sort(key=lambda s: (-s.n_slices, -(s.rows * s.cols), s.uid))
        return out

    def skipped_text(self) -> str:
        parts = [f"{n} {reason}" for reason, n in self.skipped.most_common()]
        return ", ".join(parts) if parts else "nothing skipped"


def _value(ds: pydicom.Dataset, keyword: str, notes: list[str] | None = None):
    """Converted element value (pydicom's full conversion: character sets, PN, ...), or None.

    One broken descriptive element (an unknown VR, a bad character set) must not lose the whole
    series: it reads as absent and, with ``notes``, is recorded in words."""
    try:
        elem = ds.get(tag_for_keyword(keyword))
        return None if elem is None else elem.value
    except Exception as exc:  # pydicom raises NotImplementedError, ValueError, LookupError ...
        if notes is not None:
            notes.append(f"{keyword} could not be read ({type(exc).__name__}: {exc}); left empty")
        return None


def _str(ds: pydicom.Dataset, keyword: str, notes: list[str] | None = None) -> str:
    value = _value(ds, keyword, notes)
    return "" if value is None else str(value).strip()


def _int(ds: pydicom.Dataset, keyword: str, notes: list[str] | None = None) -> int | None:
    try:
        value = _value(ds, keyword, notes)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


# Per-slice fields are parsed from the raw element bytes: pydicom's per-element conversion
# costs more than reading the file itself when done 20 times for each of hundreds of slices.
# Only ASCII value representations (UI, CS, DS, IS) and US go through these.
def _ascii(ds: pydicom.Dataset, keyword: str) -> str:
    elem = ds.get_item(tag_for_keyword(keyword))
    if elem is None:
        return ""
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        return value.decode("ascii", "replace").strip(" \x00")
    if value is None:
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _numbers(ds: pydicom.Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    text = _ascii(ds, keyword)
    try:
        values = tuple(float(v) for v in text.split("\\")) if text else ()
    except ValueError:
        return None
    return values if len(values) == n and all(math.isfinite(v) for v in values) else None


def _number(ds: pydicom.Dataset, keyword: str, default: float) -> float:
    values = _numbers(ds, keyword, 1)
    return values[0] if values else default


# RescaleSlope/Intercept beyond these are a broken header, not a scanner's choice (CT uses slope
# 1 or a fraction, intercepts of -1024 .. -8192); 1e300 would overflow the HU conversion.
MAX_ABS_INTERCEPT = 1e5
MAX_SLOPE = 1e3


def _rescale(ds: pydicom.Dataset) -> tuple[float, float, list[str]]:
    """(slope, intercept, problems). Absent values default to 1 and 0, as PS3.3 allows for
    images without a Modality LUT; present but unusable ones are problems, never defaults."""
    problems = []
    values = []
    for keyword, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        text = _ascii(ds, keyword)
        if not text:
            values.append(default)
            continue
        try:
            value = float(text.split("\\")[0])
        except ValueError:
            problems.append(f"{keyword} {text!r} is not a number, so Hounsfield units cannot be computed")
            values.append(default)
            continue
        values.append(value)
        if not math.isfinite(value):
            problems.append(f"{keyword} is {text!r}, so Hounsfield units cannot be computed")
    slope, inter = values
    if math.isfinite(slope) and not 0 < slope <= MAX_SLOPE:
        problems.append(f"RescaleSlope is {slope:g}; it must be positive (0 gives a blank image, "
                        "a negative slope an inverted one) and at most 1000")
    if math.isfinite(inter) and abs(inter) > MAX_ABS_INTERCEPT:
        problems.append(f"RescaleIntercept is {inter:g}, far outside any CT's range (usually -1024)")
    return slope, inter, problems


def _ushort(ds: pydicom.Dataset, keyword: str) -> int | None:
    elem = ds.get_item(tag_for_keyword(keyword))
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        if elem.VR not in (None, "US", "SS", "OW", "UN") or len(value) < 2:
            return None  # pragma: no cover - a malformed header
        return int.from_bytes(value[:2], "little" if elem.is_little_endian else "big")
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def study_info(ds: pydicom.Dataset, notes: list[str] | None = None) -> StudyInfo:
    return StudyInfo(
        patient_name=_str(ds, "PatientName", notes),
        patient_id=_str(ds, "PatientID", notes),
        patient_birth_date=_str(ds, "PatientBirthDate", notes),
        patient_sex=_str(ds, "PatientSex", notes),
        study_instance_uid=_str(ds, "StudyInstanceUID", notes),
        study_date=_str(ds, "StudyDate", notes),
        study_time=_str(ds, "StudyTime", notes),
        study_description=_str(ds, "StudyDescription", notes),
        accession_number=_str(ds, "AccessionNumber", notes),
        study_id=_str(ds, "StudyID", notes),
        referring_physician=_str(ds, "ReferringPhysicianName", notes),
        frame_of_reference_uid=_str(ds, "FrameOfReferenceUID", notes),
        manufacturer=_str(ds, "Manufacturer", notes),
        sop_class_uid=_str(ds, "SOPClassUID", notes),
    )


def _looks_like_raw_dicom(path: Path) -> bool:
    """A DICOM file without the 128-byte preamble starts with a group 0002 or 0008 tag."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return len(head) == 4 and head[:2] in (b"\x02\x00", b"\x08\x00")


def _read_dataset(path: Path) -> tuple[pydicom.Dataset, int | None]:
    """Header (no pixels) and the offset where pixel data starts (None if absent/unknown)."""
    with open(path, "rb") as fp:
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
        except InvalidDicomError:
            if not _looks_like_raw_dicom(path):
                raise
            fp.seek(0)
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            except Exception as exc:  # a non-DICOM file that merely starts like one
                raise InvalidDicomError(str(exc)) from exc
        pos = fp.tell()
        tag = fp.read(4)
    return ds, (pos if tag in PIXEL_TAGS_LE else None)


class UnreadableDicom(ValueError):
    """A DICOM image file whose header or pixel data is cut off or broken."""


def _is_deflated(ts: UID) -> bool:
    try:
        return ts.is_deflated
    except ValueError:  # a private / unknown transfer syntax
        return False


def _is_image_class(sop_class: str) -> bool:
    return bool(sop_class) and "Image Storage" in UID(sop_class).name


def series_info(ds: pydicom.Dataset, path: Path) -> SeriesInfo:
    notes: list[str] = []
    thickness = _number(ds, "SliceThickness", float("nan"))
    shared = ds.get("SharedFunctionalGroupsSequence")
    if not math.isfinite(thickness) and shared and shared[0].get("PixelMeasuresSequence"):
        # an enhanced (multi-frame) image keeps it in its shared functional groups
        thickness = _number(shared[0].PixelMeasuresSequence[0], "SliceThickness", float("nan"))
    info = SeriesInfo(_str(ds, "SeriesDescription", notes), _int(ds, "SeriesNumber", notes),
                      study_info(ds, notes),
                      slice_thickness_mm=thickness if math.isfinite(thickness) and 0 < thickness < 100 else None)
    return dataclasses.replace(info, notes=tuple(f"{path.name}: {n}" for n in notes))


def read_slice_header(path: Path) -> tuple[SliceHeader, pydicom.Dataset] | str:
    """The header of one image file (and its dataset without pixels), or the reason it is not a
    volume slice.

    Raises InvalidDicomError for non-DICOM files and other exceptions for broken DICOM headers.
    """
    ds, pixel_offset = _read_dataset(path)
    meta = getattr(ds, "file_meta", None)
    meta_class = _ascii(meta, "MediaStorageSOPClassUID") if meta is not None else ""
    if meta_class == DICOMDIR_CLASS or path.name.upper() == "DICOMDIR":
        return "DICOMDIR"
    modality = _ascii(ds, "Modality").upper()
    sop_class = _ascii(ds, "SOPClassUID")
    rows, cols = _ushort(ds, "Rows"), _ushort(ds, "Columns")
    if modality in NON_VOLUME_MODALITIES or sop_class in NON_VOLUME_CLASSES:
        return f"non-image DICOM ({modality or sop_class})"
    ts_value = _ascii(meta, "TransferSyntaxUID") if meta is not None else ""
    transfer_syntax = UID(ts_value) if ts_value else ImplicitVRLittleEndian
    # (a deflated file's offset is in the compressed stream: its pixels are found on decoding)
    no_pixels = pixel_offset is None and not _is_deflated(transfer_syntax)
    if not rows or not cols or no_pixels:
        # pydicom reads a cut-off header without complaint: an image SOP class without
        # Rows or pixel data is a broken file, not a non-image object
        declared = sop_class or meta_class
        missing = "pixel data" if rows and cols else "Rows/Columns"
        if _is_image_class(declared):
            raise UnreadableDicom(f"a {UID(declared).name} file without {missing} (truncated?)")
        return f"non-image DICOM ({modality or 'no ' + missing})"
    spacing = _numbers(ds, "PixelSpacing", 2)
    slope, intercept, problems = _rescale(ds)
    bits_allocated = _ushort(ds, "BitsAllocated") or 16
    header = SliceHeader(
        path=path,
        series_uid=_ascii(ds, "SeriesInstanceUID"),
        sop_instance_uid=_ascii(ds, "SOPInstanceUID"),
        sop_class_uid=sop_class,
        modality=modality,
        rows=rows,
        cols=cols,
        n_frames=int(_number(ds, "NumberOfFrames", 1)),
        orientation=_numbers(ds, "ImageOrientationPatient", 6),
        position=_numbers(ds, "ImagePositionPatient", 3),
        pixel_spacing=(spacing[0], spacing[1]) if spacing else None,
        slope=slope,
        intercept=intercept,
        bits_allocated=bits_allocated,
        bits_stored=_ushort(ds, "BitsStored") or bits_allocated,
        pixel_representation=_ushort(ds, "PixelRepresentation") or 0,
        samples_per_pixel=_ushort(ds, "SamplesPerPixel") or 1,
        transfer_syntax=transfer_syntax,
        gantry_tilt=_number(ds, "GantryDetectorTilt", 0.0),
        pixel_offset=pixel_offset,
        problems=tuple(problems),
        acquisition=_ascii(ds, "AcquisitionNumber"),
    )
    return header, ds


def _iter_files(folder: Path, recursive: bool):
    """Regular files only (a FIFO or device would block open()); no symlinked dirs (loops)."""
    if recursive:
        walker = os.walk(folder, onerror=None, followlinks=False)
    else:
        walker = [(str(folder), [], [e.name for e in os.scandir(folder)])]
    for root, dirs, files in walker:
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            try:
                if stat.S_ISREG(os.stat(p).st_mode):
                    yield p
            except OSError:
                continue


def scan_folder(folder: str | Path, recursive: bool = True) -> ScanResult:
    """Read the header of every file below ``folder`` and group image slices by series UID."""
    result = ScanResult()
    for path in _iter_files(Path(folder), recursive):
        result.n_files += 1
        try:
            header = read_slice_header(path)
        except InvalidDicomError:
            result.skipped["non-DICOM file(s)"] += 1
            continue
        except Exception as exc:  # pydicom raises many types on broken headers
            result.skipped["unreadable DICOM file(s)"] += 1
            why = str(exc) if isinstance(exc, UnreadableDicom) else f"{type(exc).__name__}: {exc}"
            result.unreadable.append((path, why))
            continue
        if isinstance(header, str):
            result.skipped[header] += 1
            continue
        header, ds = header
        if header.series_uid not in result.info:
            result.info[header.series_uid] = series_info(ds, path)
        result.series.setdefault(header.series_uid, []).append(header)
    return result
