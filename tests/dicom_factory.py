"""Write synthetic CT inputs for tests and benchmarks: DICOM CT series, non-image DICOM
objects, and NIfTI files with exact raw bytes (``write_nifti_raw``).

``write_series(folder, hu, affine)`` writes the int16 volume ``hu`` (I, J, K) whose voxel->RAS
affine is ``affine`` as one single-frame DICOM file per k-slice, in DICOM's LPS patient space:
ImageOrientationPatient and ImagePositionPatient come from the affine (a sheared affine gives a
gantry-tilted series), pixels are stored as (hu - intercept) / slope. Transfer syntaxes:
native little endian (explicit / implicit VR), RLE, JPEG-LS and JPEG 2000 through pydicom's
encoders, JPEG baseline 8-bit through Pillow, JPEG extended 12-bit and JPEG lossless (process 14,
SV1 or any predictor) through imagecodecs (libjpeg-turbo 3), which tests import-skip on.
"""
from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any, Callable

import nibabel as nib
import numpy as np
import pydicom
from pydicom import uid as U
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

LPS = np.diag([-1.0, -1.0, 1.0])
_JPEG = {U.JPEGBaseline8Bit, U.JPEGExtended12Bit, U.JPEGLossless, U.JPEGLosslessSV1}


def slice_geometry(affine: np.ndarray, k: float) -> tuple[list[float], list[float], list[float]]:
    """(ImageOrientationPatient, ImagePositionPatient, PixelSpacing) of slice k of an RAS affine."""
    m = LPS @ np.asarray(affine, dtype=np.float64)[:3, :3]
    t = LPS @ np.asarray(affine, dtype=np.float64)[:3, 3]
    col_sp, row_sp = np.linalg.norm(m[:, 0]), np.linalg.norm(m[:, 1])
    iop = list(m[:, 0] / col_sp) + list(m[:, 1] / row_sp)
    ipp = list(t + m[:, 2] * k)
    return [round(v, 8) for v in iop], [round(v, 5) for v in ipp], [round(row_sp, 6), round(col_sp, 6)]


def _encode_jpeg(frame: np.ndarray, ts: str, predictor: int) -> bytes:
    if ts == U.JPEGBaseline8Bit:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(frame.astype(np.uint8), mode="L").save(buf, format="JPEG", quality=95)
        return buf.getvalue()
    import imagecodecs

    if ts == U.JPEGExtended12Bit:
        return imagecodecs.jpeg8_encode(frame.astype(np.uint16), level=95, bitspersample=12)
    pred = 1 if ts == U.JPEGLosslessSV1 else predictor
    return imagecodecs.jpeg8_encode(frame.astype(np.uint16), lossless=True, predictor=pred, bitspersample=16)


