"""OrganMasks: the segmentation expert's answer, on the CT's own voxel grid."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from inference.labels import LabelTable, merged_labels


@dataclass(frozen=True, eq=False)
class OrganMasks:
    """Organ label maps on the same grid (shape and affine) as their CTVolume.

    organs:  uint8 (I, J, K), merged-scheme ids 1..56, 0 = background.
    parts:   uint8 (I, J, K) substructure ids (>= 100) or None when the backend has none
             (TotalSegmentator 'total' alone gives none; 'liver_segments' fills Couinaud segments).
    backend: which expert produced them ("totalsegmentator", "precomputed:<file>", "synthetic").
    """

    organs: np.ndarray
    affine: np.ndarray
    backend: str
    parts: np.ndarray | None = None
    table: LabelTable = field(default_factory=merged_labels)
    details: dict = field(default_factory=dict)  # backend settings, versions, timings

    def __post_init__(self) -> None:
        if self.organs.dtype != np.uint8:
            raise TypeError(f"OrganMasks.organs must be uint8, got {self.organs.dtype}")
        if self.parts is not None and self.parts.shape != self.organs.shape:
            raise ValueError("OrganMasks.parts must have the organs' shape")

    def content_hash(self) -> str:
        """mask_hash() of these masks, computed once: a run's masks are matched by it (run.json's
        segmentation.mask_hash), and the loader, the pipeline and the export all ask."""
        cached = getattr(self, "_hash", None)
        if cached is None:
            cached = mask_hash(self.organs, self.parts, self.affine)
            object.__setattr__(self, "_hash", cached)  # frozen; label maps are never edited in place
        return cached

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.organs.shape)  # type: ignore[return-value]

    def present_ids(self) -> list[int]:
        """Label ids with at least one voxel, organs then parts."""
        ids = [int(i) for i in np.flatnonzero(np.bincount(self.organs.ravel(), minlength=256)) if i]
        if self.parts is not None:
            ids += [int(i) for i in np.flatnonzero(np.bincount(self.parts.ravel(), minlength=256)) if i]
        return ids

    def mask(self, label_id: int) -> np.ndarray:
        """Boolean mask of one label (organ or substructure)."""
        if label_id >= 100:
            if self.parts is None:
                return np.zeros(self.organs.shape, dtype=bool)
            return self.parts == label_id
        return self.organs == label_id

    def volume_ml(self, label_id: int) -> float:
        voxel_ml = abs(float(np.linalg.det(self.affine[:3, :3]))) / 1000.0
        return float(self.mask(label_id).sum()) * voxel_ml


def mask_hash(organs: np.ndarray, parts: np.ndarray | None, affine: np.ndarray) -> str:
    """SHA-256 over the organ and part label maps and their grid: the same masks, the same hash
    (whatever their memory order)."""
    h = hashlib.sha256()
    h.update(str(tuple(organs.shape)).encode())
    h.update(memoryview(np.ascontiguousarray(organs, dtype=np.uint8)).cast("B"))
    if parts is not None:
        h.update(b"parts")
        h.update(memoryview(np.ascontiguousarray(parts, dtype=np.uint8)).cast("B"))
    h.update(np.round(np.asarray(affine, dtype=np.float64), 4).tobytes())
    return h.hexdigest()
