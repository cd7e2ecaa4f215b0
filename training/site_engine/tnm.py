"""TNM of a site case: the pathology/stage column (or a stage the report states) wins; any axis it does
not give is derived from the findings with the knowledge graph's rules of the organ's system (the
rules the cohort stages its cases with, training/cohort/staging.py) and marked derived.

A derived axis needs its facts: T the largest primary's size (and the count, and the outer margin
where a rule asks for one), N a statement about the nodes ("no lymphadenopathy" counts), M a
statement about distant spread. Where they are missing the axis is left out, with the reason.
A given stage that disagrees with the findings keeps the given value and says so in its reason.
"""
from __future__ import annotations

from ..cohort.knowledge import KnowledgeGraph, StageRule, TNMSystem
from .findings import CaseFindings, Stage

AXES = ("T", "N", "M")


def system_of(kg: KnowledgeGraph, f: CaseFindings) -> str | None:
    """The AJCC system: the pathology's, else the organ's most common malignant pathology's."""
    if f.pathology and kg.pathologies[f.pathology].tnm:
        return kg.pathologies[f.pathology].tnm
    if f.primary_organ:
        staged = [p for p in kg.pathologies_of(f.primary_organ) if p.tnm]
        if staged:
            return max(staged, key=lambda p: p.weight).tnm
    return None


def _first(rules: tuple[StageRule, ...], facts: dict) -> StageRule | None:
    """The first rule whose conditions hold; None when a condition needs a fact that is unknown before
    one holds (e.g. the outer margin for a stomach tumor over 30 mm)."""
    for rule in rules:
        conditions = {"max_mm": "largest_mm", "max_count": "count", "boundary": "boundary", "max_nodes": "nodes",
                      "max_metastases": "metastases"}
        holds = True
        for attr, fact in conditions.items():
            limit = getattr(rule, attr)
            if limit is None:
                continue
            value = facts.get(fact)
            if value is None:
                return None
            if isinstance(value, tuple):  # a range: "multiple" lesions/nodes = (2, inf)
                lo, hi = value
                ok_lo, ok_hi = lo <= limit, hi <= limit
                if ok_lo != ok_hi:
                    return None
                holds = holds and ok_hi
            elif attr == "boundary":
                holds = holds and value == limit
            else:
                holds = holds and value <= limit
        if holds:
            return rule
    return None


def _facts(kg: KnowledgeGraph, f: CaseFindings) -> dict:
    les = f.largest_primary()
    count = len(f.lesions)
    threshold = float(kg.lymph_node["enlarged_short_axis_mm"])
    positive = [n for n in f.nodes if n.short_axis_mm is None or n.short_axis_mm > threshold]
    nodes = len(positive) if f.nodes_counted else (len(positive), 99)
    return {"largest_mm": les.diameter_mm if les else None,
            "count": (count, 99) if f.primary_organ in f.unknown_counts else count,
            "boundary": les.boundary if les else None,
            "nodes": nodes if f.nodes_stated or f.nodes else None,
            "metastases": len(f.metastases) if f.metastases_stated or f.metastases else None}


def stage_findings(kg: KnowledgeGraph, f: CaseFindings) -> Stage | None:
    """Set ``f.tnm`` (and return it) for a malignant case or one with a given stage; an axis neither given nor
    derivable is None there and recorded as dropped."""
    if f.category != "malignant" and not f.stated_stage:
        return None
    name = system_of(kg, f)
    if name is None:
        f.drop("TNM", f"no staging system for organ {f.primary_organ}")
        return None
    system: TNMSystem = kg.tnm[name]
    facts = _facts(kg, f)
    parts: dict[str, tuple[str, str]] = {}
    derived = []
    for axis in AXES:
        rules = getattr(system, axis)
        rule = _first(rules, facts)
        given = _given(f.stated_stage.get(axis), system, axis)
        if f.stated_stage.get(axis) and given is None:
            f.drop(f"stage {f.stated_stage[axis]}", f"not a stage of {system.title}")
        if given is not None:
            if rule is not None and rule.stage == given:
                parts[axis] = (given, rule.rule)
            else:
                parts[axis] = (given, f"the pathology report gives {given}, which the staging of the findings "
                                      + ("does not reproduce" if rule is not None else "cannot check"))
        elif rule is not None:
            parts[axis] = (rule.stage, rule.rule)
            derived.append(axis)
        else:
            f.drop(f"{axis} stage", "neither given nor derivable from the findings")
    if not parts:
        return None
    none = (None, "")
    f.tnm = Stage(system=name, title=system.title, T=parts.get("T", none)[0], T_rule=parts.get("T", none)[1],
                  N=parts.get("N", none)[0], N_rule=parts.get("N", none)[1], M=parts.get("M", none)[0],
                  M_rule=parts.get("M", none)[1], derived=tuple(derived))
    for axis in parts:
        f.sources[axis] = "derived" if axis in derived else f.sources.get("stage", "column")
    return f.tnm


def _given(value: str | None, system: TNMSystem, axis: str) -> str | None:
    """A stated stage folded onto the system's stages (T4b -> T4); None when it is not one of them."""
    if not value:
        return None
    stages = system.stages(axis)
    if value in stages:
        return value
    base = value.rstrip("abcd")
    return base if base in stages else None
