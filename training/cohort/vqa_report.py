"""Task 4, chain-of-thought report: findings -> impression -> pathology (and TNM), in three
rounds for a lesion (global suspicion naming the organs, local view naming the substructure,
full report) and two for a normal study."""
from __future__ import annotations

from ..manifest import Sample
from .ground_truth import CaseTruth
from .knowledge import KnowledgeGraph
from .vqa_common import DENSITY_WORD, DIGESTIVE, SampleFactory, Step, disp, join, mm, plural, words

QUESTION = "Write a CT report for this abdominal CT with findings, impression and the reasoning that links them."


def _nodes_sentence(truth: CaseTruth, kg: KnowledgeGraph) -> str:
    k = len(truth.nodes)
    if truth.category != "malignant":
        return ""
    if not k:
        return " No enlarged regional lymph node is seen."
    station = kg.organs[truth.primary_organ].station
    largest = max(nd.short_axis_mm for nd in truth.nodes)
    return (f" {words(k).capitalize()} enlarged {station} {plural(k, 'lymph node is', 'lymph nodes are')} present, "
            f"the largest with a short axis of {mm(largest)}.")


def _mets_sentence(truth: CaseTruth) -> tuple[str, list[str]]:
    mets = truth.metastases
    if not mets:
        return (" No distant metastasis is seen." if truth.category == "malignant" else ""), []
    site = mets[0].organ
    n = len(mets)
    return (f" {words(n).capitalize()} round hypodense {plural(n, 'lesion', 'lesions')} with rim enhancement in the "
            f"{disp(site)} {plural(n, 'suggests a metastasis', 'suggest metastases')}."), [site]


def _normal(truth: CaseTruth, f: SampleFactory) -> Sample:
    organs = [o for o in DIGESTIVE if o in truth.organs_present]
    names = join([disp(o) for o in organs])
    steps = [
        Step(f"On the global view, the {names} show no focal mass.", "No tumor is suspected.", "no abnormality",
             organs),
        Step(f"Findings: the {names} are normal in size with homogeneous attenuation; no focal lesion, wall "
             "thickening or enlarged lymph node is seen. Impression: there is no imaging evidence of tumor.",
             "Normal study of the digestive organs.", "no abnormality", organs),
    ]
    return f.make("report", "report", QUESTION, [], steps)


def report_sample(truth: CaseTruth, kg: KnowledgeGraph, f: SampleFactory) -> Sample:
    les = truth.largest_primary()
    if les is None:
        return _normal(truth, f)
    organ, part = les.organ, les.substructure
    path = kg.pathologies[truth.pathology]
    kind = "malignant" if path.malignant else "benign"
    mets_text, met_sites = _mets_sentence(truth)
    spread = f"; round lesions are also seen in the {disp(met_sites[0])}" if met_sites else ""
    n = len(truth.lesions)
    count = f"{words(n).capitalize()} lesions are seen, the largest being a" if n > 1 else "There is a"
    others = f", showing {join(les.others)}" if les.others else ""
    stage = f", staged {truth.tnm.label}" if truth.tnm else ""
    final = f"{path.display}{stage.replace(', staged', ',')}"
    where = f"the {disp(part)}" if part else f"the {disp(organ)}"
    steps = [
        Step(f"On the global view, a {DENSITY_WORD[les.density]} lesion is seen in the {disp(organ)}{spread}.",
             f"A {kind} lesion of the {disp(organ)} is suspected.", f"{kind} lesion of the {disp(organ)}",
             [organ] + met_sites),
    ]
    if part:
        steps.append(Step(f"The local view of the {disp(organ)} places the lesion in the {disp(part)}.",
                          f"The lesion arises from the {disp(part)}.", f"{path.display} of the {disp(part)}",
                          [organ, part]))
    findings = (f"Findings: {count} {mm(les.diameter_mm)} {DENSITY_WORD[les.density]} lesion with {les.shape} "
                f"shape and {les.boundary} margins in {where}{others}.{_nodes_sentence(truth, kg)}{mets_text}")
    reasoning = (f"{findings} Impression: the {path.finding} suggests {path.impression}. Pathology: the features "
                 f"are consistent with {path.display}{stage}.")
    steps.append(Step(reasoning, f"{path.display} of {where}{stage}.", final,
                      [organ] + ([part] if part else []) + met_sites))
    return f.make("report", "report", QUESTION, [], steps)
