"""Ground truth of one synthetic case: what was drawn, measured on the written arrays.

Every number here is measured from the label maps and the CT after rendering (centre = mask
centroid, diameter = longest extent, mean HU inside the mask), so text written from it agrees
with what a viewer measures on the files.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from inference.errors import InputError

GENERATOR_NAME = "tumorchain-synthetic-cohort"
GENERATOR_VERSION = "1.3.0"  # 1.1: round 1 a tentative impression (vqa_common.impression); 1.2: local rounds give
# one verdict per examined organ before confirming or revising it; 1.3: the conclusion before the confirm/revise
# sentence, report chains with per-organ and per-sub-region verdicts, 'others' impressions about the organ
TRUTH_SCHEMA = "tumorchain.synthetic_case/1"


@dataclass
class LesionTruth:
    """One drawn object of the lesions map (instance_id is its value there).

    kind: "primary" | "metastasis" | "node". organ / substructure: merged label names (None for
    nodes, which lie in fat). diameter_mm: longest extent; short_axis_mm: shortest extent in
    the axial plane (the lymph node criterion). density: hypodense / hyperdense / mixed (nodes:
    None). attenuation_hu: median HU of the interior ROI; reference_hu: the parenchyma HU of the
    case the density is judged against.
    """

    instance_id: int
    kind: str
    organ: str | None
    substructure: str | None
    centre_ras_mm: list[float]
    centre_voxel: list[int]
    diameter_mm: float
    short_axis_mm: float
    volume_ml: float
    voxels: int
    density: str | None
    shape: str
    boundary: str
    others: list[str]
    attenuation_hu: float  # median HU of the interior ROI (edge voxels and calcification excluded)
    reference_hu: float
    pathology: str | None = None
    station: str | None = None
    near_organ: str | None = None


@dataclass
class StageTruth:
    system: str
    title: str
    T: str
    T_rule: str
    N: str
    N_rule: str
    M: str
    M_rule: str

    @property
    def label(self) -> str:
        return f"{self.T} {self.N} {self.M}"


@dataclass
class CaseTruth:
    case_id: str
    seed: int
    shape: list[int]
    spacing: list[float]
    affine: list[list[float]]
    category: str  # "normal" | "benign" | "malignant"
    primary_organ: str | None
    pathology: str | None
    pathology_display: str | None
    finding: str | None
    impression: str | None
    lesions: list[LesionTruth] = field(default_factory=list)  # primary lesions
    metastases: list[LesionTruth] = field(default_factory=list)
    nodes: list[LesionTruth] = field(default_factory=list)
    tnm: StageTruth | None = None
    lesion_counts: dict[str, int] = field(default_factory=dict)  # organ -> primary lesions + metastases
    organ_abnormal: dict[str, int] = field(default_factory=dict)
    organs_present: list[str] = field(default_factory=list)
    parts_present: list[str] = field(default_factory=list)
    hu_reference: dict[str, float] = field(default_factory=dict)
    noise_sigma_hu: float = 0.0
    phase: str = "portal venous"
    generator: str = GENERATOR_NAME
    generator_version: str = GENERATOR_VERSION
    schema: str = TRUTH_SCHEMA

    def all_lesions(self) -> list[LesionTruth]:
        return self.lesions + self.metastases + self.nodes

    def lesions_in(self, organ: str) -> list[LesionTruth]:
        """Primary lesions and metastases inside an organ (label name)."""
        return [les for les in self.lesions + self.metastases if les.organ == organ]

    def largest_primary(self) -> LesionTruth | None:
        return max(self.lesions, key=lambda les: les.diameter_mm, default=None)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def _lesion(d: dict) -> LesionTruth:
    return LesionTruth(**{f.name: d[f.name] for f in fields(LesionTruth) if f.name in d})


def truth_from_dict(d: dict, source: Path | None = None) -> CaseTruth:
    try:
        if d.get("schema") != TRUTH_SCHEMA:
            raise ValueError(f"schema is {d.get('schema')!r}, expected {TRUTH_SCHEMA!r}")
        kw = {f.name: d[f.name] for f in fields(CaseTruth) if f.name in d}
        kw["lesions"] = [_lesion(x) for x in d["lesions"]]
        kw["metastases"] = [_lesion(x) for x in d["metastases"]]
        kw["nodes"] = [_lesion(x) for x in d["nodes"]]
        kw["tnm"] = StageTruth(**d["tnm"]) if d.get("tnm") else None
        return CaseTruth(**kw)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(source, f"not a synthetic case ground truth: {exc}") from exc


def read_truth(path: str | Path) -> CaseTruth:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read ground truth: {exc}") from exc
    return truth_from_dict(data, path)
