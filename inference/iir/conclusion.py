"""Split a final answer into reasoning, summary and conclusion (paper appendix 11.3: a
"Reasoning Process" and a "Summary" ending in "Thus, the answer is X.").

Report answers carry a finer chain inside the reasoning: "Findings: ... Impression: ...
Pathology: ..."; ``report_sections`` (and ``Conclusion.sections``) splits it so a reader sees
how the findings lead to the impression and the pathology."""
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

    @property
    def sections(self) -> "ReportSections | None":
        """Findings / impression / pathology of the reasoning, or None when it has no such labels."""
        return report_sections(self.reasoning)


# "Findings:", "Impression:", "Pathology:" (also "Pathological diagnosis:", "Impressions:")
_SECTION_LABEL = re.compile(
    r"\b(findings|impressions?|patholog(?:y|ical\s+diagnosis|ic\s+diagnosis))\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ReportSections:
    """The report chain of one reasoning text. preamble: any text before the first label.
    A section the text lacks is "". A label that repeats keeps its last text."""

    findings: str = ""
    impression: str = ""
    pathology: str = ""
    preamble: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def report_sections(reasoning: str) -> ReportSections | None:
    """Split "Findings: ... Impression: ... Pathology: ..." into its parts; None when the text
    names neither findings nor an impression (then it is a plain reasoning process)."""
    matches = list(_SECTION_LABEL.finditer(reasoning or ""))
    kinds = [_kind(m.group(1)) for m in matches]
    if not ({"findings", "impression"} & set(kinds)):
        return None
    parts = {"findings": "", "impression": "", "pathology": ""}
    for i, (m, kind) in enumerate(zip(matches, kinds)):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(reasoning)
        parts[kind] = reasoning[m.end():end].strip()
    return ReportSections(preamble=_REASONING_LABEL.sub("", reasoning[:matches[0].start()], count=1).strip(), **parts)


def _kind(label: str) -> str:
    label = label.lower()
    if label.startswith("finding"):
        return "findings"
    if label.startswith("impression"):
        return "impression"
    return "pathology"


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
