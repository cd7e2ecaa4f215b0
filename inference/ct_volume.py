"""CTVolume: the one in-memory form of a CT study, whatever file it came from.

Geometry lives here and nowhere else: ``affine`` maps voxel indices (i, j, k) of ``hu`` to world
RAS millimetres (NIfTI convention). Data is never reoriented on load; every consumer (model
preprocessing, viewer, exports) derives positions from ``affine``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study identity; present for DICOM input, mostly empty for NIfTI.

    Kept apart from pixels so that exports can remove identifiers in one place.
    """

    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_instance_uid: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    study_id: str = ""
    referring_physician: str = ""
    frame_of_reference_uid: str = ""
    manufacturer: str = ""
    # SOP instance UIDs of the source slices in k order (DICOM SEG/SR reference them)
    sop_instance_uids: tuple[str, ...] = ()
    sop_class_uid: str = ""
    # the source was an enhanced (multi-frame) image: sop_instance_uids name classic CT slices derived
    # from its frames, which exist only as the DICOM export writes them beside its SEG and SR
    derived_slices: bool = False


@dataclass(frozen=True, eq=False)
class CTVolume:
    """A CT volume in Hounsfield units.

    hu:      int16 array, shape (I, J, K), indexed in the file's own voxel order.
    affine:  4x4 float64, voxel (i, j, k, 1) -> world RAS mm.
    """

    hu: np.ndarray
    affine: np.ndarray
    source_path: Path
    series_description: str = ""
    series_uid: str = ""
    modality: str = "CT"
    study: StudyInfo = field(default_factory=StudyInfo)
    warnings: tuple[str, ...] = ()
    # the series' own SliceThickness (DICOM), which can differ from the slice spacing; None: unknown
    slice_thickness_mm: float | None = None

    def __post_init__(self) -> None:
        if self.hu.dtype != np.int16:
            raise TypeError(f"CTVolume.hu must be int16, got {self.hu.dtype}")
        if self.hu.ndim != 3:
            raise ValueError(f"CTVolume.hu must be 3D, got shape {self.hu.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"CTVolume.affine must be 4x4, got {self.affine.shape}")
        # a singular or absurd affine fails later deep in resampling or the viewer: refuse it now
        from inference.ct_io.geometry_sanity import require_sane_affine

        require_sane_affine(self.source_path, self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.hu.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k (column norms of the affine)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    def voxel_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """(N, 3) voxel indices -> (N, 3) RAS mm."""
        ijk = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_voxel(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) RAS mm -> (N, 3) fractional voxel indices."""
        xyz = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
        inv = np.linalg.inv(self.affine)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def plausibility(self):
        """Does this look like a CT in HU (modality and values)? ``CTPlausibility``, cached."""
        cached = getattr(self, "_plausibility", None)
        if cached is None:
            from inference.ct_io.ct_plausibility import assess_ct

            cached = assess_ct(self.hu, self.modality)
            object.__setattr__(self, "_plausibility", cached)
        return cached

    def content_hash(self) -> str:
        """SHA-256 over pixels and geometry: the cache key for segmentation and model features."""
        cached = getattr(self, "_hash", None)
        if cached is None:
            h = hashlib.sha256()
            # Hash in Fortran (NIfTI) order: both readers return F-ordered arrays, so no copy here.
            h.update(memoryview(np.asfortranarray(self.hu).T).cast("B"))
            h.update(np.round(self.affine, 4).astype(np.float64).tobytes())
            h.update(str(self.shape).encode())
            cached = h.hexdigest()
            object.__setattr__(self, "_hash", cached)
        return cached
