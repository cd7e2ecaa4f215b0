"""Backend: the synthetic cohort's own masks (organs.nii.gz / parts.nii.gz next to ct.nii.gz).

Cohort case folder (written by training/cohort):
    <root>/cases/<case_id>/ct.nii.gz      int16 HU
    <root>/cases/<case_id>/organs.nii.gz  uint8 merged-scheme ids, same grid
    <root>/cases/<case_id>/parts.nii.gz   uint8 substructure ids >= 100, same grid (optional here)
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from inference.ct_volume import CTVolume
from inference.errors import InputError
from inference.labels import merged_labels
from inference.segmentation.expert import ProgressFn, notify_progress, raise_if_cancelled
from inference.segmentation.grid_check import fit_to_ct_grid
from inference.segmentation.label_files import read_label_nifti
from inference.segmentation.organ_masks import OrganMasks

ORGANS_FILE = "organs.nii.gz"
PARTS_FILE = "parts.nii.gz"


class SyntheticCohortExpert:
    """Reads the ground-truth masks of a synthetic cohort case."""

    name = "synthetic"

    def __init__(self, case_dir: str | Path | None = None):
        self.case_dir = Path(case_dir) if case_dir else None

    def cache_identity(self) -> dict[str, Any]:
        return {"backend": self.name, "case_dir": str(self.case_dir.resolve()) if self.case_dir else None}

    def _folder(self, ct: CTVolume) -> Path:
        if self.case_dir is not None:
            return self.case_dir
        src = Path(ct.source_path)
        return src if src.is_dir() else src.parent

    def segment(self, ct: CTVolume, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> OrganMasks:
        folder = self._folder(ct)
        organs_path = folder / ORGANS_FILE
        if not organs_path.is_file():
            raise InputError(folder, f"no {ORGANS_FILE} here: the synthetic backend needs a cohort case folder "
                                     f"(ct.nii.gz with {ORGANS_FILE} and {PARTS_FILE} beside it)")
        notify_progress(progress, 0.1, f"reading {organs_path.name}")
        raw, affine, _ = read_label_nifti(organs_path)
        organs, note = fit_to_ct_grid(raw, affine, ct.shape, ct.affine, organs_path, ct.source_path)
        notes = [note] if note else []
        table = merged_labels()
        organ_ids = {lab.id for lab in table.organs()}
        wrong = sorted(set(np.unique(organs).tolist()) - {0} - organ_ids)
        if wrong:
            raise InputError(organs_path, f"ids {wrong[:10]} are not merged-scheme organ ids (1..56)")
        raise_if_cancelled(cancel)

        parts = None
        parts_path = folder / PARTS_FILE
        if parts_path.is_file():
            notify_progress(progress, 0.6, f"reading {parts_path.name}")
            raw, affine, _ = read_label_nifti(parts_path)
            parts, note = fit_to_ct_grid(raw, affine, ct.shape, ct.affine, parts_path, ct.source_path)
            if note:
                notes.append(note)
            wrong = sorted(set(np.unique(parts).tolist()) - {0} - {lab.id for lab in table.substructures()})
            if wrong:
                raise InputError(parts_path, f"ids {wrong[:10]} are not substructure ids (101..143)")
        notify_progress(progress, 1.0, "cohort masks read")
        return OrganMasks(
            organs=np.ascontiguousarray(organs, dtype=np.uint8), affine=np.array(ct.affine, dtype=np.float64),
            backend=self.name, parts=None if parts is None else np.ascontiguousarray(parts, dtype=np.uint8),
            details={"case_dir": str(folder), "warnings": notes},
        )
