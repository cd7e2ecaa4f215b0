"""Split a final answer into reasoning, summary and conclusion (paper appendix 11.3: a
"Reasoning Process" and a "Summary" ending in "Thus, the answer is X.")."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

# The summary sentence the CoT data ends every answer with; the last one wins.
_SUMMARY_SENTENCE = re.compile(
    r"(?:\bthus|\btherefore|\bso|\bhence)?\s*,?\s*the\s+(?:final\s+)?answer\s+is\s*:?\s*", re.IGNORECASE)
_REASONING_LABEL = re.compile(r"^\s*reasoning(?:\s+process)?\s*:\s*", re.IGNORECASE)
_SUMMARY_LABEL = re.compile(r"\bsummary\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Conclusion:
    """reasoning: the reasoning process (its "Reasoning Process:" label removed); summary: the text
    after "Summary:" before the answer sentence ("" without that label); answer: X of
    "Thus, the answer is X." (no trailing full stop); found: False when there is no such sentence."""

    reasoning: str
    answer: str
    found: bool
    summary: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def parse_conclusion(text: str) -> Conclusion:
    matches = list(_SUMMARY_SENTENCE.finditer(text))
    if not matches:
        reasoning, summary = _split_summary(text)
        return Conclusion(reasoning=reasoning, answer="", found=False, summary=summary)
    last = matches[-1]
    answer = text[last.end():].strip()
    answer = re.sub(r"[.\s]+$", "", answer)  # "T3." -> "T3"; keeps inner full stops ("segment 4a. b")
    if len(answer) >= 2 and answer[0] == answer[-1] and answer[0] in "\"'":
        answer = answer[1:-1].strip()
    reasoning, summary = _split_summary(text[:last.start()])
    return Conclusion(reasoning=reasoning, answer=answer, found=bool(answer), summary=summary)


def _split_summary(body: str) -> tuple[str, str]:
    body = _REASONING_LABEL.sub("", body, count=1)
    labels = list(_SUMMARY_LABEL.finditer(body))
    if not labels:
        return body.strip(), ""
    last = labels[-1]
    return body[:last.start()].strip(), body[last.end():].strip()
