"""Grounding a case's findings in its masks.

- A lesion's organ must have a mask in the case: a metastasis or incidental lesion in an organ without
  one is dropped (recorded); a primary organ without one drops the case (its chains would teach the
  model to look at tokens that do not exist, or call a diseased study normal).
- The sub-region comes from the report; where the site gives a sub-region (parts) mask it must hold
  that sub-region, else the sub-region is dropped. Where the site gives a lesion mask, the sub-region
  holding most of the lesion's voxels is the mask's: it fills a sub-region the report leaves out, and
  one that contradicts the report drops the case. With the CT, the lesion mask also gives the measured
  attenuation the density chains quote.
- Organ-level labels for the auxiliary classifier (``organ_abnormal``) follow from the findings:
  1 for an organ or sub-region holding a lesion, 0 for the other organs and sub-regions in the masks.

Without masks (segmentation during training) every organ counts as present and no sub-region does
(TotalSegmentator's 'total' task has none), as the training case cache will see it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.labels import merged_labels
from inference.segmentation.label_files import header_label_names, read_label_nifti
from inference.segmentation.precomputed import detect_scheme, to_merged

from .findings import CaseFindings


class GroundingError(ValueError):
    """The case cannot be grounded (reported with its CSV line and skipped)."""


@dataclass
class CaseMasks:
    organs: np.ndarray | None  # merged organ ids; None = segmented during training
    parts: np.ndarray | None = None  # merged sub-region ids (>= 100)
    lesions: np.ndarray | None = None  # any non-zero voxel is lesion
    hu: np.ndarray | None = None


def load_masks(masks: Path | None, parts: Path | None = None, lesions: Path | None = None,
               shape: tuple[int, int, int] | None = None, hu: np.ndarray | None = None) -> CaseMasks:
    """Read the label files (merged or TotalSegmentator scheme; sub-regions in the organs file or a
    separate parts file) on the CT's grid; InputError names a bad file."""
    if masks is None:
        return CaseMasks(None, hu=hu)
    labels, _, img = read_label_nifti(masks, expect_shape=shape)
    ids, n = np.unique(labels, return_counts=True)
    scheme = detect_scheme(dict(zip(ids.tolist(), n.tolist())), header_label_names(img)).scheme
    organs, in_file_parts, _ = to_merged(labels, scheme, Path(masks))
    part_map = read_label_nifti(parts, expect_shape=shape)[0] if parts is not None else in_file_parts
    lesion_map = read_label_nifti(lesions, expect_shape=shape)[0] if lesions is not None else None
    return CaseMasks(organs, part_map, lesion_map, hu)


def present(masks: CaseMasks) -> tuple[list[str], list[str]]:
    """(organ names, sub-region names) with voxels, in label order."""
    table = merged_labels()
    if masks.organs is None:
        return [lab.name for lab in table.organs()], []
    organ_ids = set(np.unique(masks.organs).tolist()) - {0}
    part_ids = set(np.unique(masks.parts).tolist()) - {0} if masks.parts is not None else set()
    organs = [lab.name for lab in table.organs() if lab.id in organ_ids]
    parts = [lab.name for lab in table.substructures() if lab.id in part_ids]
    return organs, parts


def ground(f: CaseFindings, masks: CaseMasks) -> CaseFindings:
    """Check and complete ``f`` against the masks (in place); GroundingError when the case must be skipped."""
    f.organs_present, f.parts_present = present(masks)
    organs = set(f.organs_present)
    if f.primary_organ and f.lesions and f.primary_organ not in organs:
        raise GroundingError(f"the {f.primary_organ} (where the report puts the lesion) has no mask in this case")
    for group in (f.metastases, f.incidental):
        for les in list(group):
            if les.organ not in organs:
                group.remove(les)
                f.drop(f"{les.kind} lesion in the {les.organ}", "organ without mask")
    if masks.parts is not None:
        for les in f.lesions + f.metastases + f.incidental:
            if les.substructure and les.substructure not in f.parts_present:
                f.drop(f"sub-region {les.substructure}", "sub-region without mask")
                les.substructure = None
                les.sources.pop("substructure", None)
    if masks.lesions is not None and masks.organs is not None and f.lesions:
        _from_lesion_mask(f, masks)
    table = merged_labels()
    abnormal = {les.organ for les in f.lesions + f.metastases + f.incidental}
    abnormal |= {les.substructure for les in f.lesions + f.metastases + f.incidental if les.substructure}
    f.organ_abnormal = {n: int(n in abnormal) for n in f.organs_present + f.parts_present if n in table}
    return f


