"""TNM staging of a synthetic case from its measured lesions, by the knowledge graph's rules.

Rules of each axis are tried in order; the first whose conditions all hold gives the stage and
the sentence recorded as the reason:
- T: ``max_mm`` (largest primary lesion <= it), ``max_count`` (number of primary lesions
  <= it), ``boundary`` (outer margin of the largest primary lesion);
- N: ``max_nodes`` (enlarged regional nodes <= it);
- M: ``max_metastases`` (distant metastases <= it).
"""
from __future__ import annotations

from .ground_truth import LesionTruth, StageTruth
from .knowledge import KnowledgeGraph, StageRule, TNMSystem


def _holds(rule: StageRule, largest_mm: float = 0.0, count: int = 0, boundary: str | None = None,
           nodes: int = 0, metastases: int = 0) -> bool:
    if rule.max_mm is not None and largest_mm > rule.max_mm:
        return False
    if rule.max_count is not None and count > rule.max_count:
        return False
    if rule.boundary is not None and boundary != rule.boundary:
        return False
    if rule.max_nodes is not None and nodes > rule.max_nodes:
        return False
    if rule.max_metastases is not None and metastases > rule.max_metastases:
        return False
    return True


def first_rule(rules: tuple[StageRule, ...], **facts) -> StageRule:
    for rule in rules:
        if _holds(rule, **facts):
            return rule
    raise ValueError("no TNM rule applies; the last rule of each axis must be unconditional")


def stage_t(system: TNMSystem, primaries: list[LesionTruth]) -> StageRule:
    largest = max(primaries, key=lambda les: les.diameter_mm)
    return first_rule(system.T, largest_mm=largest.diameter_mm, count=len(primaries), boundary=largest.boundary)


def stage_n(system: TNMSystem, n_nodes: int) -> StageRule:
    return first_rule(system.N, nodes=n_nodes)


def stage_m(system: TNMSystem, n_metastases: int) -> StageRule:
    return first_rule(system.M, metastases=n_metastases)


def stage_case(kg: KnowledgeGraph, pathology: str | None, primaries: list[LesionTruth],
               nodes: list[LesionTruth], metastases: list[LesionTruth]) -> StageTruth | None:
    """TNM of a malignant case; None for normal and benign cases. Only enlarged nodes (short
    axis above the knowledge graph's threshold) count as positive."""
    if pathology is None or not primaries:
        return None
    name = kg.pathologies[pathology].tnm
    if name is None:
        return None
    system = kg.tnm[name]
    threshold = float(kg.lymph_node["enlarged_short_axis_mm"])
    positive = [n for n in nodes if n.short_axis_mm > threshold]
    t, n, m = stage_t(system, primaries), stage_n(system, len(positive)), stage_m(system, len(metastases))
    return StageTruth(system=name, title=system.title, T=t.stage, T_rule=t.rule, N=n.stage, N_rule=n.rule,
                      M=m.stage, M_rule=m.rule)
