"""Field-level precision and recall of extracted findings against expected ones.

Each case is reduced to one value per field (the dominant lesion's, as the chains use it):
organ, sub_region, size (long axis, right within 20 %), shape, boundary, density, count (primary
lesions of the organ), others (its other features, "none" when it has none), T, N, M. A field the
expectation leaves out (None) is not counted for recall; a value extracted where none is expected
counts against precision (a lesion found in a normal study, a stage for a benign lesion).
"""
from __future__ import annotations

from dataclasses import dataclass, field

FIELDS = ("organ", "sub_region", "size", "shape", "boundary", "density", "count", "others", "T", "N", "M")
SIZE_TOLERANCE = 0.2


def findings_view(f) -> dict:
    """One value per field of CaseFindings (site engine) or CaseTruth (cohort ground truth)."""
    les = f.largest_primary()
    unknown = getattr(f, "unknown_counts", [])
    tnm = f.tnm
    return {
        "organ": f.primary_organ if f.lesions else None,
        "sub_region": les.substructure if les else None,
        "size": les.diameter_mm if les else None,
        "shape": les.shape if les else None,
        "boundary": les.boundary if les else None,
        "density": les.density if les else None,
        "count": len(f.lesions) if f.lesions and f.primary_organ not in unknown else None,
        "others": (", ".join(sorted(les.others)) or "none") if les else None,
        "T": getattr(tnm, "T", None), "N": getattr(tnm, "N", None), "M": getattr(tnm, "M", None),
    }


def agree(name: str, expected, got) -> bool:
    if name == "size":
        return abs(float(got) - float(expected)) <= SIZE_TOLERANCE * float(expected)
    return expected == got


@dataclass
class FieldScore:
    tp: int = 0
    predicted: int = 0
    expected: int = 0
    misses: list = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.tp / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.expected if self.expected else None


def score(pairs) -> dict[str, FieldScore]:
    """``pairs``: (case name, expected view, extracted view) -> {field: FieldScore}."""
    out = {name: FieldScore() for name in FIELDS}
    for case, expected, got in pairs:
        for name in FIELDS:
            e, g = expected.get(name), got.get(name)
            s = out[name]
            s.expected += e is not None
            s.predicted += g is not None
            if e is not None and g is not None and agree(name, e, g):
                s.tp += 1
            elif e is not None or g is not None:
                s.misses.append((case, e, g))
    return out


def table(scores: dict[str, FieldScore]) -> str:
    """A Markdown table: field, precision, recall, counts."""
    def pct(x):
        return "-" if x is None else f"{x:.3f}"

    rows = ["| field | precision | recall | right / extracted / expected |", "|---|---|---|---|"]
    for name, s in scores.items():
        rows.append(f"| {name} | {pct(s.precision)} | {pct(s.recall)} | {s.tp} / {s.predicted} / {s.expected} |")
    return "\n".join(rows)


def expected_view(expected: dict) -> dict:
    """A hand-labelled fixture entry (tests/fixtures/site_reports.json) as a view; a left-out field is None."""
    return {name: expected.get(name) for name in FIELDS}


def score_fixture(reports: list[dict], extractor, kg) -> dict[str, FieldScore]:
    """Run ``extractor`` (+ staging) on each fixture report and score it against its hand labels."""
    from .rule_extractor import ReportInput
    from .tnm import stage_findings
    from .rule_extractor import stated_stage

    pairs = []
    for r in reports:
        f = extractor.extract(r["id"], ReportInput(r["report"], r.get("impression", ""), r.get("pathology", ""),
                                                   r.get("stage", "")))
        if r.get("stage"):
            f.stated_stage = stated_stage(r["stage"])
        stage_findings(kg, f)
        pairs.append((r["id"], expected_view(r["expected"]), findings_view(f)))
    return score(pairs)
