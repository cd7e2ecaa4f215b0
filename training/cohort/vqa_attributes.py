"""Task 2, lesion attributes of the largest primary lesion: shape, boundary, density (multiple
choice), count (open, also for normal cases and for metastases) and others (open).

Round 1 gives the global impression of the attribute (tentative, vqa_common.impression); round 2
confirms or revises it on the organ's local view with the finding the knowledge graph associates
with the value (and measured numbers)."""
from __future__ import annotations

import numpy as np

from ..manifest import Sample
from .ground_truth import CaseTruth, LesionTruth
from .knowledge import BOUNDARIES, SHAPES, KnowledgeGraph
from .vqa_common import (DENSITY_OPTION, DIGESTIVE, SampleFactory, Step, article, choice, density_word, disp, hu,
                         impression, join, others_phrase, plural, revisits, sized, sizes_list, words)

DENSITY_OPTIONS = ("hypodense", "isodense", "hyperdense", "mixed density")


def _surround(truth: CaseTruth, organ: str, kg: KnowledgeGraph) -> str:
    return "wall" if kg.organs[organ].hollow else "parenchyma"


def shape(truth: CaseTruth, les: LesionTruth, kg: KnowledgeGraph, f: SampleFactory, rng) -> Sample:
    organ = les.organ
    block = choice(list(SHAPES), les.shape, rng)
    guess = impression(les.shape, block.options, rng)
    steps = [
        Step(f"On the global view, a {density_word(les.density)} lesion is seen in the {disp(organ)}; "
             f"its outline appears {guess}.", f"The lesion looks {guess}.", block.lettered(guess), [organ]),
        Step(f"The local view of the {disp(organ)} shows {kg.describe('shape', les.shape)}"
             f"{sized(les.diameter_mm, ', with a long axis of ')}.", f"The lesion shape is {les.shape}.", block.final,
             [organ],
             revisits(guess, les.shape, f"a {guess} outline")),
    ]
    return f.make("attributes", "shape", f"What is the shape of the largest lesion in the {disp(organ)}?", [organ],
                  steps, block)


def boundary(truth: CaseTruth, les: LesionTruth, kg: KnowledgeGraph, f: SampleFactory, rng) -> Sample:
    organ = les.organ
    block = choice(list(BOUNDARIES), les.boundary, rng)
    guess = impression(les.boundary, block.options, rng)
    steps = [
        Step(f"On the global view, a {density_word(les.density)} lesion is seen in the {disp(organ)}; "
             f"its margin appears {guess}.", f"The margin looks {guess}.", block.lettered(guess), [organ]),
        Step(f"The local view of the {disp(organ)} shows {kg.describe('boundary', les.boundary)}.",
             f"The lesion boundary is {les.boundary}.", block.final, [organ],
             revisits(guess, les.boundary, f"{article(guess)} {guess} margin")),
    ]
    return f.make("attributes", "boundary", f"How is the boundary of the largest lesion in the {disp(organ)}?",
                  [organ], steps, block)


def density(truth: CaseTruth, les: LesionTruth, kg: KnowledgeGraph, f: SampleFactory, rng) -> Sample:
    organ = les.organ
    answer = DENSITY_OPTION[les.density]
    block = choice(list(DENSITY_OPTIONS), answer, rng)
    guess = impression(answer, block.options, rng)
    measured = "" if les.attenuation_hu is None else (
        f", with an attenuation of about {hu(les.attenuation_hu)} against {hu(les.reference_hu)} in the surrounding "
        f"{_surround(truth, organ, kg)}")
    steps = [
        Step(f"On the global view, a focal lesion in the {disp(organ)} appears {guess}.",
             f"The lesion looks {guess}.", block.lettered(guess), [organ]),
        Step(f"The local view of the {disp(organ)} shows {kg.describe('density', les.density)}{measured}.",
             f"The lesion is {answer}.", block.final, [organ],
             revisits(guess, answer, f"{guess} attenuation")),
    ]
    return f.make("attributes", "density", f"What is the density of the largest lesion in the {disp(organ)}?",
                  [organ], steps, block)


