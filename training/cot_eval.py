"""TumorChain-Eval (paper section 2.3, appendix 12): score a chain of thought against the reference.

Stage 1 (Table 11): the judge extracts (subject, relation, object) triples from the reference and
the prediction. Stage 2 (Tables 12-14): the judge sorts them into the Finding Chain (FC), the
Impression Chain (IC) and the Long Reasoning Chain (LRC) and rates each chain's dimensions out of
10. A chain's score is the mean of its dimensions on a 0-100 scale; over N samples (eq. 9)

    CoT_e = 0.3 * mean S_FC + 0.3 * mean S_IC + 0.4 * mean S_LRC.

Needs an LLM judge (judge.py); there is no offline substitute, so without one nothing is scored.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

from training.judge import Judge, JudgeError

WEIGHTS = {"fc": 0.3, "ic": 0.3, "lrc": 0.4}
DIMENSIONS = {
    "s1_finding": ("existence_match", "completeness", "accuracy"),
    "s2_impression": ("clarity", "consistency", "medical_utility"),
    "s3_reasoning": ("logical_completeness", "reasoning_depth", "clinical_relevance", "evidence_integration"),
}
CHAIN_OF = {"s1_finding": "fc", "s2_impression": "ic", "s3_reasoning": "lrc"}

TRIPLE_PROMPT = (
    "You are a medical fact-extraction assistant specialized in parsing knowledge from the given clinical "
    "text. Analyze the input and extract all factual triples (subject, relation, object), where each triple "
    "expresses a single clear medical fact. Ensure that all information is presented strictly in triple form, "
    "focusing on organs/structures, relations, and lesions. In each triple, the first and third elements must "
    "be an organ or lesion, and the second element must describe their relationship; if the second and third "
    "positions are reversed, correct them. Output format: (Right hemicolon, not observed, wall thickening); "
    "one triple after another, nothing else."
)

SCORE_PROMPT = """You evaluate a model's chain-of-thought radiology reasoning (Pred) against the ground truth (GT).
Split both into three chains: S1 Finding Chain (basic facts directly observed, no inference), S2 Impression
Chain (intermediate impressions derived from several findings), S3 Long Reasoning Chain (high-level
conclusions integrating findings and impressions). Rate each dimension from 0 to 10:
S1 finding: existence_match (predicted facts matching GT facts), completeness (GT facts covered without
omission), accuracy (correctness of predicted facts).
S2 impression: clarity (medical clarity), consistency (logically consistent with the finding chain),
medical_utility (usefulness for diagnosis).
S3 reasoning: logical_completeness (closure of the higher-order reasoning), reasoning_depth (cross-entity,
hierarchical associations), clinical_relevance (aligned with the medical context), evidence_integration
(findings and impressions integrated into the conclusion).
10 = perfect, 8-9 = minor issues (<10%), 6-7 = moderate (10-30%), 4-5 = major (30-50%), 1-3 = mostly wrong,
0 = absent or invalid. Reply with JSON only:
{"scoring": {"s1_finding": {"existence_match": "x/10", "completeness": "x/10", "accuracy": "x/10"},
"s2_impression": {"clarity": "x/10", "consistency": "x/10", "medical_utility": "x/10"},
"s3_reasoning": {"logical_completeness": "x/10", "reasoning_depth": "x/10", "clinical_relevance": "x/10",
"evidence_integration": "x/10"}}}"""

_TRIPLE = re.compile(r"\(([^(),;]+),([^(),;]+),([^(),;]+)\)")


@dataclass
class CoTScore:
    """One sample: chain scores on 0-100 and the triples both texts gave."""

    fc: float
    ic: float
    lrc: float
    gt_triples: list[tuple[str, str, str]]
    pred_triples: list[tuple[str, str, str]]

    @property
    def cot_e(self) -> float:
        return WEIGHTS["fc"] * self.fc + WEIGHTS["ic"] * self.ic + WEIGHTS["lrc"] * self.lrc


def parse_triples(text: str) -> list[tuple[str, str, str]]:
    return [tuple(p.strip() for p in m.groups()) for m in _TRIPLE.finditer(text)]  # type: ignore[misc]


def _rating(value) -> float:
    """'8/10', 8, '8' -> 8.0 (clipped to 0..10)."""
    if isinstance(value, (int, float)):
        v = float(value)
    else:
        m = re.match(r"\s*(\d+(?:\.\d+)?)", str(value))
        if not m:
            raise JudgeError(f"unreadable rating {value!r}")
        v = float(m.group(1))
    return min(max(v, 0.0), 10.0)


def chain_scores(reply: dict) -> dict[str, float]:
    """Judge JSON -> {"fc", "ic", "lrc"} on 0-100."""
    scoring = reply.get("scoring", reply)
    out = {}
    for block, dims in DIMENSIONS.items():
        got = scoring.get(block)
        if not isinstance(got, dict):
            raise JudgeError(f"judge reply lacks '{block}': {json.dumps(reply)[:200]}")
        out[CHAIN_OF[block]] = 10.0 * sum(_rating(got.get(d, 0)) for d in dims) / len(dims)
    return out


def score_cot(judge: Judge, reference: str, prediction: str) -> CoTScore:
    gt = parse_triples(judge.chat(TRIPLE_PROMPT, reference))
    pred = parse_triples(judge.chat(TRIPLE_PROMPT, prediction))
    user = (f"GT reasoning:\n{reference}\nGT triples: {gt}\n\nPred reasoning:\n{prediction}\nPred triples: {pred}")
    s = chain_scores(judge.chat_json(SCORE_PROMPT, user))
    return CoTScore(fc=s["fc"], ic=s["ic"], lrc=s["lrc"], gt_triples=gt, pred_triples=pred)


def aggregate(scores: Sequence[CoTScore]) -> dict:
    """Eq. 9 over the samples."""
    if not scores:
        return {"n": 0, "S_FC": None, "S_IC": None, "S_LRC": None, "CoT_e": None}
    n = len(scores)
    fc, ic, lrc = (sum(getattr(s, k) for s in scores) / n for k in ("fc", "ic", "lrc"))
    return {"n": n, "S_FC": fc, "S_IC": ic, "S_LRC": lrc,
            "CoT_e": WEIGHTS["fc"] * fc + WEIGHTS["ic"] * ic + WEIGHTS["lrc"] * lrc}
