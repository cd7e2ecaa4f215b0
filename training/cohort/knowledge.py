"""The diagnostic knowledge graph (resources/knowledge_graph.json) as typed, validated objects.

The cohort draws lesions from its pathology patterns, stages them with its TNM rules and writes
VQA text from its findings, impressions, node stations and metastatic pathways (the last two
read from the entity-relation-entity triples).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from inference.errors import InputError
from inference.labels import merged_labels

KG_FILE = Path(__file__).resolve().parents[2] / "resources" / "knowledge_graph.json"
DENSITIES = ("hypodense", "hyperdense", "mixed")
SHAPES = ("round", "oval", "lobulated", "irregular")
BOUNDARIES = ("well-defined", "ill-defined")


@dataclass(frozen=True)
class Pattern:
    density: str
    boundary: tuple[str, ...]
    shape: tuple[str, ...]
    others: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Pathology:
    name: str
    organ: str
    display: str
    malignant: bool
    weight: float
    tnm: str | None
    count_weights: tuple[float, ...]
    size_mm: tuple[float, float]
    patterns: tuple[Pattern, ...]
    finding: str
    impression: str


@dataclass(frozen=True)
class OrganInfo:
    label: str
    display: str
    parenchyma_tissue: str
    hollow: bool
    part_weights: dict[str, float]
    station: str  # regional lymph node station, e.g. "peripancreatic"
    metastasis_sites: tuple[str, ...]  # organ label names


@dataclass(frozen=True)
class StageRule:
    stage: str
    rule: str
    max_mm: float | None = None
    max_count: int | None = None
    max_nodes: int | None = None
    max_metastases: int | None = None
    boundary: str | None = None


@dataclass(frozen=True)
class TNMSystem:
    name: str
    title: str
    T: tuple[StageRule, ...]
    N: tuple[StageRule, ...]
    M: tuple[StageRule, ...]

    def stages(self, axis: str) -> list[str]:
        return [r.stage for r in getattr(self, axis)]


@dataclass(frozen=True)
class KnowledgeGraph:
    organs: dict[str, OrganInfo]
    organ_weights: dict[str, float]
    normal_fraction: float
    pathologies: dict[str, Pathology]
    attributes: dict[str, dict[str, str]]
    metastasis: dict
    lymph_node: dict
    tnm: dict[str, TNMSystem]
    triples: tuple[tuple[str, str, str], ...]

    def pathologies_of(self, organ: str) -> list[Pathology]:
        return [p for p in self.pathologies.values() if p.organ == organ]

    def describe(self, kind: str, value: str) -> str:
        """The finding phrase of an attribute value ("irregular" -> "an uneven outline ...")."""
        return self.attributes[kind][value]

def _stage_rules(rows: list[dict]) -> tuple[StageRule, ...]:
    return tuple(StageRule(**row) for row in rows)


def _organ_by_display(organs: dict) -> dict[str, str]:
    return {v["display"]: k for k, v in organs.items()}


def parse_kg(data: dict, source: Path = KG_FILE) -> KnowledgeGraph:
    """Build and check the graph; any inconsistency is an InputError naming the file."""
    try:
        triples = tuple(tuple(t) for t in data["triples"])
        by_display = _organ_by_display(data["organs"])
        organs = {}
        for name, o in data["organs"].items():
            stations = [obj for s, r, obj in triples if s == o["display"] and r == "drains to"]
            sites = [by_display[obj] for s, r, obj in triples if s == o["display"] and r == "metastasizes to"]
            if len(stations) != 1:
                raise ValueError(f"organ {name}: needs exactly one 'drains to' triple, found {len(stations)}")
            organs[name] = OrganInfo(
                label=o["label"], display=o["display"], parenchyma_tissue=o["parenchyma_tissue"], hollow=o["hollow"],
                part_weights=dict(o["part_weights"]), station=stations[0].removesuffix(" lymph nodes"),
                metastasis_sites=tuple(sites))
        pathologies = {}
        for name, p in data["pathologies"].items():
            patterns = tuple(Pattern(density=q["density"], boundary=tuple(q["boundary"]), shape=tuple(q["shape"]),
                                     others=tuple(tuple(x) for x in q["others"])) for q in p["patterns"])
            pathologies[name] = Pathology(
                name=name, organ=p["organ"], display=p["display"], malignant=p["malignant"], weight=p["weight"],
                tnm=p["tnm"], count_weights=tuple(p["count_weights"]), size_mm=tuple(p["size_mm"]),
                patterns=patterns, finding=p["finding"], impression=p["impression"])
        tnm = {k: TNMSystem(k, v["title"], _stage_rules(v["T"]), _stage_rules(v["N"]), _stage_rules(v["M"]))
               for k, v in data["tnm"].items()}
        kg = KnowledgeGraph(organs=organs, organ_weights=dict(data["organ_weights"]),
                            normal_fraction=float(data["normal_fraction"]), pathologies=pathologies,
                            attributes=data["attributes"], metastasis=data["metastasis"],
                            lymph_node=data["lymph_node"], tnm=tnm, triples=triples)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(source, f"knowledge graph is malformed: {exc!r}") from exc
    problems = check_kg(kg)
    if problems:
        raise InputError(source, "knowledge graph is inconsistent: " + "; ".join(problems))
    return kg


def check_kg(kg: KnowledgeGraph) -> list[str]:
    """Everything the cohort relies on: labels exist, patterns use known values, findings of
    different pathologies of one organ never coincide, every staged pathology has rules."""
    table = merged_labels()
    out = []
    for name, o in kg.organs.items():
        if name not in table:
            out.append(f"organ {name} is not a label")
        for part in o.part_weights:
            if part not in table or table.by_name(part).parent != table.by_name(name).id:
                out.append(f"{part} is not a substructure of {name}")
    seen: dict[tuple, str] = {}
    for p in kg.pathologies.values():
        if p.organ not in kg.organs:
            out.append(f"{p.name}: unknown organ {p.organ}")
        if p.tnm is not None and p.tnm not in kg.tnm:
            out.append(f"{p.name}: unknown TNM system {p.tnm}")
        if p.malignant != (p.tnm is not None):
            out.append(f"{p.name}: malignant pathologies and only they are staged")
        for q in p.patterns:
            if q.density not in DENSITIES or set(q.boundary) - set(BOUNDARIES) or set(q.shape) - set(SHAPES):
                out.append(f"{p.name}: unknown attribute value in {q}")
            for extra in q.others:
                for o in extra:
                    if o not in kg.attributes["others"]:
                        out.append(f"{p.name}: unknown 'others' finding {o}")
                for b in q.boundary:
                    key = (p.organ, q.density, b, extra)
                    if key in seen and seen[key] != p.name:
                        out.append(f"{p.name} and {seen[key]} share findings {key}")
                    seen[key] = p.name
    for system in kg.tnm.values():
        for axis in ("T", "N", "M"):
            rules = getattr(system, axis)
            last = rules[-1]
            if any(v is not None for v in (last.max_mm, last.max_count, last.max_nodes, last.max_metastases,
                                           last.boundary)):
                out.append(f"{system.name}: the last {axis} rule must be unconditional")
    return out


@lru_cache(maxsize=1)
def load_kg(path: str | None = None) -> KnowledgeGraph:
    file = Path(path) if path else KG_FILE
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(file, f"cannot read the knowledge graph: {exc}") from exc
    return parse_kg(data, file)
