"""Findings -> TumorCoT samples with the synthetic cohort's own chain writers (generator 1.3: tentative
round 1, per-organ then per-sub-region verdicts from the local views, conclusion, then confirm/revise),
so site data and cohort data train one model the same way; distractors are drawn as the cohort draws
them (training/cohort/vqa_*.py).

A subtask is written only where the findings support it, else it is skipped with the reason:
- organ_position, count, report: every case (a normal study too);
- tumor_position, segment_location: the lesion's sub-region is known and its sub-region mask exists
  (the loop examines sub-regions through their masks);
- shape, boundary, density, others: the report states that attribute ("others" only when it names a
  feature: a report that does not mention calcification has not excluded it);
- T, N, M: each axis given or derived (tnm.py).
"""
from __future__ import annotations

import copy
import zlib

import numpy as np

from ..cohort import vqa_attributes as attr
from ..cohort import vqa_localization as loc
from ..cohort import vqa_tnm as tnm_writers
from ..cohort.knowledge import KnowledgeGraph
from ..cohort.vqa_common import DIGESTIVE, SampleFactory
from ..cohort.vqa_report import report_sample
from ..manifest import Sample
from .findings import CaseFindings


def case_seed(case_id: str) -> int:
    """A stable seed per case (option order, tentative impressions): the same text on every run."""
    return zlib.crc32(case_id.encode("utf-8"))


def chain_view(f: CaseFindings) -> CaseFindings:
    """The findings as the writers should see them: a sub-region without a mask is left out (the loop
    could not examine it); the findings themselves keep it."""
    view = copy.deepcopy(f)
    for les in view.lesions + view.metastases + view.incidental:
        if les.substructure and les.substructure not in view.parts_present:
            les.substructure = None
    view.seed = case_seed(f.case_id)
    return view


def site_samples(f: CaseFindings, kg: KnowledgeGraph, files: tuple[str, str | None, str | None]
                 ) -> tuple[list[Sample], dict[str, str]]:
    """(samples, {subtask: why it was not written}) of one grounded case."""
    view = chain_view(f)
    fac = SampleFactory(view, "", files)
    rng = np.random.default_rng([view.seed, 6])
    out: list[Sample] = []
    skipped: dict[str, str] = {}
    present = [o for o in DIGESTIVE if o in view.organs_present]
    les = view.largest_primary()
    if not present:
        return [], {"all": "no digestive organ has a mask"}
    if les is not None and view.primary_organ not in kg.organs:
        return [], {"all": f"the lesion's organ ({view.primary_organ}) is not one of the knowledge graph's organs"}
    out.append(loc.organ_position(view, fac, rng))
    if les is None:
        for name in ("tumor_position", "segment_location", "shape", "boundary", "density", "others"):
            skipped[name] = "normal study"
        out.append(attr.count(view, str(rng.choice(present)), fac, rng))
    else:
        reported_part = f.largest_primary().substructure
        for name, make in (("tumor_position", loc.tumor_position), ("segment_location", loc.segment_location)):
            s = make(view, fac, rng) if les.substructure else None
            if s is not None:
                out.append(s)
            else:
                skipped[name] = ("no sub-region in the report" if reported_part is None else
                                 "sub-region without mask" if les.substructure is None else
                                 "fewer than three sub-regions in view")
        for name, make in (("shape", attr.shape), ("boundary", attr.boundary), ("density", attr.density)):
            if getattr(les, name) is None:
                skipped[name] = f"the report states no {name}"
            else:
                out.append(make(view, les, kg, fac, rng))
        if view.primary_organ in view.unknown_counts:
            skipped["count"] = "the report gives no count ('multiple')"
        else:
            out.append(attr.count(view, view.primary_organ, fac, rng))
        if les.others:
            out.append(attr.others(view, les, kg, fac, rng))
        else:
            skipped["others"] = "the report names no other feature"
        met_organs = sorted({m.organ for m in view.metastases} - {view.primary_organ} - set(view.unknown_counts))
        out += [attr.count(view, o, fac, rng, suffix=f"_{o}") for o in met_organs if o in view.organs_present]
    out += _tnm(view, kg, fac, rng, skipped)
    if les is not None and view.pathology is None:
        skipped["report"] = "no pathology the knowledge graph knows (from the report or derived from the findings)"
    else:
        out.append(report_sample(view, kg, fac, rng))
    return out, skipped


def _tnm(view: CaseFindings, kg, fac, rng, skipped: dict[str, str]) -> list[Sample]:
    out = []
    if view.tnm is None or not view.lesions:
        for axis in ("T", "N", "M"):
            skipped[axis] = "not a malignant case" if view.category != "malignant" else "no stage given or derivable"
        return out
    for axis, make in (("T", tnm_writers.t_stage), ("N", tnm_writers.n_stage), ("M", tnm_writers.m_stage)):
        if getattr(view.tnm, axis) is None:
            skipped[axis] = "neither given nor derivable from the findings"
        else:
            out.append(make(view, kg, fac, rng))
    return out