def base_dataset(
    sop_class: str, modality: str, ts: str = U.ExplicitVRLittleEndian, **tags: Any
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = U.generate_uid()
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = tags.pop("PatientName", "Test^Patient")
    ds.PatientID = tags.pop("PatientID", "TC0001")
    ds.StudyInstanceUID = tags.pop("StudyInstanceUID", "1.2.826.0.1.3680043.8.498.1")
    ds.SeriesInstanceUID = tags.pop("SeriesInstanceUID", U.generate_uid())
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


def write_series(
    folder: str | Path,
    hu: np.ndarray,
    affine: np.ndarray,
    *,
    transfer_syntax: str = U.ExplicitVRLittleEndian,
    modality: str = "CT",
    series_uid: str | None = None,
    description: str = "synthetic CT",
    slope: float = 1.0,
    intercept: float = -1024.0,
    signed: bool = False,
    bits_stored: int = 16,
    jpeg_predictor: int = 6,
    name: Callable[[int], str] = lambda k: f"IM{k:04d}",
    skip: tuple[int, ...] = (),
    shuffle: bool = True,
    extra: dict[str, Any] | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write hu (I, J, K) int16 as a DICOM series; returns the file paths in k order.

    The DICOM row index is j and the column index i (pixel array = hu[:, :, k].T). Files are
    written in a shuffled order with shuffled InstanceNumbers so that only positions can
    sort them. ``skip`` leaves slice indices out (missing-slice tests).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or U.generate_uid()
    ts = U.UID(transfer_syntax)
    eight_bit = ts == U.JPEGBaseline8Bit
    rng = np.random.default_rng(seed)
    ks = [k for k in range(hu.shape[2]) if k not in skip]
    instance = rng.permutation(len(ks)) + 1 if shuffle else np.arange(len(ks)) + 1
    frame_uid = U.generate_uid()
    paths = []
    for n, k in enumerate(ks):
        iop, ipp, ps = slice_geometry(affine, k)
        ds = base_dataset(
            U.CTImageStorage if modality == "CT" else U.SecondaryCaptureImageStorage,
            modality,
            U.ExplicitVRLittleEndian,
            SeriesInstanceUID=series_uid,
            SeriesDescription=description,
            SeriesNumber=3,
            StudyDate="20240102",
            StudyDescription="ABDOMEN",
            FrameOfReferenceUID=frame_uid,
            Manufacturer="TumorChain test factory",
            InstanceNumber=int(instance[n]),
            ImageOrientationPatient=iop,
            ImagePositionPatient=ipp,
            PixelSpacing=ps,
            SliceThickness=(extra or {}).get("SliceThickness", round(float(np.linalg.norm(affine[:3, 2])), 4)),
            Rows=hu.shape[1],
            Columns=hu.shape[0],
            SamplesPerPixel=1,
            PhotometricInterpretation="MONOCHROME2",
            BitsAllocated=8 if eight_bit else 16,
            BitsStored=8 if eight_bit else bits_stored,
            HighBit=(8 if eight_bit else bits_stored) - 1,
            PixelRepresentation=0 if eight_bit else int(signed),
            RescaleSlope=slope,
            RescaleIntercept=intercept,
            **{k: v for k, v in (extra or {}).items() if k != "SliceThickness"},
        )
        stored = np.rint((hu[:, :, k].T.astype(np.float64) - intercept) / slope)
        dtype = np.uint8 if eight_bit else (np.int16 if signed else np.uint16)
        info = np.iinfo(dtype)
        frame = np.ascontiguousarray(np.clip(stored, info.min, info.max).astype(dtype))
        if ts in _JPEG:
            ds.PixelData = encapsulate([_encode_jpeg(frame, ts, jpeg_predictor)])
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = ts
            if ts in (U.JPEGBaseline8Bit, U.JPEGExtended12Bit):
                ds.LossyImageCompression = "01"
        else:
            ds.PixelData = frame.tobytes()
            ds["PixelData"].VR = "OW"
            if ts.is_encapsulated:
                ds.compress(ts)
            else:
                ds.file_meta.TransferSyntaxUID = ts
        path = folder / name(k)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_non_image(folder: str | Path, kind: str, series_uid: str | None = None) -> Path:
    """A non-image DICOM object: 'SR', 'PR', 'SEG' (with pixel data) or 'DICOMDIR'."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {"SeriesInstanceUID": series_uid or U.generate_uid()}
    if kind == "SR":
        ds = base_dataset(U.BasicTextSRStorage, "SR", **extra)
        ds.ValueType = "CONTAINER"
    elif kind == "PR":
        ds = base_dataset(U.GrayscaleSoftcopyPresentationStateStorage, "PR", **extra)
    elif kind == "SEG":
        ds = base_dataset(U.SegmentationStorage, "SEG", **extra)
        ds.Rows, ds.Columns, ds.NumberOfFrames = 8, 8, 2
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
        ds.PixelData = b"\xff" * 16
    elif kind == "DICOMDIR":
        ds = base_dataset("1.2.840.10008.1.3.10", "", **extra)
        ds.DirectoryRecordSequence = []
    else:
        raise ValueError(kind)
    path = folder / (kind if kind == "DICOMDIR" else f"{kind.lower()}_object.dcm")
    ds.save_as(path, enforce_file_format=True)
    return path


def phantom(shape: tuple[int, int, int] = (24, 20, 10), seed: int = 0) -> np.ndarray:
    """A small int16 'abdomen': air, an elliptic body (~40 HU + noise), a bone and a lesion."""
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    hu = np.full(shape, -1000, dtype=np.int32)
    body = (i / 0.9) ** 2 + (j / 0.75) ** 2 < 1
    hu[body] = 40
    hu[body & ((i - 0.3) ** 2 + (j + 0.2) ** 2 < 0.05)] = 700  # bone
    hu[body & ((i + 0.3) ** 2 + j**2 + k**2 < 0.08)] = 90  # enhancing lesion
    hu += rng.integers(-20, 21, size=shape)
    return hu.astype(np.int16)


def read_back(path: str | Path) -> pydicom.Dataset:
    return pydicom.dcmread(path)


def write_nifti_raw(
    path: str | Path,
    raw: np.ndarray,
    affine: np.ndarray,
    *,
    slope: float = 1.0,
    inter: float = 0.0,
    endianness: str = "<",
    codes: tuple[int, int] = (1, 1),
    shape: tuple[int, ...] | None = None,
) -> Path:
    """A NIfTI-1 file holding exactly ``raw`` (its dtype, in F order) with the given scaling.

    nibabel's own writer recomputes scl_slope/scl_inter from the data; the tests need the
    stored values and the scaling to be exactly what they say. ``codes`` = (qform, sform)
    codes; ``shape`` overrides the header dimensions (e.g. to promise more than is stored).
    """
    path = Path(path)
    hdr = nib.Nifti1Header(endianness=endianness)
    hdr.set_data_dtype(raw.dtype)
    hdr.set_data_shape(shape or raw.shape)
    hdr.set_qform(affine, code=codes[0])
    hdr.set_sform(affine, code=codes[1])
    hdr["scl_slope"], hdr["scl_inter"] = slope, inter
    hdr["vox_offset"] = 352
    data = raw.astype(raw.dtype.newbyteorder(endianness)).tobytes(order="F")
    blob = hdr.binaryblock + b"\x00" * 4 + data
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(blob)
    else:
        path.write_bytes(blob)
    return path
