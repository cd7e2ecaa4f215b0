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
from .vqa_common import (DENSITY_WORD, DIGESTIVE, SampleFactory, Step, choice, disp, impression, join, lesion_phrase,
                          revisits)

NO_LESION = "no lesion"
ORGAN_QUESTIONS = ("Which organ harbours the dominant lesion?", "In which organ does the main lesion arise?",
                   "Which organ contains the dominant lesion?")
PART_QUESTIONS = ("Which sub-region of the {organ} contains the lesion?",
                  "In which part of the {organ} is the lesion centred?")


def organ_position(truth: CaseTruth, f: SampleFactory, rng: np.random.Generator) -> Sample:
    present = [o for o in DIGESTIVE if o in truth.organs_present]
    main = truth.primary_organ if truth.lesions else None
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
    opening = revisits(guess, truth_option, doubt)
    if main is None:
        steps = [first, Step(f"{opening}: the {candidates} show homogeneous attenuation without a focal lesion or "
                             "mass effect.", "All candidate organs are normal.", block.final, organs)]
        return f.make("localization", "organ_position", question, list(organs), steps, block)
    les = truth.largest_primary()
    rest = []
    for o in organs:
        if o == main:
            continue
        if truth.lesions_in(o):
            rest.append(f"the {disp(o)} shows only smaller lesions in keeping with secondary spread")
        else:
            rest.append(f"the {disp(o)} shows no focal lesion")
    named = ([by_display[guess]] if guess not in (NO_LESION, truth_option) else []) + [main] + organs
    steps = [first, Step(f"{opening}: they show {lesion_phrase(les)} within the {disp(main)}"
                         + (f", while {join(rest)}." if rest else "."),
                         f"The dominant lesion is located in the {disp(main)}.", block.final, named)]
    return f.make("localization", "organ_position", question, list(organs), steps, block)


def tumor_position(truth: CaseTruth, f: SampleFactory, rng: np.random.Generator) -> Sample | None:
    """Round 1 names every sub-region of the organ in view, so round 2 compares their tokens."""
    les = truth.largest_primary()
    if les is None or les.substructure is None:
        return None
    organ, part = les.organ, les.substructure
    parts = [p for p in truth.parts_present if _parent(p) == organ]
    guess = impression(part, parts, rng)
    question = f"Where is the lesion located in the {disp(organ)}? Identify its sub-region."
    steps = [
        Step(f"On the global view, a {DENSITY_WORD[les.density]} lesion is seen in the {disp(organ)}, projecting "
             f"over the {disp(guess)}; the {join([disp(p) for p in parts])} need the local view.",
             f"The lesion may arise from the {disp(guess)}.", disp(guess), [organ, guess] + parts),
        Step(f"{revisits(guess, part, f'the {disp(guess)}')}: the lesion centre lies within the {disp(part)}, "
             f"and most of the lesion, measuring {int(round(les.diameter_mm))} mm, lies inside it.",
             f"The lesion arises from the {disp(part)}.", disp(part), ([guess] if guess != part else []) + [part]),
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
    wrong = [p for p in order if p != part]
    guess = impression(part, order, rng)
    steps = [
        Step(f"On the global view, a lesion of the {disp(organ)} projects over the {disp(guess)}.",
             f"The {disp(guess)} is the most likely site.", block.lettered(disp(guess)), [organ, guess]),
        Step(f"{revisits(guess, part, f'the {disp(guess)}')}: the lesion centre lies inside the {disp(part)}; the "
             f"{join([disp(p) for p in wrong])} do not contain it.", f"The lesion lies in the {disp(part)}.",
             block.final, ([guess] if guess != part else []) + [part] + wrong),
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