OVERLAP_SHARE = 0.1


def _from_lesion_mask(f: CaseFindings, masks: CaseMasks) -> None:
    """Each connected lesion component inside the primary organ sits in the sub-region at its centroid (the
    cohort's rule; else the one holding most of its voxels). The report's sub-region must hold one of them;
    without one, the largest component's is taken."""
    from scipy import ndimage

    table = merged_labels()
    les = f.largest_primary()
    organ_id = table.by_name(f.primary_organ).id
    components, n = ndimage.label((masks.lesions > 0) & (masks.organs == organ_id))
    if not n:
        f.drop("lesion mask", f"no lesion voxel inside the {f.primary_organ}")
        return
    sizes = np.bincount(components.ravel())[1:]
    order = [1 + int(k) for k in np.argsort(-sizes)]  # component labels, largest first
    inside = components == order[0]
    if masks.parts is not None:
        where = {k: _part_of(components == k, masks.parts) for k in order}
        if les.substructure:
            part_id = table.by_name(les.substructure).id if les.substructure in table else None
            # a lesion across a boundary ("segment II/III") agrees with either side: the report's sub-region
            # must hold its centroid or at least OVERLAP_SHARE of its voxels; a contradiction holds neither
            hits = [k for k in order if where[k] == les.substructure or (
                part_id is not None and np.mean(masks.parts[components == k] == part_id) >= OVERLAP_SHARE)]
            if not hits:
                found = sorted({p for p in where.values() if p})
                raise GroundingError(f"the report puts the lesion in {les.substructure}, the lesion mask in "
                                     f"{', '.join(found) or 'no sub-region'}")
            inside = components == hits[0]
        elif where[order[0]]:
            les.substructure = where[order[0]]
            les.sources["substructure"] = "mask"
    if masks.hu is not None:
        hu, ref = _measured_hu(masks, inside, organ_id)
        contradicts = hu is not None and ((les.density == "hypodense" and hu >= ref) or
                                          (les.density == "hyperdense" and hu <= ref))
        if contradicts:
            f.drop(f"measured attenuation {hu:.0f} HU against {ref:.0f} HU", f"contradicts the reported {les.density}")
        elif hu is not None:
            les.attenuation_hu, les.reference_hu = hu, ref
            les.sources["attenuation_hu"] = "mask"


def _part_of(component: np.ndarray, parts: np.ndarray) -> str | None:
    centre = tuple(int(round(c)) for c in np.argwhere(component).mean(axis=0))
    part_id = int(parts[centre])
    if not part_id:
        ids, counts = np.unique(parts[component], return_counts=True)
        votes = {int(i): int(c) for i, c in zip(ids, counts) if i}
        part_id = max(votes, key=votes.get) if votes else 0
    return merged_labels().by_id(part_id).name if part_id else None


def _measured_hu(masks: CaseMasks, inside: np.ndarray, organ_id: int) -> tuple[float | None, float | None]:
    """Median HU of the lesion's interior (eroded once: edge voxels blur into the surroundings) against a
    shell of the organ around it (3 voxels; gas and fat below -50 HU left out: a hollow organ's mask
    holds its lumen)."""
    from scipy import ndimage

    interior = ndimage.binary_erosion(inside)
    core = masks.hu[interior] if interior.any() else masks.hu[inside]
    shell = ndimage.binary_dilation(masks.lesions > 0, iterations=3) & (masks.organs == organ_id) & \
        (masks.lesions == 0) & (masks.hu > -50)
    if shell.sum() < 10:
        shell = (masks.organs == organ_id) & (masks.lesions == 0) & (masks.hu > -50)
    if not shell.any():
        return None, None
    return float(np.median(core)), float(np.median(masks.hu[shell]))
