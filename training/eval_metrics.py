"""Scoring one answer, and the paper's Table 1 columns.

Multiple choice (options given): the chosen option must be the reference option. The choice is read
from the answer "X. text": the option text when it is one of the options (the content decides, as
a reader would), else the letter; else the one option named in the answer. Open answers: equal
after normalisation (case, punctuation, articles, number words), counts compared as numbers;
an LLM judge (judge.py) may decide the open answers that do not match literally.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Sequence

from training.manifest import LETTERS

# (subtask, column title) in the order of the paper's Table 1
COLUMNS: tuple[tuple[str, str], ...] = (
    ("organ_position", "Organ Pos."), ("tumor_position", "Tumor Pos."), ("segment_location", "Seg. Loc."),
    ("shape", "Shape"), ("boundary", "Boundary"), ("density", "Density"), ("count", "Count"),
    ("others", "Others"), ("T", "Tumor"), ("N", "Node"), ("M", "Met."), ("report", "CoT-Report"),
)
NUMBER_WORDS = {"zero": "0", "no": "0", "none": "0", "one": "1", "single": "1", "two": "2", "three": "3", "four": "4",
                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_LETTER = re.compile(r"^\s*\(?([A-Za-z])\s*[\.\):]\s*(.*)$", re.DOTALL)


def normalize(text: str) -> str:
    """Lower case, unified dashes, no punctuation but inner hyphens, no articles, number words as digits."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[\u2010-\u2015]", "-", text)
    text = re.sub(r"[^a-z0-9\-\s]", " ", text)
    words = [NUMBER_WORDS.get(w, w) for w in text.split() if w not in _ARTICLES]
    return " ".join(w.strip("-") for w in words if w.strip("-"))


def choose_option(answer: str, options: Sequence[str]) -> int | None:
    """Index of the option an answer picks, or None when it picks none (or several)."""
    norm_opts = [normalize(o) for o in options]
    ans = normalize(answer)
    if ans in norm_opts:
        return norm_opts.index(ans)
    bare = answer.strip().strip("().:").strip()
    if len(bare) == 1 and 0 <= LETTERS.find(bare.upper()) < len(options):
        return LETTERS.find(bare.upper())
    m = _LETTER.match(answer)
    if m:
        rest = normalize(m.group(2))
        if rest in norm_opts:
            return norm_opts.index(rest)
        idx = LETTERS.find(m.group(1).upper())
        if 0 <= idx < len(options) and not rest:
            return idx
        if 0 <= idx < len(options) and not any(o in rest for o in norm_opts):
            return idx
    named = [i for i, o in enumerate(norm_opts) if o and re.search(rf"(?<![a-z0-9]){re.escape(o)}(?![a-z0-9])", ans)]
    # "pancreatic head" also contains "head": keep only options not inside another named option
    named = [i for i in named if not any(j != i and norm_opts[i] in norm_opts[j] for j in named)]
    return named[0] if len(named) == 1 else None


def reference_option(final_answer: str, options: Sequence[str]) -> int:
    """Index of the reference option of a manifest sample ("B. pancreas" -> 1)."""
    idx = LETTERS.find(final_answer[:1].upper())
    if 0 <= idx < len(options) and final_answer[1:3] == ". ":
        return idx
    found = choose_option(final_answer, options)
    if found is None:
        raise ValueError(f"final answer {final_answer!r} names none of the options {list(options)}")
    return found


def open_match(answer: str, reference: str, slack_words: int = 3) -> bool:
    """Equal after normalisation; or the reference phrase inside a short answer ("located in the
    gastric antrum" for "gastric antrum": at most ``slack_words`` extra words); counts as numbers."""
    a, r = normalize(answer), normalize(reference)
    if a == r:
        return True
    if r and re.search(rf"(?<![a-z0-9-]){re.escape(r)}(?![a-z0-9-])", a) and len(a.split()) <= len(r.split()) + slack_words:
        return True
    na, nr = re.findall(r"\d+", a), re.findall(r"\d+", r)
    # counts: "2 lesions" == "2"
    return bool(nr) and len(nr) == 1 and na[:1] == nr and len(r.split()) <= 2


def token_f1(answer: str, reference: str) -> float:
    """Bag-of-words F1 of the normalised texts (an informative soft score for long answers)."""
    a, r = normalize(answer).split(), normalize(reference).split()
    if not a or not r:
        return float(a == r)
    common = sum((Counter(a) & Counter(r)).values())
    if common == 0:
        return 0.0
    p, q = common / len(a), common / len(r)
    return 2 * p * q / (p + q)


def score_answer(answer: str, final_answer: str, options: Sequence[str] | None) -> tuple[bool, str]:
    """(correct, method) without a judge."""
    if options:
        chosen = choose_option(answer, options)
        return chosen is not None and chosen == reference_option(final_answer, options), "choice"
    return open_match(answer, final_answer), "normalized"


def column_table(rows: Sequence[dict]) -> dict:
    """Per-column accuracy of scored rows ({subtask, correct}); ``avg`` = mean over the columns
    that have samples (the paper's Avg)."""
    out: dict = {}
    for subtask, title in COLUMNS:
        got = [r for r in rows if r["subtask"] == subtask and r["correct"] is not None]
        n = len(got)
        k = sum(1 for r in got if r["correct"])
        out[subtask] = {"title": title, "n": n, "correct": k, "accuracy": (k / n) if n else None}
    accs = [v["accuracy"] for v in out.values() if v["accuracy"] is not None]
    return {"columns": out, "avg": (sum(accs) / len(accs)) if accs else None}
