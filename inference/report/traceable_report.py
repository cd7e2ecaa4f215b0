"""The traceable report: run record + review + key images, with every statement tied to the
rounds and image regions behind it.

Each round entry carries its AI text, the radiologist's decision and text beside it, the organs
it examined (label ids, mask labels, abnormal probability) and their regions in the CT (bounding
box in RAS mm, volume), and its key image with where it was cut (voxel axis and slice index,
world position in mm, and the source DICOM slice's SOP instance UID when there is one). The
conclusion names the round it was read from and the chain of rounds and regions behind it.

``to_dict()`` is the canonical JSON form (key images by file name and SHA-256, not bytes);
html_report, pdf_report and dicom_sr render the same object.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

import numpy as np

from inference.ct_volume import CTVolume, StudyInfo
from inference.iir.rounds import Round, abnormal_text
from inference.iir.unseen import unseen_in
from inference.report.deidentify import Deidentifier
from inference.report.key_images import KeyImage, render_key_image, screenshot_key_image
from inference.report.review import CONCLUSION, Decision, Review, round_key
from inference.segmentation.organ_masks import OrganMasks

SCHEMA = "tumorchain.report/1"


@dataclass
class Region:
    """Where a mask label lies: voxel count, volume, axis-aligned bounding box in RAS mm."""

    label_id: int
    name: str
    display: str
    colour: tuple[int, int, int]
    voxels: int
    volume_ml: float
    bbox_mm: tuple[tuple[float, float, float], tuple[float, float, float]] | None  # (min xyz, max xyz)


@dataclass
class OrganEvidence:
    label_id: int
    name: str
    display: str
    mask_label: int
    abnormal_prob: float | None  # None: the model has no organ classifier
    fallback: str | None
    region: Region


@dataclass
class KeyImageRef:
    """Where a round's key image was cut (and what the picture is)."""

    file: str  # name of the PNG next to the HTML report
    sha256: str
    source: str  # "rendered" | "screenshot"
    labels: list[int]
    slice_axis: int
    slice_index: int
    world_mm: tuple[float, float, float]
    sop_instance_uid: str | None  # the CT slice it shows, when the CT came from DICOM


@dataclass
class RoundEntry:
    index: int
    ai_text: str
    decision: Decision  # the effective decision (after amendments)
    text: str  # what a reader takes: the radiologist's text when edited, else the AI's
    signed_decision: Decision | None  # the decision as signed, when amendments changed it since
    organs: list[OrganEvidence]
    roi_labels: list[int]  # mask labels the key image outlines
    named_organs: list[str]
    next_organs: list[str]
    key_image: KeyImageRef
    image: KeyImage = field(repr=False, compare=False)
    # what the round examined, in words: "global view (no organ tokens)" or "organ tokens of ..."
    provenance: str = ""
    unseen: list[str] = field(default_factory=list)  # organs its text names that have no mask (not findings)
    step: str = ""  # the task step (model card question) this round answers


@dataclass
class OrganImage:
    """A key image per examined organ, cut through that organ's largest cross-section; the report
    lists them by P(abnormal), highest (the flagged organ) first."""

    label_id: int  # the mask label
    name: str
    display: str
    abnormal_prob: float | None  # highest over the rounds that examined it; None: no organ classifier
    rounds: list[int]
    flagged: bool  # P(abnormal) >= 0.5
    key_image: KeyImageRef
    image: KeyImage = field(repr=False, compare=False)


@dataclass
class ConclusionEntry:
    answer: str
    reasoning: str
    found: bool
    decision: Decision
    text: str
    signed_decision: Decision | None
    from_round: int  # the round whose text the answer was read from
    chain: list[int]  # every round it rests on
    regions: list[tuple[int, int]]  # (round index, mask label) whose organ tokens are behind it
    global_rounds: list[int] = field(default_factory=list)  # rounds that saw the global view only
    unseen: list[str] = field(default_factory=list)  # organs its round names without a mask: not findings


