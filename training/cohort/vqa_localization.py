"""Task 1, localization: organ_position (which organ, multiple choice), tumor_position (which
substructure, open) and segment_location (which substructure, multiple choice).

Round 1 reasons on the global view and names the organ; later rounds use the organ's (and then
the substructure's) local view to refine and confirm. Round 1's answer is already a valid,
possibly coarser, answer ("pancreas" before "pancreatic head")."""
from __future__ import annotations

import numpy as np

from inference.labels import merged_labels

from ..manifest import Sample
from .ground_truth import CaseTruth
from .vqa_common import DENSITY_WORD, DIGESTIVE, SampleFactory, Step, choice, disp, join, lesion_phrase

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
    block = choice([disp(o) for o in organs] + [NO_LESION], disp(main) if main else NO_LESION, None)
    q_named = list(organs)
    question = str(rng.choice(ORGAN_QUESTIONS))
    if main is None:
        steps = [
            Step("On the global view, no focal mass or abnormal density is seen in the abdomen.",
                 "No dominant lesion is evident.", block.final, []),
            Step(f"The local views of the {join([disp(o) for o in organs])} show homogeneous attenuation "
                 "without a focal lesion or mass effect.", "All candidate organs are normal.", block.final, organs),
        ]
        return f.make("localization", "organ_position", question, q_named, steps, block)
    les = truth.largest_primary()
    rest = []
    for o in organs:
        if o == main:
            continue
        if truth.lesions_in(o):
            rest.append(f"the {disp(o)} shows only smaller lesions in keeping with secondary spread")
        else:
            rest.append(f"the {disp(o)} shows no focal lesion")
    steps = [
        Step(f"On the global view, a focal {DENSITY_WORD[les.density]} abnormality is seen in the {disp(main)}.",
             f"The lesion most likely arises from the {disp(main)}.", block.final, [main]),
        Step(f"The local views show {lesion_phrase(les)} within the {disp(main)}"
             + (f", while {join(rest)}." if rest else "."),
             f"The dominant lesion is located in the {disp(main)}.", block.final,
             [main] + [o for o in organs if o != main]),
    ]
    return f.make("localization", "organ_position", question, q_named, steps, block)


def tumor_position(truth: CaseTruth, f: SampleFactory, rng: np.random.Generator) -> Sample | None:
    les = truth.largest_primary()
    if les is None or les.substructure is None:
        return None
    organ, part = les.organ, les.substructure
    question = f"Where is the lesion located in the {disp(organ)}? Identify its sub-region."
    steps = [
        Step(f"On the global view, a {DENSITY_WORD[les.density]} lesion is seen in the {disp(organ)}.",
             f"The lesion lies in the {disp(organ)}.", disp(organ), [organ]),
        Step(f"The local view of the {disp(organ)} places the lesion centre within the {disp(part)}, "
             "and most of the lesion lies inside it.", f"The lesion arises from the {disp(part)}.", disp(part),
             [organ, part]),
        Step(f"Focused review of the {disp(part)} confirms that the lesion is centred there and measures "
             f"{int(round(les.diameter_mm))} mm.", f"The lesion is located in the {disp(part)}.", disp(part), [part]),
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
    steps = [
        Step(f"On the global view, a lesion of the {disp(organ)} projects over the {disp(part)}.",
             f"The {disp(part)} is the most likely site.", block.final, [organ, part]),
        Step(f"The local views show the lesion centre inside the {disp(part)}; the "
             f"{join([disp(p) for p in wrong])} do not contain its centre.",
             f"The lesion lies in the {disp(part)}.", block.final, [part] + wrong),
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
