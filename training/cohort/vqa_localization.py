"""Task 1, localization: organ_position (which organ, multiple choice), tumor_position (which
substructure, open) and segment_location (which substructure, multiple choice).

Round 1 reasons on the global view, names the organs (or sub-regions) to examine and gives a
tentative answer (vqa_common.impression); round 2 decides from their local views, confirming or
revising it."""
from __future__ import annotations

import numpy as np

from inference.labels import merged_labels

from ..manifest import Sample
from .ground_truth import CaseTruth
from .vqa_common import (DIGESTIVE, SampleFactory, Step, choice, density_word, disp, dominant_organ, impression, join,
                          lesion_phrase, revisits, sized)

NO_LESION = "no lesion"
ORGAN_QUESTIONS = ("Which organ harbours the dominant lesion?", "In which organ does the main lesion arise?",
                   "Which organ contains the dominant lesion?")
PART_QUESTIONS = ("Which sub-region of the {organ} contains the lesion?",
                  "In which part of the {organ} is the lesion centred?")


def organ_position(truth: CaseTruth, f: SampleFactory, rng: np.random.Generator) -> Sample:
    """Round 2 gives one verdict per candidate organ, in the order their tokens came (the options')."""
    present = [o for o in DIGESTIVE if o in truth.organs_present]
    main = dominant_organ(truth)
    others = [o for o in present if o != main]
    picked = [others[i] for i in sorted(rng.choice(len(others), size=min(3 if main is None else 2, len(others)),
                                                   replace=False))]
    organs = ([main] if main else []) + picked
    organs = [organs[i] for i in rng.permutation(len(organs))]
    truth_option = disp(main) if main else NO_LESION
    block = choice([disp(o) for o in organs] + [NO_LESION], truth_option, None)
    question = str(rng.choice(ORGAN_QUESTIONS))
    guess = impression(truth_option, block.options, rng)
    by_display = {disp(o): o for o in organs}
    candidates = join([disp(o) for o in organs])
    if guess == NO_LESION:
        first = Step(f"On the global view, no definite focal mass is seen; the {candidates} need the local views.",
                     "No dominant lesion is evident yet.", block.lettered(guess), [])
        doubt = "a normal study"
    else:
        first = Step(f"On the global view, a focal abnormality is suspected in the {guess}; the {candidates} need "
                     "the local views.", f"The lesion may arise from the {guess}.", block.lettered(guess),
                     [by_display[guess]])
        doubt = f"a lesion in the {guess}"
    evidence = f"On the local views, {organ_verdicts(truth, organs)}."
    summary = f"The dominant lesion is located in the {disp(main)}." if main else "All candidate organs are normal."
    named = organs + ([] if guess == NO_LESION else [by_display[guess]])
    steps = [first, Step(evidence, summary, block.final, named + ([main] if main else []),
                         revisits(guess, truth_option, doubt))]
    return f.make("localization", "organ_position", question, list(organs), steps, block)


def organ_verdicts(truth: CaseTruth, organs: list[str]) -> str:
    """One verdict per organ, in the order given (their tokens'): "the stomach shows a 32 mm ... lesion; ..."."""
    main = dominant_organ(truth)
    verdicts = []
    for o in organs:
        if o == main:
            verdicts.append(f"the {disp(o)} shows {lesion_phrase(truth.largest_primary())}")
        elif truth.lesions_in(o):
            verdicts.append(f"the {disp(o)} shows only smaller lesions in keeping with secondary spread")
        else:
            verdicts.append(f"the {disp(o)} shows no focal lesion")
    return "; ".join(verdicts)


def part_verdicts(truth: CaseTruth, parts: list[str], centre: str) -> str:
    """One verdict per sub-region, in the order given: "the gastric cardia is clear; ..."."""
    return "; ".join(_part_verdict(truth, p, centre) for p in parts)


def parts_of(truth: CaseTruth, organ: str) -> list[str]:
    """The organ's sub-regions in the field of view, in label order."""
    return [p for p in truth.parts_present if _parent(p) == organ]


def _part_verdict(truth: CaseTruth, part: str, centre: str) -> str:
    if part == centre:
        return f"the {disp(part)} holds the lesion centre"
    if truth.organ_abnormal.get(part):
        return f"the {disp(part)} holds a smaller lesion"
    return f"the {disp(part)} is clear"


def tumor_position(truth: CaseTruth, f: SampleFactory, rng: np.random.Generator) -> Sample | None:
    """Round 1 names every sub-region of the organ in view, so round 2 judges each by its tokens."""
    les = truth.largest_primary()
    if les is None or les.substructure is None:
        return None
    organ, part = les.organ, les.substructure
    parts = parts_of(truth, organ)
    guess = impression(part, parts, rng)
    question = f"Where is the lesion located in the {disp(organ)}? Identify its sub-region."
    steps = [
        Step(f"On the global view, a {density_word(les.density)} lesion is seen in the {disp(organ)}; the "
             f"{join([disp(p) for p in parts])} need the local view. It appears to project over the {disp(guess)}.",
             f"The lesion may arise from the {disp(guess)}.", disp(guess), [organ] + parts),
        Step(f"On the local views, {part_verdicts(truth, parts, part)}."
             f"{sized(les.diameter_mm, ' The lesion measures ', '.')}",
             f"The lesion arises from the {disp(part)}.", disp(part), parts,
             revisits(guess, part, f"the {disp(guess)}")),
    ]
    return f.make("localization", "tumor_position", question, [organ], steps)


def segment_location(truth: CaseTruth, f: SampleFactory, rng: np.random.Generator) -> Sample | None:
    les = truth.largest_primary()
    if les is None or les.substructure is None:
        return None
    organ, part = les.organ, les.substructure
    siblings = [p for p in truth.parts_present if p != part and _parent(p) == organ]
    if len(siblings) < 2:
        return None  # e.g. only the lower esophagus is in the field of view
    distractors = [siblings[i] for i in sorted(rng.choice(len(siblings), size=min(3, len(siblings)), replace=False))]
    parts = [part] + distractors
    block = choice([disp(p) for p in parts], disp(part), rng)
    order = [next(p for p in parts if disp(p) == o) for o in block.options]
    question = str(rng.choice(PART_QUESTIONS)).format(organ=disp(organ))
    guess = impression(part, order, rng)
    steps = [
        Step(f"On the global view, a lesion of the {disp(organ)} projects over the {disp(guess)}.",
             f"The {disp(guess)} is the most likely site.", block.lettered(disp(guess)), [organ, guess]),
        Step(f"On the local views, {part_verdicts(truth, order, part)}.",
             f"The lesion lies in the {disp(part)}.", block.final, order, revisits(guess, part, f"the {disp(guess)}")),
    ]
    return f.make("localization", "segment_location", question, [organ] + order, steps, block)


def _parent(part: str) -> str | None:
    table = merged_labels()
    lab = table.by_name(part)
    return table.by_id(lab.parent).name if lab.parent is not None else None


def localization_samples(truth: CaseTruth, f: SampleFactory, rng: np.random.Generator) -> list[Sample]:
    out = [organ_position(truth, f, rng)]
    for make in (tumor_position, segment_location):
        s = make(truth, f, rng)
        if s is not None:
            out.append(s)
    return out
