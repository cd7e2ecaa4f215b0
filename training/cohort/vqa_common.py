"""Shared pieces of the VQA writers: display names, numbers in words, multiple-choice options,
round texts in the paper's form ("Reasoning Process: ... Summary: ... Thus, the answer is X.")
and the IIR chain bookkeeping.

Chain rule (mirrors inference/iir/loop.py): after round 1 the organs named by the question and
by round 1's answer are examined; after each later round the organs its answer names that were
not examined yet. A round's ``attend`` lists exactly those, so the last round attends nothing.
Writers declare the label names each text names; tests check them against the organ matcher.

Round 1 is the initial impression from the global view (paper section 3.2, step I). It names the
organs to examine and a tentative answer that is right in only ``IMPRESSION_HIT_RATE`` of the chains
(``impression``). The local round states its evidence first, one verdict per examined organ in the
order their tokens came, then its conclusion, and only then confirms or revises round 1
(``revisits``, Step.revisit) before answering. Generator 1.0 made round 1 always right, so the later
rounds only repeated it and a model trained on those chains learned to ignore the organ tokens. In
1.2 the confirm/revise sentence came before the conclusion, and the model learned to say "confirms"
and copy round 1's guess whatever its verdicts were.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.labels import merged_labels

from ..manifest import LETTERS, ChainRound, Sample
from .ground_truth import CaseTruth, LesionTruth

DIGESTIVE = ("liver", "pancreas", "stomach", "colorectum", "esophagus")
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight")
DENSITY_WORD = {"hypodense": "hypodense", "hyperdense": "hyperdense", "mixed": "mixed-density", "isodense": "isodense"}
DENSITY_OPTION = {"hypodense": "hypodense", "hyperdense": "hyperdense", "mixed": "mixed density",
                  "isodense": "isodense"}
IMPRESSION_HIT_RATE = 0.5  # share of chains whose round-1 impression is already the answer


def dominant_organ(truth: CaseTruth) -> str | None:
    """The organ the chains call the lesion's (its primary), None for a study without lesions: one rule
    for the verdicts, the answers and round 1's tentative guess."""
    return truth.primary_organ if truth.lesions else None


def disp(name: str) -> str:
    """Display name of a label ("pancreas_head" -> "pancreatic head")."""
    return merged_labels().by_name(name).display


