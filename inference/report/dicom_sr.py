"""DICOM Structured Report of the traceable report (highdicom Comprehensive 3D SR).

A text report after TID 2000 (Basic Diagnostic Imaging Report), because what TumorChain says
is prose, not measurements:

    CONTAINER Diagnostic Imaging Report (LN 18748-4), TID 2000
      HAS CONCEPT MOD  Language = English
      HAS OBS CONTEXT  device observer (the model), person observer (the reviewer, if named)
      CONTAINS CONTAINER Request (LN 55115-0): TEXT Request = the question
      CONTAINS CONTAINER Findings (LN 59776-5)
        TEXT Finding (DCM 121071) = "Round r (AI): <text>"          one per IIR round
          HAS PROPERTIES TEXT Comment = the radiologist's decision, edited text, amendments
          INFERRED FROM IMAGE Referenced Segment (DCM 121191) -> SEG instance + segment number
          INFERRED FROM IMAGE Illustration of ROI (DCM 121200) -> the CT slice of the key image
      CONTAINS CONTAINER Conclusions (LN 55110-1)
        TEXT Conclusion (DCM 121077) = the AI answer, with its decision and the segments of
        every round behind it

Completion/verification flags follow the review: a signed review gives a COMPLETE, VERIFIED
report with the reviewer as verifying observer.
"""
from __future__ import annotations

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from inference.report.dicom_seg import MANUFACTURER, SegObject
from inference.report.traceable_report import TraceableReport

SR_SERIES_NUMBER = 902
_REPORT = Code("18748-4", "LN", "Diagnostic Imaging Report")
_REQUEST = Code("55115-0", "LN", "Request")
_FINDINGS = Code("59776-5", "LN", "Findings")
_CONCLUSIONS = Code("55110-1", "LN", "Conclusions")
_TEXT_MAX = 65000  # stay well inside UT; model text is never near it


def build_sr(report: TraceableReport, sources: list[Dataset], segs: list[SegObject], *,
             software_version: str, organization: str = "") -> hd.sr.Comprehensive3DSR:
    """The SR of ``report``; ``sources``: CT slice headers (k order), ``segs``: the SEG instances."""
    seg_of = {}  # mask label -> (SEG dataset, segment number)
    for s in segs:
        for lid, n in s.segments.items():
            seg_of[lid] = (s.dataset, n)

    root = hd.sr.ContainerContentItem(name=_REPORT, template_id="2000")
    content = list(hd.sr.LanguageOfContentItemAndDescendants(hd.sr.CodedConcept("en", "RFC5646", "English")))
    content += list(_observers(report))
    content.append(_section(_REQUEST, [_text(_REQUEST, report.question or "(no question)")]))

    findings = []
    for r in report.rounds:
        item = _text(codes.DCM.Finding, f"Round {r.index} (AI): {r.ai_text}")
        children = [_text(codes.DCM.Comment, c, "HAS PROPERTIES") for c in _decision_lines(r, report, f"round-{r.index}")]
        children += _segment_refs(r.roi_labels, seg_of)
        if r.key_image.sop_instance_uid:
            children.append(hd.sr.ImageContentItem(
                name=codes.DCM.IllustrationOfROI, referenced_sop_class_uid=sources[0].SOPClassUID,
                referenced_sop_instance_uid=r.key_image.sop_instance_uid, relationship_type="INFERRED FROM"))
        item.ContentSequence = children
        findings.append(item)
    content.append(_section(_FINDINGS, findings))

    c = report.conclusion
    concl = _text(codes.DCM.Conclusion, f"AI answer (from round {c.from_round}): {c.answer or '(none found)'}")
    children = [_text(codes.DCM.Comment, line, "HAS PROPERTIES") for line in _decision_lines(c, report, "conclusion")]
    children.append(_text(codes.DCM.Comment, "Rests on rounds " + ", ".join(map(str, c.chain)), "HAS PROPERTIES"))
    children += _segment_refs(list(dict.fromkeys(lid for _, lid in c.regions)), seg_of)
    concl.ContentSequence = children
    content.append(_section(_CONCLUSIONS, [concl]))
    root.ContentSequence = content

    signed = report.signed is not None
    return hd.sr.Comprehensive3DSR(
        evidence=list(sources) + [s.dataset for s in segs],
        content=root,
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=signed,
        is_final=signed,
        is_verified=signed,
        verifying_observer_name=_pn(report.signed["reviewer"]) if signed else None,
        verifying_organization=(organization or "not recorded") if signed else None,
        series_description="TumorChain traceable report",
        software_versions=software_version or "unknown",
    )


def _text(name: Code, value: str, relationship: str = "CONTAINS") -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value[:_TEXT_MAX], relationship_type=relationship)


def _section(title: Code, items: list) -> hd.sr.ContainerContentItem:
    c = hd.sr.ContainerContentItem(name=title, relationship_type="CONTAINS")
    c.ContentSequence = items
    return c


def _segment_refs(labels: list[int], seg_of: dict) -> list[hd.sr.ImageContentItem]:
    out = []
    for lid in labels:
        if lid in seg_of:
            ds, number = seg_of[lid]
            out.append(hd.sr.ImageContentItem(
                name=codes.DCM.ReferencedSegment, referenced_sop_class_uid=ds.SOPClassUID,
                referenced_sop_instance_uid=ds.SOPInstanceUID, referenced_segment_numbers=number,
                relationship_type="INFERRED FROM"))
    return out


def _decision_lines(entry, report: TraceableReport, key: str) -> list[str]:
    """The radiologist's current word on an item, then (when amended) the signed one and the amendments."""
    d = entry.decision
    lines = [f"Radiologist decision: {d.decision}" + (f" ({d.reviewer}, {d.at})" if d.reviewer else "")]
    if d.decision == "edited" and d.text:
        lines.append(f"Radiologist text: {d.text}")
    if d.comment:
        lines.append(f"Radiologist comment: {d.comment}")
    if (s := entry.signed_decision) is not None:
        lines.append(f"Signed decision: {s.decision}" + (f": {s.text}" if s.text else "")
                     + (f" (comment: {s.comment})" if s.comment else ""))
    lines += [f"Amendment {a['number']}: {a['decision']}" + (f": {a['text']}" if a["text"] else "")
              + (f" (reason: {a['reason']})" if a["reason"] else "") for a in report.amendments if a["item"] == key]
    return lines


def _observers(report: TraceableReport) -> hd.sr.ObservationContext:
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=(report.model.get("name") or "TumorChain")[:64],
            manufacturer_name=MANUFACTURER, model_name=(report.model.get("name") or "TumorChain")[:64]))
    person = None
    if report.reviewer:
        person = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=_pn(report.reviewer)))
    return hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device)


def _pn(name: str) -> str:
    """A free-form reviewer name as a DICOM person name ('Dr Ada Lovelace' -> 'Lovelace^Ada^^Dr')."""
    if "^" in name:
        return name[:64]
    parts = name.split()
    prefix = parts.pop(0) if parts and parts[0].rstrip(".").lower() in ("dr", "prof", "mr", "mrs", "ms") else ""
    if not parts:
        return name[:64]
    return "^".join([parts[-1], " ".join(parts[:-1]), "", prefix]).rstrip("^")[:64]
