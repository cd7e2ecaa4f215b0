"""DICOM SEG of the organ masks (highdicom), readable by PACS, 3D Slicer and OHIF.

BINARY segmentation, one segment per label present, each with SNOMED CT category/type codes
(organ_codes.py), a laterality modifier where the label has a side, the label colour as CIELab,
a tracking id (the label name) and UID, and the segmentation backend as the algorithm. Frames
reference the source CT slices by SOP instance UID (dicom_source.source_headers).

Organs and substructures overlap (pancreas_head lies inside pancreas), while each label map on
its own does not; so the organs go into one SEG instance and, when the case has any, the
substructures into a second instance of the same SEG series. Each is built from a label map
(frames x rows x columns) rather than a stacked one-plane-per-segment array, which keeps a
512 x 512 x 400 study with 50 organs at a few hundred MB instead of gigabytes.
"""
from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from inference.report.dicom_source import frames_of
from inference.report.organ_codes import segment_codes
from inference.segmentation.organ_masks import OrganMasks

MANUFACTURER = "TumorChain Workstation"
SEG_SERIES_NUMBER = 901


@dataclass
class SegObject:
    """One SEG instance: the dataset and label id -> segment number."""

    dataset: hd.seg.Segmentation
    segments: dict[int, int]
    kind: str  # "organs" | "parts"


def build_segmentations(masks: OrganMasks, sources: list[Dataset], *, software_version: str,
                        series_uid: str | None = None, algorithm_version: str = "") -> list[SegObject]:
    """The SEG instances of ``masks`` (organs; parts when present), one series.

    sources: header datasets of the CT slices in k order (len == masks.shape[2]).
    """
    if len(sources) != masks.shape[2]:
        raise ValueError(f"{len(sources)} source slices for masks with {masks.shape[2]} slices")
    series_uid = series_uid or generate_uid()
    out = []
    layers = [("organs", masks.organs)]
    if masks.parts is not None and masks.parts.any():
        layers.append(("parts", masks.parts))
    for number, (kind, labels) in enumerate(layers, start=1):
        present = [int(i) for i in np.flatnonzero(np.bincount(labels.ravel(), minlength=256)) if i]
        present = [i for i in present if i in masks.table]
        if not present:
            continue
        lut = np.zeros(256, dtype=np.uint8)
        lut[present] = np.arange(1, len(present) + 1)
        descriptions = [_description(n, lab, masks, algorithm_version) for n, lab in enumerate(present, start=1)]
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=frames_of(lut[labels]),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=series_uid,
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=generate_uid(),
            instance_number=number,
            manufacturer=MANUFACTURER,
            manufacturer_model_name="TumorChain",
            software_versions=software_version or "unknown",
            device_serial_number="none",
            content_label="ORGANS" if kind == "organs" else "ORGAN_PARTS",
            content_description=f"TumorChain {kind} masks ({masks.backend})"[:64],
            series_description="TumorChain organ segmentation",
            omit_empty_frames=True,
        )
        out.append(SegObject(seg, {lab: n for n, lab in enumerate(present, start=1)}, kind))
    return out


def _description(number: int, label_id: int, masks: OrganMasks, version: str) -> hd.seg.SegmentDescription:
    lab = masks.table.by_id(label_id)
    sc = segment_codes(label_id, masks.table)
    backend = masks.backend.split(":")[0] or "segmentation"
    desc = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=lab.display[:64],
        segmented_property_category=sc.category,
        segmented_property_type=sc.type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=backend[:64], family=codes.cid7162.ArtificialIntelligence, version=version or "unknown"),
        tracking_id=lab.name,
        tracking_uid=generate_uid(),
        display_color=hd.color.CIELabColor.from_rgb(*lab.colour),
    )
    if sc.modifier is not None:
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            hd.sr.CodedConcept(sc.modifier.value, sc.modifier.scheme_designator, sc.modifier.meaning)]
    return desc
