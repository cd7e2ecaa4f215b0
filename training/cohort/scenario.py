"""What a case shows, decided before anything is drawn: normal, or a primary tumor of one of
the five digestive organs with its pathology, attributes, count, size, enlarged nodes and
distant metastases, all sampled from the knowledge graph's priors."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .knowledge import KnowledgeGraph, Pathology


@dataclass
class LesionPlan:
    """One object to draw. diameter_mm: nominal long axis (nodes: nominal short axis).
    part: substructure label name, or None to pick one by the organ's clinical prior."""

    kind: str  # "primary" | "metastasis" | "node"
    organ: str | None
    diameter_mm: float
    shape: str
    boundary: str
    density: str | None = None
    others: tuple[str, ...] = ()
    part: str | None = None
    pathology: str | None = None


@dataclass
class Scenario:
    category: str  # "normal" | "benign" | "malignant"
    organ: str | None = None
    pathology: str | None = None
    plans: list[LesionPlan] = field(default_factory=list)


def _choice(rng: np.random.Generator, items, weights=None):
    items = list(items)
    if weights is None:
        return items[int(rng.integers(len(items)))]
    w = np.asarray(weights, dtype=np.float64)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


def _count(rng: np.random.Generator, weights) -> int:
    """Index drawn with the given weights (weights[k] = P(k) up to normalisation)."""
    return int(_choice(rng, range(len(weights)), weights))


def primary_plans(kg: KnowledgeGraph, path: Pathology, rng: np.random.Generator, n: int | None = None,
                  sizes: list[float] | None = None, parts: list[str | None] | None = None) -> list[LesionPlan]:
    """Primary lesions of one pathology: one shared pattern (density, boundary, others), a shape
    and size per lesion."""
    pattern = _choice(rng, path.patterns)
    boundary = _choice(rng, pattern.boundary)
    others = tuple(_choice(rng, pattern.others))
    n = n if n is not None else 1 + _count(rng, path.count_weights)
    out = []
    for i in range(n):
        size = sizes[i] if sizes else float(rng.uniform(*path.size_mm))
        out.append(LesionPlan(kind="primary", organ=path.organ, diameter_mm=size, shape=_choice(rng, pattern.shape),
                              boundary=boundary, density=pattern.density, others=others,
                              part=parts[i] if parts else None, pathology=path.name))
    return out


def metastasis_plans(kg: KnowledgeGraph, organ: str, rng: np.random.Generator, n: int,
                     parts: list[str | None] | None = None) -> list[LesionPlan]:
    m = kg.metastasis
    return [LesionPlan(kind="metastasis", organ=organ, diameter_mm=float(rng.uniform(*m["size_mm"])),
                       shape=_choice(rng, m["shape"]), boundary=_choice(rng, m["boundary"]), density=m["density"],
                       others=tuple(m["others"]), part=parts[i] if parts else None) for i in range(n)]


def node_plans(kg: KnowledgeGraph, organ: str, rng: np.random.Generator, n: int) -> list[LesionPlan]:
    lo, hi = kg.lymph_node["short_axis_mm"]
    return [LesionPlan(kind="node", organ=None, diameter_mm=float(rng.uniform(lo, hi)), shape="oval",
                       boundary="well-defined", part=None, pathology=None) for _ in range(n)]


def sample_scenario(kg: KnowledgeGraph, rng: np.random.Generator, available: set[str]) -> Scenario:
    """A random case. ``available``: organ label names present enough in this field of view to
    hold a lesion; with none available the case is normal."""
    organs = [o for o in kg.organ_weights if o in available]
    if not organs or rng.random() < kg.normal_fraction:
        return Scenario("normal")
    organ = _choice(rng, organs, [kg.organ_weights[o] for o in organs])
    paths = kg.pathologies_of(organ)
    path = _choice(rng, paths, [p.weight for p in paths])
    plans = primary_plans(kg, path, rng)
    if path.malignant:
        plans += node_plans(kg, organ, rng, _count(rng, kg.lymph_node["count_weights"]))
        sites = [s for s in kg.organs[organ].metastasis_sites if s in available]
        if sites and rng.random() < kg.metastasis["probability"]:
            n = 1 + _count(rng, kg.metastasis["count_weights"])
            plans += metastasis_plans(kg, _choice(rng, sites), rng, n)
    return Scenario("malignant" if path.malignant else "benign", organ, path.name, plans)


def demo_scenario(kg: KnowledgeGraph, rng: np.random.Generator) -> Scenario:
    """The bundled demo case: pancreatic ductal adenocarcinoma of the pancreatic head (about
    32 mm, T2) with upstream duct dilatation, two enlarged peripancreatic nodes (N1) and one
    liver metastasis in segment VII (M1)."""
    path = kg.pathologies["pancreatic_ductal_adenocarcinoma"]
    plans = primary_plans(kg, path, rng, n=1, sizes=[32.0], parts=["pancreas_head"])
    plans[0].shape, plans[0].others = "irregular", ("pancreatic duct dilatation",)
    plans += node_plans(kg, "pancreas", rng, 2)
    plans[1].diameter_mm, plans[2].diameter_mm = 15.0, 12.5
    plans += metastasis_plans(kg, "liver", rng, 1, parts=["liver_segment_7"])
    plans[3].diameter_mm, plans[3].boundary = 22.0, "well-defined"
    return Scenario("malignant", "pancreas", path.name, plans)


def scenario_for(kg: KnowledgeGraph, pathology: str, rng: np.random.Generator, n: int | None = None,
                 nodes: int = 0, metastases: int = 0) -> Scenario:
    """A scenario of a chosen pathology (tests, teaching cases): ``n`` primaries (default: the
    prior), enlarged nodes and metastases (malignant only) at the organ's first metastatic site."""
    path = kg.pathologies[pathology]
    plans = primary_plans(kg, path, rng, n=n)
    if path.malignant:
        plans += node_plans(kg, path.organ, rng, nodes)
        sites = kg.organs[path.organ].metastasis_sites
        if metastases and sites:
            plans += metastasis_plans(kg, sites[0], rng, metastases)
    return Scenario("malignant" if path.malignant else "benign", path.organ, path.name, plans)
