"""Prompt text: the four task questions and the IIR template (resources/prompts/*.json), and the
segments of each IIR round built from them (paper eq. 4-7, accumulating form).

Round 1:      [<ct> x Lg] "\\n{question}\\n" "Answer:\\n"
answer r:     <generated ids> <end-of-answer>
round r > 1:  "\\n" then per organ "The question requires greater attention to {organ}." [<organ_feature> x Ll] "\\n",
              then "Answer:\\n"
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from inference.errors import InputError

from .interleaved_input import GlobalVisual, Ids, OrganVisual, Segment, Text
from inference.vocabulary import TASKS

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "resources" / "prompts"


@dataclass(frozen=True)
class IIRTemplate:
    """Text pieces of the interleaved sequence; see resources/prompts/iir_template.json."""

    question: str = "\n{question}\n"
    answer_cue: str = "Answer:\n"
    after_answer: str = "\n"
    attention: str = "The question requires greater attention to {organ}."
    after_organ: str = "\n"

    def attention_text(self, organ_display: str) -> str:
        return self.attention.format(organ=organ_display)


@dataclass(frozen=True)
class OrganRef:
    """An organ to examine: the label the text names, the mask its tokens come from, and the
    display name the attention sentence uses."""

    label_id: int
    display: str
    mask_label: int


@lru_cache(maxsize=4)
def load_template(path: str | None = None) -> IIRTemplate:
    file = Path(path) if path else PROMPTS_DIR / "iir_template.json"
    data = _read_json(file)
    fields = {k: data[k] for k in IIRTemplate.__dataclass_fields__ if k in data}
    for key, value in fields.items():
        if not isinstance(value, str):
            raise InputError(file, f"'{key}' must be a string, got {type(value).__name__}")
    if "{organ}" not in fields.get("attention", "{organ}") or "{question}" not in fields.get("question", "{question}"):
        raise InputError(file, "'attention' needs {organ} and 'question' needs {question}")
    return IIRTemplate(**fields)


@lru_cache(maxsize=1)
def _tasks() -> dict:
    file = PROMPTS_DIR / "tasks.json"
    data = _read_json(file).get("tasks", {})
    missing = [t for t in TASKS if t not in data]
    if missing:
        raise InputError(file, f"missing task prompts: {', '.join(missing)}")
    return data


def task_question(task: str, organ: str | None = None) -> str:
    """The question text of one of the four tasks; ``organ`` (a display name) narrows it."""
    if task not in TASKS:
        raise InputError(None, f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    entry = _tasks()[task]
    return entry["question_for_organ"].format(organ=organ) if organ else entry["question"]


def round1_segments(template: IIRTemplate, question: str, n_global: int) -> list[Segment]:
    """Eq. 4: the global CT tokens, then the question, then the answer cue."""
    return [GlobalVisual(n_global), Text(template.question.format(question=question) + template.answer_cue)]


def followup_segments(template: IIRTemplate, organs: Sequence[OrganRef], n_organ: int) -> list[Segment]:
    """Eq. 5-6: after the previous answer (already in the context), one attention sentence and
    the organ's tokens per newly examined organ, then the answer cue."""
    segs: list[Segment] = [Text(template.after_answer)]
    for organ in organs:
        segs.append(Text(template.attention_text(organ.display)))
        segs.append(OrganVisual(organ.label_id, n_organ, organ.mask_label))
        segs.append(Text(template.after_organ))
    segs.append(Text(template.answer_cue))
    return segs


def answer_segments(answer: str | Sequence[int], end_of_answer_id: int) -> list[Segment]:
    """An answer followed by the end-of-answer id, both trained on (text is tokenized, ids kept)."""
    body: Segment = Text(answer, answer=True) if isinstance(answer, str) else Ids(tuple(answer), answer=True)
    return [body, Ids((int(end_of_answer_id),), answer=True)]


def chain_segments(
    template: IIRTemplate,
    question: str,
    rounds: Sequence[tuple[str, Sequence[OrganRef]]],
    end_of_answer_id: int,
    n_global: int,
    n_organ: int,
) -> list[Segment]:
    """The whole IIR chain as one training sequence (the same tokens inference feeds round by round).

    rounds: (answer text of round r, organs examined before round r + 1) for r = 1..n; the last
    round's organ list is ignored (no round follows it).
    """
    segs = round1_segments(template, question, n_global)
    for r, (answer, organs) in enumerate(rounds):
        segs += answer_segments(answer, end_of_answer_id)
        if r + 1 < len(rounds):
            segs += followup_segments(template, organs, n_organ)
    return segs


def training_sequence(
    tokenizer,
    question: str,
    rounds: Sequence[tuple[str | Sequence[int], Sequence[OrganRef]]],
    n_global: int,
    n_organ: int,
    end_of_answer_id: int | None = None,
    template: IIRTemplate | None = None,
    placeholders: tuple[str, str] | None = None,
):
    """The whole IIR chain as one InterleavedIds for training: ``input_ids`` with one placeholder id
    per visual token, ``labels()`` on the answers and their end-of-answer ids, ``slots`` in the
    order the visual tensors go (global, then each round's organs). Inference feeds the very same
    ids round by round (tests/test_decoding.py checks that)."""
    from .decoding import default_end_of_answer_id
    from .interleaved_input import SequenceBuilder

    eoa = end_of_answer_id if end_of_answer_id is not None else default_end_of_answer_id(tokenizer)
    if eoa is None:
        raise ValueError("the tokenizer has no eos token; pass end_of_answer_id")
    builder = SequenceBuilder(tokenizer, *placeholders) if placeholders else SequenceBuilder(tokenizer)
    segs = chain_segments(template or load_template(), question, rounds, eoa, n_global, n_organ)
    return builder.build(segs)


def render_segments(segments: Sequence[Segment], tokenizer=None) -> str:
    """Human-readable text of segments for a Round's ``prompt``: visual runs become
    ``<ct>`` / ``<organ_feature>`` markers, id runs are decoded when a tokenizer is given."""
    out = []
    for seg in segments:
        if isinstance(seg, Text):
            out.append(seg.text)
        elif isinstance(seg, GlobalVisual):
            out.append("<ct>")
        elif isinstance(seg, OrganVisual):
            out.append("<organ_feature>")
        elif isinstance(seg, Ids):
            out.append(tokenizer.decode(list(seg.ids), skip_special_tokens=True) if tokenizer is not None else "")
    return "".join(out)


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(file, "prompt file is missing from the installation") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(file, f"cannot read prompt file: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(file, "prompt file must hold a JSON object")
    return data


def task_title(task: str) -> str:
    """The task's title as the window lists it ("TNM stage prediction")."""
    if task not in TASKS:
        raise InputError(None, f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return _tasks()[task].get("title", task)
