"""Structured findings of one site case: what a report (and its pathology/stage columns) says.

The attribute names match what the cohort's chain writers read from a synthetic case's ground truth
(training/cohort/ground_truth.py: ``diameter_mm``, ``substructure``, ``lesions_in``, ``largest_primary``,
``tnm.T_rule`` ...), so the same writers turn either into chains (training/site_engine/chains.py).
Unlike ground truth, any attribute a report does not state is None, and every field records which
extractor produced it (``sources``: field name -> "rules" | "llm" | "column" | "derived" | "mask").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Lesion:
    """One lesion (kind "primary" or "metastasis"). ``organ``/``substructure`` are merged label names;
    ``diameter_mm`` the long axis; ``evidence`` the report text it came from. A lesion the report only
    hedges ("cannot exclude a lesion") is not a Lesion: the extractors drop it with the reason."""

    organ: str | None
    substructure: str | None = None
    diameter_mm: float | None = None
    shape: str | None = None
    boundary: str | None = None
    density: str | None = None
    others: list[str] = field(default_factory=list)
    vessel_invasion: bool | None = None
    kind: str = "primary"
    stated_count: int | None = None  # the count its description gives ("two lesions": 2, "multiple": -1)
    evidence: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    attenuation_hu: float | None = None  # measured only when the site gives a lesion mask
    reference_hu: float | None = None


@dataclass
class Node:
    """An enlarged (positive) regional lymph node; short axis when the report gives one."""

    short_axis_mm: float | None = None
    evidence: str = ""


@dataclass
class Stage:
    """TNM with the reason of each axis (the writers' ``*_rule``); an axis neither given nor derivable is None;
    ``derived`` lists the axes computed from the findings by the knowledge graph's rules rather than read from
    pathology/stage."""

    system: str
    title: str
    T: str | None
    T_rule: str
    N: str | None
    N_rule: str
    M: str | None
    M_rule: str
    derived: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return " ".join(s for s in (self.T, self.N, self.M) if s)



@dataclass
class Dropped:
    """Something the engine recorded and left out, with the reason (conversion report)."""

    what: str
    reason: str


@dataclass
class CaseFindings:
    """Findings of one case. ``nodes_stated``/``metastases_stated``: the report says something about
    nodes / distant spread (also "no lymphadenopathy"), so N0/M0 may be derived; otherwise unknown.
    ``organs_present``/``parts_present`` come from the case's masks (grounding.py)."""

    case_id: str
    lesions: list[Lesion] = field(default_factory=list)
    metastases: list[Lesion] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    incidental: list[Lesion] = field(default_factory=list)  # lesions of other organs, not metastases
    unknown_counts: list[str] = field(default_factory=list)  # organs with "multiple" lesions (no count)
    nodes_stated: bool = False
    nodes_counted: bool = True  # False for "enlarged nodes" without a number (at least two)
    metastases_stated: bool = False
    normal_organs: list[str] = field(default_factory=list)  # organs the report calls normal / negates
    primary_organ: str | None = None
    pathology: str | None = None  # knowledge-graph pathology name
    pathology_text: str | None = None
    impression: str | None = None
    category: str = "normal"  # "normal" | "benign" | "malignant"
    tnm: Stage | None = None
    stated_stage: dict[str, str] = field(default_factory=dict)  # axis -> stage read from columns or text
    sources: dict[str, str] = field(default_factory=dict)
    dropped: list[Dropped] = field(default_factory=list)
    seed: int = 0
    organs_present: list[str] = field(default_factory=list)
    parts_present: list[str] = field(default_factory=list)
    organ_abnormal: dict[str, int] = field(default_factory=dict)

    # -- what the cohort's chain writers read -------------------------------------------------
    def lesions_in(self, organ: str) -> list[Lesion]:
        return [les for les in self.lesions + self.metastases + self.incidental if les.organ == organ]

    def largest_primary(self) -> Lesion | None:
        """The described primary lesion with the largest size (an undescribed extra one counts as 0)."""
        return max(self.lesions, key=lambda les: les.diameter_mm or 0.0, default=None)

    def drop(self, what: str, reason: str) -> None:
        self.dropped.append(Dropped(what, reason))

    def to_dict(self) -> dict:
        return asdict(self)
