"""TID 1500 Measurement Report (highdicom Comprehensive 3D SR), the SR that OHIF and most viewers
read, beside the TID 2000 text report (dicom_sr.py).

One measurement group (TID 1411, volumetric ROI) per organ or sub-region an IIR round examined
(for a round without organ tokens, the organs its key image outlines); the latest round wins:

    CONTAINER Imaging Measurement Report (DCM 126000), TID 1500
      observers (the model as device, the reviewer), procedure: CT unspecified body region
      CONTAINER Imaging Measurements
        CONTAINER Measurement Group
          Tracking Identifier "<organ> (round r)" + Tracking UID
          Referenced Segment -> SEG instance + segment number, the CT slices the segment covers
          Finding = the organ (SNOMED CT); Finding Site = organ, and the sub-region when it is one
          Volume (ml)                          voxel count x voxel volume of the mask
          Long axis (mm)                       the mask's largest 3D extent (convex-hull diameter)
          Diameter (mm), method "stated in the AI text"   the lesion size the round's text states
          AI probability of abnormality (1)    the auxiliary classifier, when the round had tokens
          Radiologist decision = Agreed | Edited | Rejected | Pending   (of that round)

The decision and the AI-stated size have no code in DICOM's own resources; they use the local
coding scheme 99TUMORCHAIN (PS3.16 8.1 permits private schemes with the "99" prefix), declared in
the object's CodingSchemeIdentificationSequence.
"""
from __future__ import annotations

import re

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from inference.report.dicom_seg import MANUFACTURER, SegObject
from inference.report.dicom_sr import _observers, _pn
from inference.report.organ_codes import segment_codes
from inference.report.traceable_report import TraceableReport
from inference.segmentation.organ_masks import OrganMasks

SR_TID1500_SERIES_NUMBER = 903
SCHEME = "99TUMORCHAIN"
DECISION = Code("RADDECISION", SCHEME, "Radiologist decision")
DECISION_VALUES = {
    "agreed": Code("AGREED", SCHEME, "Agreed"), "edited": Code("EDITED", SCHEME, "Edited"),
    "rejected": Code("REJECTED", SCHEME, "Rejected"), "pending": Code("PENDING", SCHEME, "Pending"),
}
STATED_IN_TEXT = Code("AITEXT", SCHEME, "Stated in the AI text")
P_ABNORMAL = Code("PABNORMAL", SCHEME, "AI probability of abnormality")
ML = Code("ml", "UCUM", "milliliter")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(mm|cm)\b", re.IGNORECASE)


def stated_size_mm(text: str) -> float | None:
    """The largest size a text states ('28 mm', '3.5 cm'), in mm; None when it states none."""
    sizes = [float(v) * (10.0 if unit.lower() == "cm" else 1.0) for v, unit in _SIZE.findall(text or "")]
    return max(sizes) if sizes else None


def longest_diameter_mm(mask: np.ndarray, affine: np.ndarray) -> float:
    """The largest distance between two voxel corners of ``mask``, in mm (3D Feret diameter)."""
    from scipy import ndimage
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    if not mask.any():
        return 0.0
    edge = mask & ~ndimage.binary_erosion(mask)
    ijk = np.argwhere(edge).astype(np.float64)
    corners = (ijk[:, None, :] + np.array(np.meshgrid([-.5, .5], [-.5, .5], [-.5, .5], indexing="ij")).reshape(3, -1).T[None]).reshape(-1, 3)
    world = corners @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    try:
        pts = world[ConvexHull(world).vertices]
    except Exception:  # flat or tiny masks: every corner is a candidate
        pts = np.unique(world, axis=0)
    return float(pdist(pts).max()) if len(pts) > 1 else 0.0


def build_measurement_report(report: TraceableReport, masks: OrganMasks, sources: list[Dataset], segs: list[SegObject],
                             *, software_version: str, organization: str = "") -> hd.sr.Comprehensive3DSR:
    """The TID 1500 SR of ``report``: ``sources`` CT headers in k order, ``segs`` the SEG instances."""
    seg_of = {lid: (s.dataset, n) for s in segs for lid, n in s.segments.items()}
    latest: dict[int, object] = {}  # mask label -> the last round that examined it
    for r in report.rounds:
        for lid in [o.mask_label for o in r.organs] or r.roi_labels:
            latest[lid] = r
    groups = []
    for lid, rnd in latest.items():
        if lid not in seg_of:
            continue
        groups.append(_group(lid, rnd, masks, sources, seg_of[lid]))
    content = hd.sr.MeasurementReport(
        observation_context=_observers(report),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups or None,
        title=codes.DCM.ImagingMeasurementReport,
    )
    signed = report.signed is not None
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(sources) + [s.dataset for s in segs],
        content=content[0],
        series_instance_uid=generate_uid(),
        series_number=SR_TID1500_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=signed, is_final=signed, is_verified=signed,
        verifying_observer_name=_pn(report.signed["reviewer"]) if signed else None,
        verifying_organization=(organization or "not recorded") if signed else None,
        series_description="TumorChain measurements (TID 1500)",
        software_versions=software_version or "unknown",
    )
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "TumorChain Workstation local codes"
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def _group(lid: int, rnd, masks: OrganMasks, sources: list[Dataset], seg_ref) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    seg_ds, number = seg_ref
    lab = masks.table.by_id(lid)
    organ_id = lab.parent if lab.parent is not None else lid
    organ_codes = segment_codes(organ_id, masks.table)
    mask = masks.mask(lid)
    slices = np.flatnonzero(mask.any(axis=(0, 1)))
    source_images = [hd.sr.SourceImageForSegmentation(sources[k].SOPClassUID, sources[k].SOPInstanceUID)
                     for k in slices]
    sites = [hd.sr.FindingSite(organ_codes.type, laterality=organ_codes.modifier)]
    if lab.parent is not None:
        part = segment_codes(lid, masks.table)
        sites.append(hd.sr.FindingSite(part.type, laterality=part.modifier))
    voxel_ml = abs(float(np.linalg.det(masks.affine[:3, :3]))) / 1000.0
    measurements = [
        hd.sr.Measurement(name=codes.SCT.Volume, value=round(float(mask.sum()) * voxel_ml, 3), unit=ML),
        hd.sr.Measurement(name=codes.SCT.LongAxis, value=round(longest_diameter_mm(mask, masks.affine), 2),
                          unit=codes.UCUM.Millimeter),
    ]
    if (size := stated_size_mm(rnd.ai_text)) is not None:
        measurements.append(hd.sr.Measurement(name=codes.SCT.Diameter, value=size, unit=codes.UCUM.Millimeter,
                                              method=STATED_IN_TEXT))
    prob = next((o.abnormal_prob for o in rnd.organs if o.mask_label == lid), None)
    if prob is not None:
        measurements.append(hd.sr.Measurement(name=P_ABNORMAL, value=round(float(prob), 4), unit=codes.UCUM.NoUnits))
    decision = rnd.decision.decision
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{lab.display} (round {rnd.index})"[:64]),
        referenced_segment=hd.sr.ReferencedSegment(seg_ds.SOPClassUID, seg_ds.SOPInstanceUID, number,
                                                   source_images=source_images),
        finding_type=organ_codes.type,
        finding_sites=sites,
        measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(DECISION, DECISION_VALUES.get(decision, DECISION_VALUES["pending"]))],
    )
