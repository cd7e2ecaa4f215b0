"""OrganMasks: the segmentation expert's answer, on the CT's own voxel grid."""
from __future__ import annotations

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
