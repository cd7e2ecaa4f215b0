"""Task 4, chain-of-thought report: findings -> impression -> pathology (and TNM). For a lesion: a
tentative suspicion on the global view naming every digestive organ in view, per-organ verdicts from
their tokens (naming the organ's sub-regions), then the sub-region verdicts with the full report; two
rounds where the organ has no sub-regions or the study is normal (the verdicts with the report). The
loop stops at the first round that names nothing new, so the report shares the last round."""
from __future__ import annotations

from ..manifest import Sample
from .ground_truth import CaseTruth
from .knowledge import KnowledgeGraph
from .vqa_common import (DENSITY_WORD, DIGESTIVE, SampleFactory, Step, article, disp, dominant_organ, impression, join,
                         met_words, plural, revisits, sized, words)
from .vqa_localization import NO_LESION, organ_verdicts, part_verdicts, parts_of

QUESTION = "Write a CT report for this abdominal CT with findings, impression and the reasoning that links them."


def _nodes_sentence(truth: CaseTruth, kg: KnowledgeGraph) -> str:
    k = len(truth.nodes)
    if truth.category != "malignant":
        return ""
    if not k:
        return " No enlarged regional lymph node is seen."
    station = kg.organs[truth.primary_organ].station
    known = [nd.short_axis_mm for nd in truth.nodes if nd.short_axis_mm is not None]
    return (f" {words(k).capitalize()} enlarged {station} {plural(k, 'lymph node is', 'lymph nodes are')} present"
            f"{sized(max(known) if known else None, ', the largest with a short axis of ')}.")


def _mets_sentence(truth: CaseTruth) -> tuple[str, list[str]]:
    mets = truth.metastases
    if not mets:
        return (" No distant metastasis is seen." if truth.category == "malignant" else ""), []
    site = mets[0].organ
    n = len(mets)
    adjectives, feature = met_words(mets)
    described = f"{adjectives} " if adjectives else ""
    return (f" {words(n).capitalize()} {described}{plural(n, 'lesion', 'lesions')}{feature} "
            f"in the {disp(site)} {plural(n, 'suggests a metastasis', 'suggest metastases')}."), [site]


def _described(les) -> str:
    """"32 mm hypodense lesion with round shape and well-defined margins"; what is not known left out."""
    head = " ".join(w for w in (sized(les.diameter_mm), DENSITY_WORD.get(les.density), "lesion") if w)
    with_ = [w for w in (les.shape and f"{les.shape} shape", les.boundary and f"{les.boundary} margins") if w]
    return head + (f" with {' and '.join(with_)}" if with_ else "")


def _candidates(truth: CaseTruth, met_sites: list[str]) -> list[str]:
    """Round 1 sends every digestive organ in view (and any distant site) to the local views."""
    organs = [o for o in DIGESTIVE if o in truth.organs_present]
    return organs + [s for s in met_sites if s not in organs]


def _first_round(truth: CaseTruth, organs: list[str], rng) -> tuple[Step, str]:
    """Round 1: a tentative impression from the global view (vqa_common.impression), naming the organs
    to examine; returns the round and its guess (an organ, or NO_LESION)."""
    main = dominant_organ(truth)
    guess = impression(main or NO_LESION, [o for o in organs if o in DIGESTIVE] + [NO_LESION], rng)
    names = join([disp(o) for o in organs])
    if guess == NO_LESION:
        return Step(f"On the global view, no definite focal mass is seen; the {names} need the local views.",
                    "No tumor is evident yet.", "no abnormality", organs), NO_LESION
    return Step(f"On the global view, the {names} need the local views; a focal abnormality is suspected in the "
                f"{disp(guess)}.", f"A lesion of the {disp(guess)} is suspected.",
                f"possible lesion of the {disp(guess)}", organs), guess


def _doubt(guess: str) -> str:
    return "a normal study" if guess == NO_LESION else f"a lesion in the {disp(guess)}"


def _normal(truth: CaseTruth, f: SampleFactory, rng) -> Sample:
    organs = _candidates(truth, [])
    first, guess = _first_round(truth, organs, rng)
    steps = [
        first,
        Step(f"On the local views, {organ_verdicts(truth, organs)}. Findings: the {join([disp(o) for o in organs])} "
             "are normal in size with homogeneous attenuation; no focal lesion, wall thickening or enlarged lymph "
             "node is seen. Impression: there is no imaging evidence of tumor.",
             "Normal study of the digestive organs.", "no abnormality", organs,
             revisits(guess, NO_LESION, _doubt(guess))),
    ]
    return f.make("report", "report", QUESTION, [], steps)


def report_sample(truth: CaseTruth, kg: KnowledgeGraph, f: SampleFactory, rng) -> Sample:
    """Round 1 suspects an organ and sends the candidates to the local views; round 2 judges each from its
    tokens and names the organ's sub-regions; round 3 judges those and writes the report."""
    les = truth.largest_primary()
    if les is None:
        return _normal(truth, f, rng)
    organ, part = les.organ, les.substructure
    path = kg.pathologies[truth.pathology]
    kind = "malignant" if path.malignant else "benign"
    mets_text, met_sites = _mets_sentence(truth)
    organs = _candidates(truth, met_sites)
    first, guess = _first_round(truth, organs, rng)
    parts = parts_of(truth, organ) if part else []
    sub_regions = f" The {join([disp(p) for p in parts])} need the local views." if parts else ""
    organ_step = Step(f"On the local views, {organ_verdicts(truth, organs)}.{sub_regions}",
                      f"The dominant lesion is located in the {disp(organ)}.", f"{kind} lesion of the {disp(organ)}",
                      [organ] + parts, revisits(guess, organ, _doubt(guess)))
    n = len(truth.lesions)
    described = _described(les)
    count = (f"{words(n).capitalize()} lesions are seen, the largest being {article(described)}" if n > 1
             else f"There is {article(described)}")
    others = f", showing {join(les.others)}" if les.others else ""
    stage = f", staged {truth.tnm.label}" if truth.tnm else ""
    final = f"{path.display}{stage.replace(', staged', ',')}"
    where = f"the {disp(part)}" if part else f"the {disp(organ)}"
    findings = f"Findings: {count} {described} in {where}{others}.{_nodes_sentence(truth, kg)}{mets_text}"
    report = (f"{findings} Impression: the {path.finding} suggests {path.impression}. Pathology: the features "
              f"are consistent with {path.display}{stage}.")
    summary = f"{path.display} of {where}{stage}."
    if not part:  # nothing new to examine after the organ verdicts: the report closes that round
        last = Step(f"{organ_step.reasoning} {report}", summary, final, [organ] + met_sites, organ_step.revisit)
        return f.make("report", "report", QUESTION, [], [first, last])
    last = Step(f"On the local views, {part_verdicts(truth, parts, part)}. {report}", summary, final,
                [organ, part] + met_sites)
    return f.make("report", "report", QUESTION, [], [first, organ_step, last])
