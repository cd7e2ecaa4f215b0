"""The report of one conversion: per CSV line what was extracted (with the extractor of each field),
what was dropped and why, which subtasks were written or not and why; totals per subtask.

Written as JSON beside the manifest (``<manifest>.conversion.json``) and summarised as text on the
console; ``--dry-run`` shows the summary and writes nothing.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

from ..manifest import TABLE1_SUBTASKS
from .findings import CaseFindings

ALL_SUBTASKS = TABLE1_SUBTASKS


@dataclass
class CaseReport:
    line: int
    case_id: str
    status: str  # "converted" | "skipped"
    reason: str = ""  # why a skipped case was skipped
    extracted: dict = field(default_factory=dict)
    dropped: list[dict] = field(default_factory=list)
    samples: dict[str, int] = field(default_factory=dict)
    not_written: dict[str, str] = field(default_factory=dict)


def extracted_summary(f: CaseFindings) -> dict:
    """Field -> {"value", "source"} of the case and of each lesion (what the chains were written from)."""
    def lesion(les) -> dict:
        keys = ("organ", "substructure", "diameter_mm", "shape", "boundary", "density", "others", "vessel_invasion",
                "attenuation_hu")
        return {k: {"value": getattr(les, k), "source": les.sources.get(k)} for k in keys
                if getattr(les, k) not in (None, [])} | {"kind": les.kind}

    tnm = f.tnm
    out = {
        "category": f.category,
        "primary_organ": {"value": f.primary_organ, "source": f.sources.get("primary_organ")},
        "pathology": {"value": f.pathology, "source": f.sources.get("pathology")},
        "lesions": [lesion(les) for les in f.lesions if les.evidence != "(counted, not described)"],
        "lesion_count": len(f.lesions),
        "metastases": len(f.metastases),
        "incidental": [lesion(les) for les in f.incidental],
        "positive_nodes": len(f.nodes) if (f.nodes or f.nodes_stated) else None,
        "normal_organs": f.normal_organs,
        "organ_labels": f.organ_abnormal,
    }
    if tnm is not None:
        out["tnm"] = {axis: {"value": getattr(tnm, axis), "source": "derived" if axis in tnm.derived else
                             f.sources.get(axis)} for axis in ("T", "N", "M") if getattr(tnm, axis)}
    return out


@dataclass
class ConversionReport:
    cases: list[CaseReport] = field(default_factory=list)
    extractor: str = "rules"
    written: str | None = None  # the manifest path, None for a dry run
    notes: list[str] = field(default_factory=list)  # how the CSV was read (encoding, delimiter)

    def add(self, case: CaseReport) -> None:
        self.cases.append(case)

    def totals(self) -> dict:
        per_subtask = Counter()
        not_written = Counter()
        drops = Counter()
        for c in self.cases:
            per_subtask.update(c.samples)
            not_written.update(f"{k}: {v}" for k, v in c.not_written.items())
            drops.update(d["reason"] for d in c.dropped)
        return {
            "cases": len(self.cases),
            "converted": sum(c.status == "converted" for c in self.cases),
            "skipped": sum(c.status == "skipped" for c in self.cases),
            "samples": sum(per_subtask.values()),
            "per_subtask": {s: per_subtask.get(s, 0) for s in ALL_SUBTASKS},
            "not_written": dict(not_written.most_common()),
            "dropped": dict(drops.most_common()),
        }

    def to_json(self) -> str:
        return json.dumps({"extractor": self.extractor, "manifest": self.written, "notes": self.notes,
                           "totals": self.totals(),
                           "cases": [asdict(c) for c in self.cases]}, indent=1, default=str)

    def summary(self) -> str:
        t = self.totals()
        lines = [f"{t['cases']} CSV rows: {t['converted']} converted, {t['skipped']} skipped; {t['samples']} samples "
                 f"(extractor: {self.extractor})"]
        lines.append("samples per subtask: " + ", ".join(f"{k} {v}" for k, v in t["per_subtask"].items()))
        lines += [f"note: {n}" for n in self.notes]
        for c in self.cases:
            if c.status == "skipped":
                lines.append(f"  line {c.line} ({c.case_id}): skipped: {c.reason}")
        if t["dropped"]:
            lines.append("dropped: " + "; ".join(f"{k} x{v}" for k, v in t["dropped"].items()))
        if t["not_written"]:
            lines.append("subtasks not written: " + "; ".join(f"{k} x{v}" for k, v in t["not_written"].items()))
        return "\n".join(lines)