@dataclass
class TraceableReport:
    run_key: str
    generated: str
    deidentified: bool
    study: StudyInfo  # what the header prints (pseudonymised when deidentified)
    case: dict[str, Any]
    model: dict[str, Any]
    segmentation: dict[str, Any]
    question: str
    task: str | None
    stop_reason: str
    rounds: list[RoundEntry]
    conclusion: ConclusionEntry
    reviewer: str
    signed: dict[str, str] | None
    amendments: list[dict[str, Any]]
    warnings: list[str]
    regions: dict[int, Region]
    organ_images: list[OrganImage] = field(default_factory=list)
    # the CT against the model card's training domain (run.json's "domain"); every page says so
    domain: dict[str, Any] = field(default_factory=dict)
    model_card: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def domain_warning(self) -> str:
        """One line for every report page; "" inside the training domain (or none declared)."""
        reasons = self.domain.get("reasons") or []
        if not reasons:
            return ""
        who = self.model_card.get("name") or "the model"
        return f"Outside the training domain of {who}: " + "; ".join(reasons) + ". Its answers here are not meaningful."

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema": SCHEMA, "run_key": self.run_key, "generated": self.generated,
            "deidentified": self.deidentified,
            "patient": {"name": self.study.patient_name, "id": self.study.patient_id,
                        "birth_date": self.study.patient_birth_date, "sex": self.study.patient_sex},
            "study": {"study_instance_uid": self.study.study_instance_uid, "date": self.study.study_date,
                      "description": self.study.study_description, "accession": self.study.accession_number},
            "case": self.case, "model": self.model, "segmentation": self.segmentation,
            "question": self.question, "task": self.task, "stop_reason": self.stop_reason,
            "rounds": [{k: v for k, v in asdict(r).items() if k != "image"} for r in self.rounds],
            "conclusion": asdict(self.conclusion),
            "review": {"reviewer": self.reviewer, "signed": self.signed, "amendments": self.amendments},
            "regions": {str(k): asdict(v) for k, v in self.regions.items()},
            "warnings": self.warnings,
            "organ_images": [{k: v for k, v in asdict(o).items() if k != "image"} for o in self.organ_images],
            "domain": self.domain, "domain_warning": self.domain_warning, "model_card": self.model_card,
            "steps": self.steps,
        }
        return d


def roi_labels(rnd: Round, masks: OrganMasks, present: set[int] | None = None) -> list[int]:
    """Mask labels a round's key image shows: the organs whose tokens it examined; for a round
    without organ tokens (round 1), the organs its text named that have a mask (a substructure
    without its own mask falls back to its parent organ)."""
    if rnd.organs:  # the flagged organ (highest P(abnormal)) first: its slice is the one shown
        ranked = sorted(rnd.organs, key=_rank)
        return list(dict.fromkeys(o.mask_label for o in ranked))
    present = set(masks.present_ids()) if present is None else present
    out: list[int] = []
    for name in list(rnd.next_organs) + list(rnd.named_organs):
        if name not in masks.table:
            continue
        lab = masks.table.by_name(name)
        lid = lab.id if lab.id in present else (lab.parent if lab.parent in present else None)
        if lid is not None and lid not in out:
            out.append(lid)
    return out


def region_of(label_id: int, ct: CTVolume, masks: OrganMasks) -> Region:
    lab = masks.table.by_id(label_id)
    m = masks.mask(label_id)
    n = int(m.sum())
    bbox = None
    if n:
        lo, hi = [], []
        for a in range(3):
            hit = np.flatnonzero(m.any(axis=tuple(b for b in range(3) if b != a)))
            lo.append(hit[0] - 0.5)  # voxel edges, not centres: the box encloses the voxels
            hi.append(hit[-1] + 0.5)
        world = ct.voxel_to_world(np.array(list(itertools.product(*zip(lo, hi)))))
        bbox = (tuple(round(float(v), 2) for v in world.min(axis=0)),
                tuple(round(float(v), 2) for v in world.max(axis=0)))
    voxel_ml = abs(float(np.linalg.det(ct.affine[:3, :3]))) / 1000.0
    return Region(label_id, lab.name, lab.display, tuple(lab.colour), n, round(n * voxel_ml, 3), bbox)