def words(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def mm(value: float) -> str:
    return f"{int(round(value))} mm"


# The writers read a case's facts through the attribute names of ground_truth.CaseTruth; the site engine's
# CaseFindings (training/site_engine/findings.py) has the same names, but a report may leave any attribute
# out (None). The helpers below write what is known; with every value known they write exactly the text
# the cohort always wrote.

def density_word(density: str | None) -> str:
    """"hypodense", "mixed-density"; "focal" when the density is not known."""
    return DENSITY_WORD.get(density, "focal")


def sized(value: float | None, before: str = "", after: str = "") -> str:
    """``before + "32 mm" + after``, or "" when the size is not known."""
    return "" if value is None else f"{before}{mm(value)}{after}"


def sizes_list(values: list[float | None]) -> str:
    """"32 mm, 20 mm and 15 mm" (largest first as given); unknown sizes left out."""
    return join([mm(v) for v in values if v is not None])


def met_words(mets: list) -> tuple[str, str]:
    """(adjectives, " with ..." feature) shared by all metastases: ("round hypodense", " with rim enhancement")
    for the knowledge graph's metastases; what is not shared or not known is left out."""
    def common(values):
        values = set(values)
        return values.pop() if len(values) == 1 and None not in values else None

    shape, density = common(m.shape for m in mets), common(m.density for m in mets)
    others = common(tuple(m.others) for m in mets)
    adjectives = " ".join(w for w in (shape, DENSITY_WORD.get(density) if density else None) if w)
    return adjectives, (f" with {join(list(others))}" if others else "")


def hu(value: float) -> str:
    return f"{int(5 * round(value / 5.0))} HU"


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


@dataclass
class Step:
    """One round: its text and the label names it names, in order of first mention."""

    reasoning: str
    summary: str
    answer: str
    named: list[str]
    revisit: str = ""  # after the conclusion: the conclusion is drawn from the evidence, then set against round 1

    @property
    def text(self) -> str:
        summary = f"{self.summary} {self.revisit}" if self.revisit else self.summary
        return f"Reasoning Process: {self.reasoning} Summary: {summary} Thus, the answer is {self.answer}."


def chain_of(question_named: list[str], steps: list[Step]) -> list[ChainRound]:
    examined: list[str] = []
    rounds = []
    for r, step in enumerate(steps):
        named = (question_named if r == 0 else []) + step.named
        attend = []
        for n in named:
            if n not in examined and n not in attend:
                attend.append(n)
        examined += attend
        rounds.append(ChainRound(step.text, tuple(attend)))
    return rounds


@dataclass
class Choice:
    """A multiple-choice block: the options, the question suffix and the final answer."""

    options: list[str]
    final: str
    listing: str

    def lettered(self, option: str) -> str:
        """"C. option" for any of the options (round 1's tentative answer)."""
        return _lettered(self.options, option)


def choice(options: list[str], correct: str, rng: np.random.Generator | None) -> Choice:
    """Options (shuffled when ``rng`` is given) lettered A, B, ...; ``final`` is "B. text"."""
    opts = list(options)
    if rng is not None:
        opts = [opts[i] for i in rng.permutation(len(opts))]
    listing = " ".join(f"{LETTERS[k]}. {o}" for k, o in enumerate(opts))
    return Choice(opts, _lettered(opts, correct), f"Options: {listing}")


def _lettered(options: list[str], option: str) -> str:
    return f"{LETTERS[options.index(option)]}. {option}"


def impression(correct: str, options: list[str], rng: np.random.Generator) -> str:
    """Round 1's tentative answer: ``correct`` in IMPRESSION_HIT_RATE of the draws, otherwise one of the
    other ``options``, so the final answer cannot be copied from round 1."""
    wrong = [o for o in options if o != correct]
    if not wrong or rng.random() < IMPRESSION_HIT_RATE:
        return correct
    return wrong[int(rng.integers(len(wrong)))]


def revisits(initial: str, final: str, what: str) -> str:
    """The closing sentence of a local round, after its evidence: it confirms round 1's impression or
    revises it."""
    if initial == final:
        return "This confirms the initial impression."
    return f"This revises the initial impression of {what}."


class SampleFactory:
    """Builds manifest samples of one case (paths relative to the manifest folder)."""

    def __init__(self, truth: CaseTruth, case_dir: str, files: tuple[str, str | None, str | None] | None = None):
        """``files``: (ct, masks, parts) paths relative to the manifest; default: the cohort's case folder layout."""
        self.truth = truth
        self.case_dir = case_dir.rstrip("/")
        self.files = files or (f"{self.case_dir}/ct.nii.gz", f"{self.case_dir}/organs.nii.gz",
                               f"{self.case_dir}/parts.nii.gz")

    def organ_labels(self, roi: list[str]) -> dict[str, int]:
        present = set(self.truth.organs_present) | set(self.truth.parts_present)
        names = [n for n in DIGESTIVE if n in present] + [n for n in roi if n not in DIGESTIVE]
        return {n: int(self.truth.organ_abnormal.get(n, 0)) for n in names}

    def make(self, task: str, subtask: str, question: str, question_named: list[str], steps: list[Step],
             choice_block: Choice | None = None, suffix: str = "") -> Sample:
        chain = chain_of(question_named, steps)
        roi = [n for r in chain for n in r.attend]
        q = question if choice_block is None else f"{question} {choice_block.listing}"
        return Sample(
            id=f"{self.truth.case_id}_{subtask}{suffix}", case_id=self.truth.case_id,
            ct=self.files[0], masks=self.files[1], parts=self.files[2], task=task, subtask=subtask, question=q,
            options=None if choice_block is None else tuple(choice_block.options), answer=chain[-1].answer,
            final_answer=steps[-1].answer, roi_organs=tuple(roi), organ_labels=self.organ_labels(roi),
            chain=tuple(chain))


def lesion_phrase(les: LesionTruth) -> str:
    """"a 32 mm hypodense lesion" (density word, long axis; each left out when not known)."""
    words_ = " ".join(w for w in (sized(les.diameter_mm), DENSITY_WORD.get(les.density)) if w)
    return f"{article(words_ or 'lesion')} {words_ + ' ' if words_ else ''}lesion"


def others_phrase(others: list[str]) -> str:
    return join(list(others)) if others else "none"
