"""Header-only CT Image datasets of the source series, rebuilt from a CTVolume.

highdicom builds a SEG and an SR from the source images' headers (patient, study, frame of
reference, slice positions, SOP instance UIDs). The export recreates those headers from the
CTVolume (its affine and StudyInfo) instead of re-reading the original files: the export then
works from what the app holds in memory, even when the original folder is gone, and the slice
geometry is by construction the one the masks were drawn on.
"""
from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage
from pydicom.valuerep import DSfloat

from inference.ct_volume import CTVolume, StudyInfo

LPS = np.diag([-1.0, -1.0, 1.0])


def has_dicom_source(ct: CTVolume) -> bool:
    """True when the CT came from a DICOM series whose slices we can reference one by one."""
    return len(ct.study.sop_instance_uids) == ct.shape[2] > 0 and bool(ct.series_uid)


def dicom_unavailable_reason(ct: CTVolume) -> str:
    if not ct.study.sop_instance_uids:
        return "the CT did not come from DICOM (no SOP instance UIDs), so no DICOM SEG/SR was written"
    if len(ct.study.sop_instance_uids) != ct.shape[2]:
        return (f"the CT has {ct.shape[2]} slices but {len(ct.study.sop_instance_uids)} source instance UIDs; "
                "no DICOM SEG/SR was written")
    return "the CT has no series instance UID; no DICOM SEG/SR was written"


def _ds(values, digits: int = 8) -> list[DSfloat]:
    """DS values without float noise (8 decimals keep any clinical precision: 0.9765625 mm stays)."""
    return [DSfloat(round(float(v), digits), auto_format=True) for v in values]


def source_headers(ct: CTVolume, study: StudyInfo | None = None, series_uid: str | None = None) -> list[Dataset]:
    """One CT Image header per k slice (no pixel data), in k order.

    study / series_uid replace the CT's own (a de-identified export passes pseudonymised ones).
    Slice k: DICOM rows follow voxel j, columns voxel i (pixel (r, c) = hu[c, r, k]).
    """
    study = study or ct.study
    series_uid = series_uid or ct.series_uid
    affine = np.asarray(ct.affine, dtype=np.float64)
    m = LPS @ affine[:3, :3]
    t = LPS @ affine[:3, 3]
    col_sp, row_sp = np.linalg.norm(m[:, 0]), np.linalg.norm(m[:, 1])
    iop = _ds(list(m[:, 0] / col_sp) + list(m[:, 1] / row_sp), 8)
    thickness = float(np.linalg.norm(m[:, 2]))
    out = []
    for k, uid in enumerate(study.sop_instance_uids):
        ds = Dataset()
        ds.SOPClassUID = study.sop_class_uid or CTImageStorage
        ds.SOPInstanceUID = uid
        ds.Modality = ct.modality or "CT"
        # a one-component name ends in '^' (PS3.5 6.2): 'ANON-1A2B' would be ambiguous
        ds.PatientName = study.patient_name if "^" in study.patient_name or not study.patient_name \
            else study.patient_name + "^"
        ds.PatientID = study.patient_id
        ds.PatientBirthDate = study.patient_birth_date
        ds.PatientSex = study.patient_sex
        ds.StudyInstanceUID = study.study_instance_uid
        ds.StudyDate = study.study_date
        ds.StudyTime = study.study_time
        ds.StudyDescription = study.study_description
        ds.StudyID = study.study_id
        ds.AccessionNumber = study.accession_number
        ds.ReferringPhysicianName = study.referring_physician
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 1
        ds.SeriesDescription = ct.series_description
        ds.InstanceNumber = k + 1
        ds.FrameOfReferenceUID = study.frame_of_reference_uid
        ds.Manufacturer = study.manufacturer
        ds.ImageOrientationPatient = iop
        ds.ImagePositionPatient = _ds(t + m[:, 2] * k)
        ds.PixelSpacing = _ds([row_sp, col_sp])
        # the source's own thickness (a 5 mm slice every 2.5 mm is common); the spacing when unknown
        ds.SliceThickness = _ds([ct.slice_thickness_mm or thickness])[0]
        ds.Rows, ds.Columns = ct.shape[1], ct.shape[0]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        out.append(ds)
    return out


def frames_of(volume: np.ndarray) -> np.ndarray:
    """(I, J, K) -> (K, J, I): one DICOM frame per k slice, rows j, columns i."""
    return np.ascontiguousarray(np.transpose(volume, (2, 1, 0)))