def build_report(run: Any, review: Review, ct: CTVolume, masks: OrganMasks, *,
                 deidentifier: Deidentifier | None = None,
                 key_images: Mapping[int, KeyImage | bytes | str] | None = None,
                 image_size: int = 512) -> TraceableReport:
    """Assemble the report. key_images: round index -> the GUI's picture (KeyImage, PNG bytes or
    a file); others are rendered. De-identified reports always render (a screenshot may show
    identifiers) and scrub every text."""
    if masks.shape != ct.shape:
        raise ValueError(f"masks {masks.shape} are not on the CT grid {ct.shape}")
    review.check_matches(run)
    deid = deidentifier
    text = deid.scrub_text if deid else (lambda s: s)
    study = deid.header_study() if deid else ct.study
    uids = study.sop_instance_uids
    regions: dict[int, Region] = {}
    rounds: list[RoundEntry] = []
    present = set(masks.present_ids())
    for rnd in run.rounds:
        labels = roi_labels(rnd, masks, present)
        for lid in labels:
            if lid not in regions:
                regions[lid] = region_of(lid, ct, masks)
        given = (key_images or {}).get(rnd.index)
        provenance = round_provenance(rnd, [regions[lid].display for lid in labels])
        caption = f"Round {rnd.index}: {provenance}"
        focus = labels[0] if labels else None
        if isinstance(given, KeyImage) and deid is None:
            image = given
        elif given is not None and deid is None:
            image = screenshot_key_image(given, ct, masks, labels, round_index=rnd.index, caption=caption, focus=focus)
        else:
            image = render_key_image(ct, masks, labels, round_index=rnd.index, size=image_size, caption=caption,
                                     focus=focus)
        ref = _image_ref(f"round{rnd.index}_key.png", image, ct, uids)
        organs = []
        for o in rnd.organs:
            if o.mask_label not in regions:
                regions[o.mask_label] = region_of(o.mask_label, ct, masks)
            organs.append(OrganEvidence(o.label_id, o.name, o.display, o.mask_label, o.abnormal_prob,
                                        o.fallback, regions[o.mask_label]))
        key = round_key(rnd.index)
        d = review.effective(key)
        rounds.append(RoundEntry(rnd.index, text(rnd.text), _scrub_decision(d, deid), text(review.effective_text(key)),
                                 _signed(review, key, deid), organs, labels, list(rnd.named_organs), list(rnd.next_organs), ref, image,
                                 provenance=provenance, unseen=unseen_in(rnd, run.rounds), step=rnd.step))
    cd = review.effective(CONCLUSION)
    conclusion = ConclusionEntry(
        answer=text(run.conclusion.answer), reasoning=text(run.conclusion.reasoning), found=run.conclusion.found,
        decision=_scrub_decision(cd, deid), text=text(review.effective_text(CONCLUSION)),
        signed_decision=_signed(review, CONCLUSION, deid),
        from_round=run.rounds[-1].index, chain=[r.index for r in run.rounds],
        regions=[(r.index, o.mask_label) for r in rounds for o in r.organs],
        global_rounds=[r.index for r in rounds if not r.organs],
        unseen=unseen_in(run.rounds[-1], run.rounds))
    run_dict = run.to_dict()
    if deid:
        run_dict = deid.run_dict(run_dict)
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return TraceableReport(
        run_key=review.run_key, generated=deid.shift_date(generated) if deid else generated,
        deidentified=deid is not None, study=study, case=run_dict["case"], model=run_dict["model"],
        segmentation=run_dict["segmentation"], question=text(run.question), task=run.task,
        stop_reason=run.stop_reason, rounds=rounds, conclusion=conclusion, reviewer=review.reviewer,
        signed=({"reviewer": review.signed.reviewer,
                 "at": deid.shift_date(review.signed.at) if deid else review.signed.at} if review.signed else None),
        amendments=[{"number": a.number, "item": a.key, "decision": a.decision.decision,
                     "text": text(a.decision.text) if a.decision.text else None, "reason": text(a.reason),
                     "reviewer": a.decision.reviewer,
                     "at": deid.shift_date(a.decision.at) if deid else a.decision.at} for a in review.amendments],
        warnings=[text(w) for w in run_dict.get("warnings", [])], regions=regions,
        organ_images=organ_images(run, ct, masks, uids, image_size),
        domain=dict(getattr(run, "domain", {}) or {}), model_card=dict(getattr(run, "model_card", {}) or {}),
        steps=[dict(st, question=text(st.get("question", "")), answer=text(st.get("answer", "")))
               for st in getattr(run, "steps", []) or []])


