"""Task 3, TNM stage prediction (malignant cases): T, N and M as multiple choice over the
stages of the tumor's AJCC system, each reasoned from the measured findings to the rule of the
knowledge graph that produced the ground truth stage; round 1's stage is tentative
(vqa_common.impression) and round 2 confirms or revises it."""
from __future__ import annotations

from ..manifest import Sample
from .ground_truth import CaseTruth
from .knowledge import KnowledgeGraph
from .vqa_common import (DENSITY_WORD, SampleFactory, Step, article, choice, disp, impression, join, mm, plural,
                         revisits, words)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def t_stage(truth: CaseTruth, kg: KnowledgeGraph, f: SampleFactory, rng) -> Sample:
    tnm, organ = truth.tnm, truth.primary_organ
    les = truth.largest_primary()
    n = len(truth.lesions)
    block = choice(kg.tnm[tnm.system].stages("T"), tnm.T, None)
    multi = f"{words(n)} tumors, the largest" if n > 1 else "a solitary tumor"
    guess = impression(tnm.T, block.options, rng)
    steps = [
        Step(f"On the global view, a {DENSITY_WORD[les.density]} tumor of about {mm(les.diameter_mm)} is seen in "
             f"the {disp(organ)}.", f"Its extent suggests {guess}.", block.lettered(guess), [organ]),
        Step(f"The local view of the {disp(organ)} shows {multi} measuring {mm(les.diameter_mm)} in greatest "
             f"dimension, with {article(les.boundary)} {les.boundary} outer margin. By AJCC criteria, {tnm.T_rule}.",
             f"The tumor is {tnm.T}.", block.final, [organ], revisits(guess, tnm.T, guess)),
    ]
    return f.make("tnm", "T", f"What is the T stage of the {disp(organ)} tumor?", [organ], steps, block)


def n_stage(truth: CaseTruth, kg: KnowledgeGraph, f: SampleFactory, rng) -> Sample:
    tnm, organ = truth.tnm, truth.primary_organ
    station = kg.organs[organ].station
    block = choice(kg.tnm[tnm.system].stages("N"), tnm.N, None)
    k = len(truth.nodes)
    if k:
        seen = (f"{words(k)} enlarged {plural(k, 'lymph node is', 'lymph nodes are')} seen in the {station} "
                "region")
        sizes = join([mm(nd.short_axis_mm) for nd in sorted(truth.nodes, key=lambda nd: -nd.short_axis_mm)])
        local = (f"Around the {disp(organ)}, {words(k)} {station} {plural(k, 'lymph node has', 'lymph nodes have')} "
                 f"a short axis over 10 mm ({sizes}).")
    else:
        seen = "no enlarged lymph node is evident nearby"
        local = f"Around the {disp(organ)}, no {station} lymph node has a short axis over 10 mm."
    guess = impression(tnm.N, block.options, rng)
    steps = [
        Step(f"The primary tumor lies in the {disp(organ)}; {seen}.", f"The nodal status suggests {guess}.",
             block.lettered(guess), [organ]),
        Step(f"{local} {_cap(tnm.N_rule)}.", f"The nodal stage is {tnm.N}.", block.final, [organ],
             revisits(guess, tnm.N, guess)),
    ]
    return f.make("tnm", "N", f"What is the N stage of the {disp(organ)} tumor?", [organ], steps, block)


def m_stage(truth: CaseTruth, kg: KnowledgeGraph, f: SampleFactory, rng) -> Sample:
    tnm, organ = truth.tnm, truth.primary_organ
    block = choice(kg.tnm[tnm.system].stages("M"), tnm.M, None)
    sites = [s for s in kg.organs[organ].metastasis_sites if s in truth.organs_present]
    mets = truth.metastases
    guess = impression(tnm.M, block.options, rng)
    closing = revisits(guess, tnm.M, guess)
    if not sites:
        steps = [
            Step(f"The primary tumor lies in the {disp(organ)}; no distant lesion is seen in the imaged field.",
                 f"The distant status suggests {guess}.", block.lettered(guess), [organ]),
            Step(f"Review of the imaged field beyond the {disp(organ)} finds no distant lesion. "
                 f"{_cap(tnm.M_rule)}.", f"The metastasis stage is {tnm.M}.", block.final, [organ], closing),
        ]
        return f.make("tnm", "M", f"What is the M stage of the {disp(organ)} tumor?", [organ], steps, block)
    site = sites[0]
    if mets:
        n = len(mets)
        largest = max(m.diameter_mm for m in mets)
        glob = f"{plural(n, 'a round hypodense lesion is', 'round hypodense lesions are')} seen in the {disp(site)}"
        local = (f"The local view of the {disp(site)} shows {words(n)} round hypodense "
                 f"{plural(n, 'lesion', 'lesions')} with rim enhancement, up to {mm(largest)}, consistent with "
                 f"{plural(n, 'a metastasis', 'metastases')}.")
    else:
        glob = f"the {disp(site)} shows no focal lesion"
        local = f"The local view of the {disp(site)} shows no focal lesion suspicious for metastasis."
    steps = [
        Step(f"The primary tumor lies in the {disp(organ)}, and the {disp(site)} is its usual site of distant spread; "
             f"{glob}.", f"The distant status suggests {guess}.", block.lettered(guess), [organ, site]),
        Step(f"{local} {_cap(tnm.M_rule)}.", f"The metastasis stage is {tnm.M}.", block.final, [site], closing),
    ]
    return f.make("tnm", "M", f"What is the M stage of the {disp(organ)} tumor?", [organ], steps, block)


def tnm_samples(truth: CaseTruth, kg: KnowledgeGraph, f: SampleFactory, rng) -> list[Sample]:
    if truth.tnm is None or not truth.lesions:
        return []
    return [t_stage(truth, kg, f, rng), n_stage(truth, kg, f, rng), m_stage(truth, kg, f, rng)]