def count(truth: CaseTruth, organ: str, f: SampleFactory, rng, suffix: str = "") -> Sample:
    found = sorted(truth.lesions_in(organ), key=lambda les: -(les.diameter_mm or 0.0))
    n = len(found)
    guess = int(impression(str(n), [str(k) for k in (n - 1, n + 1) if k >= 0], rng))
    question = f"How many focal lesions are seen in the {disp(organ)}?"
    if guess == 0:
        first = Step(f"On the global view, no focal lesion is seen in the {disp(organ)}.", "No lesion is counted.",
                     "0", [organ])
    else:
        first = Step(f"On the global view, {words(guess)} focal {plural(guess, 'lesion is', 'lesions are')} seen in "
                     f"the {disp(organ)}.", f"{words(guess).capitalize()} {plural(guess, 'lesion is', 'lesions are')} "
                     "counted.", str(guess), [organ])
    closing = revisits(str(guess), str(n), f"{words(guess)} {plural(guess, 'lesion', 'lesions')}")
    if n == 0:
        second = Step(f"The local view of the {disp(organ)} shows homogeneous attenuation without a hypodense or "
                      "hyperdense focus.", f"The {disp(organ)} contains no focal lesion.", "0", [organ], closing)
    else:
        known = [les.diameter_mm for les in found if les.diameter_mm is not None]
        sizes = (f" measuring {sizes_list(known)}" if len(known) == n else
                 f", the largest measuring {sizes_list(known[:1])}" if known else "")
        second = Step(f"The local view of the {disp(organ)} shows {words(n)} separate "
                      f"{plural(n, 'lesion', 'lesions')}{sizes}, with no further focus.",
                      f"The {disp(organ)} contains {words(n)} {plural(n, 'lesion', 'lesions')}.", str(n), [organ],
                      closing)
    return f.make("attributes", "count", question, [organ], [first, second], suffix=suffix)


def _organ_features(kg: KnowledgeGraph, organ: str) -> list[str]:
    """The additional features the organ's pathologies show (a wrong impression stays about this organ:
    "pancreatic duct dilatation" for a liver lesion would send the IIR loop to the pancreas)."""
    return sorted({o for p in kg.pathologies_of(organ) for q in p.patterns for group in q.others for o in group})


def others(truth: CaseTruth, les: LesionTruth, kg: KnowledgeGraph, f: SampleFactory, rng) -> Sample:
    organ = les.organ
    answer = others_phrase(les.others)
    guess = impression(answer, ["none"] if les.others else _organ_features(kg, organ), rng)
    if les.others:
        local = (f"The local view of the {disp(organ)} shows "
                 f"{join([kg.describe('others', o) for o in les.others])}, which indicates {answer}.")
    else:
        local = (f"The local view of the {disp(organ)} shows no calcification, necrosis, fluid attenuation, "
                 "rim enhancement, duct dilatation or wall thickening.")
    seen = "no additional feature is evident" if guess == "none" else f"it suggests {guess}"
    steps = [
        Step(f"On the global view, a {density_word(les.density)} lesion is seen in the {disp(organ)}; {seen}.",
             "No additional feature is evident." if guess == "none" else f"The additional feature may be {guess}.",
             guess, [organ]),
        Step(local, f"The additional feature is {answer}." if les.others else "There is no additional feature.",
             answer, [organ], revisits(guess, answer, "no additional feature" if guess == "none" else guess)),
    ]
    question = (f"Besides shape, boundary and density, what other imaging feature does the largest lesion in the "
                f"{disp(organ)} show?")
    return f.make("attributes", "others", question, [organ], steps)


def attribute_samples(truth: CaseTruth, kg: KnowledgeGraph, f: SampleFactory, rng: np.random.Generator) -> list[Sample]:
    les = truth.largest_primary()
    if les is None:
        present = [o for o in DIGESTIVE if o in truth.organs_present]
        return [count(truth, str(rng.choice(present)), f, rng)] if present else []
    out = [shape(truth, les, kg, f, rng), boundary(truth, les, kg, f, rng), density(truth, les, kg, f, rng),
           count(truth, les.organ, f, rng), others(truth, les, kg, f, rng)]
    met_organs = sorted({m.organ for m in truth.metastases} - {les.organ})
    out += [count(truth, o, f, rng, suffix=f"_{o}") for o in met_organs]
    return out