def round_provenance(rnd: Round, outlined: list[str]) -> str:
    """What a round examined, as the report and its key image caption say it."""
    if rnd.organs:
        return "organ tokens of " + ", ".join(
            f"{o.display} ({abnormal_text(o.abnormal_prob)})" for o in sorted(rnd.organs, key=_rank))
    named = f"; the image outlines the organs its text named ({', '.join(outlined)})" if outlined else ""
    return "global view (no organ tokens)" + named


def organ_images(run: Any, ct: CTVolume, masks: OrganMasks, uids, size: int) -> list[OrganImage]:
    """One rendered key image per examined mask label, through that organ, highest P(abnormal) first
    (a model without an organ classifier: in the order the rounds examined them)."""
    best: dict[int, tuple[float | None, list[int]]] = {}
    for rnd in run.rounds:
        for o in rnd.organs:
            p, rounds = best.get(o.mask_label, (None, []))
            if o.abnormal_prob is not None:
                p = o.abnormal_prob if p is None else max(p, o.abnormal_prob)
            best[o.mask_label] = (p, rounds + [rnd.index])
    out = []
    for lid, (p, rounds) in sorted(best.items(), key=lambda kv: -1.0 if kv[1][0] is None else -kv[1][0]):
        if not masks.mask(lid).any():
            continue
        lab = masks.table.by_id(lid)
        image = render_key_image(ct, masks, [lid], round_index=rounds[0], size=size, focus=lid,
                                 caption=f"{lab.display}: {abnormal_text(p)} (rounds {', '.join(map(str, rounds))})")
        out.append(OrganImage(lid, lab.name, lab.display, None if p is None else float(p), list(dict.fromkeys(rounds)),
                              p is not None and p >= 0.5, _image_ref(f"organ_{lab.name}_key.png", image, ct, uids),
                              image))
    return out


def _rank(organ) -> float:
    """Sort key: highest P(abnormal) first; without a classifier, the order the tokens came in."""
    return 0.0 if organ.abnormal_prob is None else -organ.abnormal_prob


def _image_ref(file: str, image: KeyImage, ct: CTVolume, uids) -> KeyImageRef:
    c = image.choice
    return KeyImageRef(file=file, sha256=hashlib.sha256(image.png).hexdigest(), source=image.source,
                       labels=list(c.labels), slice_axis=c.axis, slice_index=c.index, world_mm=c.world_mm,
                       sop_instance_uid=uids[c.index] if c.axis == 2 and len(uids) == ct.shape[2] else None)


def _signed(review: Review, key: str, deid: Deidentifier | None) -> Decision | None:
    if review.signed is None or not any(a.key == key for a in review.amendments):
        return None
    return _scrub_decision(review.current(key), deid)


def _scrub_decision(d: Decision, deid: Deidentifier | None) -> Decision:
    if deid is None:
        return d
    return Decision(d.decision, deid.scrub_text(d.text) if d.text is not None else None,
                    deid.scrub_text(d.comment), d.reviewer, deid.shift_date(d.at))
