"""Backend: organ masks computed earlier and saved as a NIfTI label file.

Accepts TotalSegmentator's multilabel output of task 'total' (ids 1..117) or the merged scheme
(ids 1..56, optionally with substructure ids >= 100). The scheme is read from the file's label-name
extension when present, else from its values, or given explicitly with ``scheme=``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.ct_volume import CTVolume
from inference.labels import merged_labels, totalseg_names, totalseg_to_merged
from inference.segmentation.expert import ProgressFn, notify_progress, raise_if_cancelled
from inference.segmentation.grid_check import fit_to_ct_grid
from inference.segmentation.label_files import header_label_names, read_label_nifti
from inference.segmentation.organ_masks import OrganMasks

SCHEMES = ("auto", "totalseg", "merged")
# Ids 1..22 name the same structures in both schemes (spleen .. prostate), so a file using only
# those needs no decision.
_SHARED_IDS = 22
# Voxels under ids that only TotalSegmentator has (vertebrae, ribs, muscles: 57..100) must hold at
# least this share of the labelled voxels to read a file as TotalSegmentator output; below it they
# are strays in a merged-scheme file (one stray id used to switch the whole file's meaning).
_TOTALSEG_EVIDENCE_SHARE = 0.01
# Dropping more than this share of labelled voxels as unknown ids is worth a loud warning.
_LARGE_LOSS_SHARE = 0.05


def _merged_ids() -> set[int]:
    return {lab.id for lab in merged_labels()}


def _totalseg_ids() -> set[int]:
    return set(totalseg_names())


def _voxel_text(counts: dict[int, int], ids) -> str:
    shown = sorted(ids)[:12]
    more = f" and {len(ids) - 12} more" if len(ids) > 12 else ""
    return ", ".join(f"{i} ({counts[i]} voxels)" for i in shown) + more


@dataclass(frozen=True)
class SchemeDecision:
    scheme: str  # "totalseg" | "merged"
    reason: str  # how it was decided, in words (recorded with the masks)
    warning: str | None = None  # when the decision is a guess the user should check


def detect_scheme(counts: dict[int, int], names: dict[int, str]) -> SchemeDecision:
    """Decide 'totalseg' or 'merged' from a file's header label names, else its ids' voxel counts.

    counts: label id -> voxel count (0 excluded or ignored)."""
    counts = {int(i): int(n) for i, n in counts.items() if i and n}
    if names:
        ts, merged = totalseg_names(), {lab.id: lab.name for lab in merged_labels()}
        ts_hits = sum(ts.get(k) == v for k, v in names.items())
        merged_hits = sum(merged.get(k) == v for k, v in names.items())
        if max(ts_hits, merged_hits) >= 0.9 * len(names):
            scheme = "totalseg" if ts_hits >= merged_hits else "merged"
            return SchemeDecision(scheme, f"the file's label names match the {scheme} scheme")
    labelled = sum(counts.values())
    only_ts = {i for i in counts if i in _totalseg_ids() and i not in _merged_ids()}
    only_ts_voxels = sum(counts[i] for i in only_ts)
    outside_both = {i for i in counts if i not in _totalseg_ids() and i not in _merged_ids()}
    only_merged = {i for i in counts if i in _merged_ids() and i not in _totalseg_ids()}
    if not only_ts:
        if not counts or max(counts) <= _SHARED_IDS or only_merged:
            return SchemeDecision("merged", "every id is a merged-scheme id" + (
                " (substructure ids >= 118 only exist there)" if only_merged else ""))
        return SchemeDecision("merged", "every id is a merged-scheme id (no label-name header)",
                              "read as the merged scheme (no label-name header; every id is valid there); "
                              "pass --mask-scheme totalseg if this is TotalSegmentator output")
    if only_ts_voxels >= _TOTALSEG_EVIDENCE_SHARE * labelled and not only_merged:
        return SchemeDecision("totalseg", f"ids only TotalSegmentator has ({_voxel_text(counts, only_ts)}) hold "
                              f"{only_ts_voxels / labelled:.0%} of the labelled voxels")
    if not only_merged:  # a few voxels under TotalSegmentator-only ids: strays in a merged file
        return SchemeDecision("merged", f"ids only TotalSegmentator has hold just {only_ts_voxels / labelled:.1%} "
                              "of the labelled voxels (strays)",
                              "read as the merged scheme (the ids only TotalSegmentator has are too few to be its "
                              "output); pass --mask-scheme totalseg if this is TotalSegmentator output")
    # Mixed evidence: keep the scheme that explains more voxels and say what was not.
    unknown_merged = only_ts_voxels + sum(counts[i] for i in outside_both)
    unknown_ts = sum(counts[i] for i in only_merged | outside_both)
    scheme = "totalseg" if unknown_ts < unknown_merged else "merged"
    other = "merged" if scheme == "totalseg" else "totalseg"
    return SchemeDecision(scheme, f"the {scheme} scheme explains more labelled voxels than the {other} one",
                          f"read as the {scheme} scheme, which explains more of its voxels; if that is wrong, "
                          f"pass --mask-scheme {other}")


def to_merged(labels: np.ndarray, scheme: str, path: Path, counts: dict[int, int] | None = None
              ) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(organs uint8 merged ids, parts uint8 or None, warnings) from a label array in ``scheme``.

    Ids that ``scheme`` does not define are set to background and reported with their voxel
    counts; losing a large share of voxels, or every organ, is said loudly."""
    if counts is None:
        counts = _counts(labels)
    known = _totalseg_ids() if scheme == "totalseg" else _merged_ids()
    unknown = {i for i in counts if i and i not in known}
    warnings = []
    labelled = sum(n for i, n in counts.items() if i)
    if unknown:
        lost = sum(counts[i] for i in unknown)
        share = lost / max(labelled, 1)
        what = "TotalSegmentator 'total' class (1..117)" if scheme == "totalseg" else "merged-scheme id"
        warnings.append(f"{path}: ids {_voxel_text(counts, unknown)} are not a {what}; they were left out "
                        f"({share:.1%} of the labelled voxels)")
        if share > _LARGE_LOSS_SHARE:
            warnings.append(f"{path}: {share:.0%} of the labelled voxels have ids the {scheme} scheme does not know: "
                            "is this the right label scheme (--mask-scheme) and the right file?")
        lut = np.arange(256, dtype=np.uint8)
        lut[sorted(unknown)] = 0
        labels = lut[labels]
    if scheme == "totalseg":
        return totalseg_to_merged(labels), None, warnings
    if int(labels.max(initial=0)) < 100:
        return labels, None, warnings
    # Substructures stored in the same file: the voxel belongs to the parent organ as well.
    parent = np.arange(256, dtype=np.uint8)
    for lab in merged_labels().substructures():
        parent[lab.id] = lab.parent or 0
    parts = np.where(labels >= 100, labels, 0).astype(np.uint8)
    return parent[labels], parts, warnings


