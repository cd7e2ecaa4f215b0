"""Task 3, TNM stage prediction (malignant cases): T, N and M as multiple choice over the
stages of the tumor's AJCC system, each reasoned from the measured findings to the rule of the
knowledge graph that produced the ground truth stage; round 1's stage is tentative
(vqa_common.impression) and round 2 confirms or revises it."""
from __future__ import annotations

from ..manifest import Sample
from .ground_truth import CaseTruth
from .knowledge import KnowledgeGraph
from .vqa_common import (SampleFactory, Step, article, choice, density_word, disp, impression, met_words, mm, plural,
                         revisits, sized, sizes_list, words)


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
        Step(f"On the global view, a {density_word(les.density)} tumor{sized(les.diameter_mm, ' of about ')} is seen "
             f"in the {disp(organ)}.", f"Its extent suggests {guess}.", block.lettered(guess), [organ]),
        Step(f"The local view of the {disp(organ)} shows {multi}"
             f"{sized(les.diameter_mm, ' measuring ', ' in greatest dimension')}"
             f"{'' if les.boundary is None else f', with {article(les.boundary)} {les.boundary} outer margin'}. "
             f"By AJCC criteria, {tnm.T_rule}.",
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
        known = sorted((nd.short_axis_mm for nd in truth.nodes if nd.short_axis_mm is not None), reverse=True)
        sizes = f" ({sizes_list(known)})" if len(known) == k else f" (the largest {mm(known[0])})" if known else ""
        local = (f"Around the {disp(organ)}, {words(k)} {station} {plural(k, 'lymph node has', 'lymph nodes have')} "
                 f"a short axis over 10 mm{sizes}.")
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
        known = [m.diameter_mm for m in mets if m.diameter_mm is not None]
        adjectives, feature = met_words(mets)
        described = f"{adjectives} " if adjectives else ""
        one = f"{article(described or 'lesion')} {described}lesion is"
        glob = f"{plural(n, one, f'{described}lesions are')} seen in the {disp(site)}"
        local = (f"The local view of the {disp(site)} shows {words(n)} {described}"
                 f"{plural(n, 'lesion', 'lesions')}{feature},{sized(max(known) if known else None, ' up to ', ',')} "
                 "consistent with "
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
