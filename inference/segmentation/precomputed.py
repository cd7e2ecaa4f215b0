"""Backend: organ masks computed earlier and saved as a NIfTI label file.

Accepts TotalSegmentator's multilabel output of task 'total' (ids 1..117) or the merged scheme
(ids 1..56, optionally with substructure ids >= 100). The scheme is read from the file's label-name
extension when present, else from its values, or given explicitly with ``scheme=``.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from inference.ct_volume import CTVolume
from inference.errors import InputError
from inference.labels import merged_labels, totalseg_names, totalseg_to_merged
from inference.segmentation.expert import ProgressFn, raise_if_cancelled, report
from inference.segmentation.grid_check import fit_to_ct_grid
from inference.segmentation.label_files import header_label_names, read_label_nifti
from inference.segmentation.organ_masks import OrganMasks

SCHEMES = ("auto", "totalseg", "merged")
# Ids 1..22 name the same structures in both schemes (spleen .. prostate), so a file using only
# those needs no decision.
_SHARED_IDS = 22


def _merged_max_id() -> int:
    return max(lab.id for lab in merged_labels().organs())


def detect_scheme(ids: set[int], names: dict[int, str]) -> tuple[str, str | None]:
    """Decide 'totalseg' or 'merged' for a file's label ids and header names.

    Returns (scheme, warning or None): a warning when the decision is a guess.
    """
    if names:
        ts, merged = totalseg_names(), {lab.id: lab.name for lab in merged_labels()}
        ts_hits = sum(ts.get(k) == v for k, v in names.items())
        merged_hits = sum(merged.get(k) == v for k, v in names.items())
        if max(ts_hits, merged_hits) >= 0.9 * len(names):
            return ("totalseg" if ts_hits >= merged_hits else "merged"), None
    present = {i for i in ids if i}
    merged_ok = set(range(1, _merged_max_id() + 1)) | {lab.id for lab in merged_labels().substructures()}
    if not present <= merged_ok:
        return "totalseg", None  # e.g. autochthon 86/87, ribs 109/110: only TotalSegmentator has them
    if not present or max(present) <= _SHARED_IDS:
        return "merged", None  # same meaning in both schemes
    return "merged", ("read as the merged scheme (no label-name header; every id is valid there); "
                      "pass scheme='totalseg' if this is TotalSegmentator output")


def to_merged(labels: np.ndarray, scheme: str, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(organs uint8 merged ids, parts uint8 or None) from a label array in ``scheme``."""
    if scheme == "totalseg":
        if int(labels.max(initial=0)) > max(totalseg_names()):
            raise InputError(path, f"id {int(labels.max())} is not a TotalSegmentator 'total' class (1..117)")
        return totalseg_to_merged(labels), None
    table = merged_labels()
    wrong = sorted(set(np.unique(labels).tolist()) - {0} - {lab.id for lab in table})
    if wrong:
        raise InputError(path, f"ids {wrong[:10]} are not in the merged scheme "
                               f"(1..{_merged_max_id()} and substructures)")
    if int(labels.max(initial=0)) < 100:
        return labels, None
    # Substructures stored in the same file: the voxel belongs to the parent organ as well.
    parent = np.arange(256, dtype=np.uint8)
    for lab in table.substructures():
        parent[lab.id] = lab.parent or 0
    parts = np.where(labels >= 100, labels, 0).astype(np.uint8)
    return parent[labels], parts


class PrecomputedExpert:
    """Masks read from ``path`` (and optionally ``parts_path``), checked against the CT grid."""

    name = "precomputed"

    def __init__(self, path: str | Path, scheme: str = "auto", parts_path: str | Path | None = None):
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        self.path = Path(path)
        self.scheme = scheme
        self.parts_path = Path(parts_path) if parts_path else None

    def cache_identity(self) -> dict[str, Any]:
        def stamp(p: Path | None) -> list[Any] | None:
            if p is None or not p.exists():
                return None
            st = p.stat()
            return [str(p.resolve()), st.st_size, st.st_mtime_ns]

        return {"backend": self.name, "scheme": self.scheme, "file": stamp(self.path),
                "parts": stamp(self.parts_path)}

    def segment(self, ct: CTVolume, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> OrganMasks:
        report(progress, 0.0, f"reading {self.path.name}")
        raw, affine, img = read_label_nifti(self.path)
        raise_if_cancelled(cancel)
        labels, note = fit_to_ct_grid(raw, affine, ct.shape, ct.affine, self.path, ct.source_path)
        warnings = [note] if note else []
        scheme, guess = (self.scheme, None)
        if scheme == "auto":
            scheme, guess = detect_scheme(set(np.unique(labels).tolist()), header_label_names(img))
        if guess:
            warnings.append(f"{self.path}: {guess}")
        organs, parts = to_merged(labels, scheme, self.path)
        report(progress, 0.7, "checking substructures")
        if self.parts_path is not None:
            raw_parts, parts_affine, _ = read_label_nifti(self.parts_path)
            parts, note = fit_to_ct_grid(raw_parts, parts_affine, ct.shape, ct.affine, self.parts_path,
                                         ct.source_path)
            if note:
                warnings.append(note)
            stray = sorted(set(np.unique(parts).tolist()) - {0} - {lab.id for lab in merged_labels().substructures()})
            if stray:
                raise InputError(self.parts_path, f"ids {stray[:10]} are not substructure ids (101..143)")
        report(progress, 1.0, "organ masks read")
        return OrganMasks(
            organs=np.ascontiguousarray(organs, dtype=np.uint8), affine=np.array(ct.affine, dtype=np.float64),
            backend=f"precomputed:{self.path.name}",
            parts=None if parts is None else np.ascontiguousarray(parts, dtype=np.uint8),
            details={"source": str(self.path), "parts_source": str(self.parts_path) if self.parts_path else None,
                     "scheme": scheme, "warnings": warnings},
        )
