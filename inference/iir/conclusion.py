"""Split a final answer into reasoning and conclusion ("... Thus, the answer is X.", paper 11.3)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

# The summary sentence the CoT data ends every answer with; the last one wins.
_SUMMARY = re.compile(r"(?:\bthus|\btherefore|\bso|\bhence)?\s*,?\s*the\s+(?:final\s+)?answer\s+is\s*:?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Conclusion:
    """reasoning: the text before the summary sentence; answer: X of "Thus, the answer is X."
    (no trailing full stop); found: False when the text has no summary sentence (answer is "")."""

    reasoning: str
    answer: str
    found: bool

    def to_dict(self) -> dict:
        return asdict(self)


def parse_conclusion(text: str) -> Conclusion:
    matches = list(_SUMMARY.finditer(text))
    if not matches:
        return Conclusion(reasoning=text.strip(), answer="", found=False)
    last = matches[-1]
    answer = text[last.end():].strip()
    answer = re.sub(r"[.\s]+$", "", answer)  # "T3." -> "T3"; keeps inner full stops ("segment 4a. b")
    if len(answer) >= 2 and answer[0] == answer[-1] and answer[0] in "\"'":
        answer = answer[1:-1].strip()
    return Conclusion(reasoning=text[:last.start()].strip(), answer=answer, found=bool(answer))