def _counts(labels: np.ndarray) -> dict[int, int]:
    bins = np.bincount(labels.ravel(), minlength=256)
    return {int(i): int(bins[i]) for i in np.flatnonzero(bins)}


def coverage_warnings(path: Path, organs: np.ndarray, raw_labelled: int) -> list[str]:
    """An empty mask, or one whose ids map to no organ, is worth saying before any analysis."""
    if raw_labelled == 0:
        return [f"{path}: the mask is empty (every voxel is background): the analysis sees no organ"]
    if not organs.any():
        return [f"{path}: none of the mask's ids maps to an organ: the analysis sees no organ"]
    return []


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
        notify_progress(progress, 0.0, f"reading {self.path.name}")
        raw, affine, img = read_label_nifti(self.path, expect_shape=ct.shape, ct_path=ct.source_path)
        raise_if_cancelled(cancel)
        labels, note = fit_to_ct_grid(raw, affine, ct.shape, ct.affine, self.path, ct.source_path)
        warnings = [note] if note else []
        counts = _counts(labels)
        if self.scheme == "auto":
            decision = detect_scheme(counts, header_label_names(img))
        else:
            decision = SchemeDecision(self.scheme, "chosen by the user")
        if decision.warning:
            warnings.append(f"{self.path}: {decision.warning}")
        organs, parts, lost = to_merged(labels, decision.scheme, self.path, counts)
        warnings += lost
        warnings += coverage_warnings(self.path, organs, sum(n for i, n in counts.items() if i))
        notify_progress(progress, 0.7, "checking substructures")
        if self.parts_path is not None:
            raw_parts, parts_affine, _ = read_label_nifti(self.parts_path, expect_shape=ct.shape, ct_path=ct.source_path)
            parts, note = fit_to_ct_grid(raw_parts, parts_affine, ct.shape, ct.affine, self.parts_path,
                                         ct.source_path)
            if note:
                warnings.append(note)
            part_ids = {lab.id for lab in merged_labels().substructures()}
            part_counts = _counts(parts)
            stray = {i for i in part_counts if i and i not in part_ids}
            if stray:
                warnings.append(f"{self.parts_path}: ids {_voxel_text(part_counts, stray)} are not substructure "
                                "ids (101..143); they were left out")
                lut = np.arange(256, dtype=np.uint8)
                lut[sorted(stray)] = 0
                parts = lut[parts]
        notify_progress(progress, 1.0, "organ masks read")
        return OrganMasks(
            organs=np.ascontiguousarray(organs, dtype=np.uint8), affine=np.array(ct.affine, dtype=np.float64),
            backend=f"precomputed:{self.path.name}",
            parts=None if parts is None else np.ascontiguousarray(parts, dtype=np.uint8),
            details={"source": str(self.path), "parts_source": str(self.parts_path) if self.parts_path else None,
                     "scheme": decision.scheme, "scheme_reason": decision.reason, "warnings": warnings},
        )
