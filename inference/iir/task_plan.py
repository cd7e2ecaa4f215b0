"""A standard task run as the questions the model was trained on (its model card's steps), each step
one IIR chain with a fresh context, composed into one answer whose parts name their rounds.

- localization: the organ (multiple choice over the card's candidate organs present in the case, or
  "no lesion"), then the sub-region of that organ; an organ given by the reader skips the first step.
- attributes: shape, boundary, density, count and other features of the lesion of an organ (the
  reader's, or the one the localization step finds first).
- tnm: the T, N and M questions of that organ, composed into "T3 N1 M0".
- report: the report question.

``run_task(card, task, organ, ask, ...)``: ``ask(step_id, question)`` runs one chain and returns its
inference.iir.loop.IIRResult with rounds already numbered in the whole run (the pipeline does that).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from inference.errors import InputError
from inference.labels import LabelTable

from .conclusion import Conclusion
from .prompts import task_question, task_title

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class StepResult:
    """One trained question of a task and what its chain answered. rounds: [first, last] round index;
    value: the option (or open answer) read from the chain's answer, "" when none could be read."""

    id: str
    title: str
    question: str
    organ: str | None
    options: list[str] | None
    rounds: list[int]
    answer: str
    value: str
    found: bool
    stop_reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TaskOutcome:
    question: str  # what the run record calls its question
    steps: list[StepResult]
    conclusion: Conclusion
    stop_reason: str
    notes: list[str] = field(default_factory=list)  # steps left out and why


Ask = Callable[[str, str], object]  # (step id, question) -> IIRResult


def run_task(card, task: str, organ: str | None, ask: Ask, table: LabelTable, present: Sequence[str]) -> TaskOutcome:
    """``organ``: a label name or display name (or None); ``present``: label names with a mask."""
    if card.is_default:
        return _single(task, task_question(task, _display(table, organ) if organ else None), ask)
    steps = card.steps(task)
    organ_label = _label(table, organ) if organ else None
    done: list[StepResult] = []
    notes: list[str] = []
    if task == "report" or not any(s.needs_organ for s in steps) and len(steps) == 1:
        q = _text(steps[0].template, organ_label.display if organ_label else None, None)
        return _single(task, q, ask, steps[0].id, steps[0].title)
    if organ_label is None:
        locate = _locate_step(card, task)
        if locate is None:
            raise InputError(card.source, f"the {task} task needs an organ and the card has no organ question")
        res = _ask_step(locate, None, ask, table, present)
        done.append(res)
        organ_label = _organ_of(res, table)
        if organ_label is None:
            notes.append(f"no organ was named ({res.answer or 'no answer'}), so the {task_title(task).lower()} "
                         "questions were not asked")
    if organ_label is not None:
        for step in steps:
            if task == "localization" and not step.needs_organ and done:
                continue  # the organ step, already asked
            if task == "localization" and not step.needs_organ and organ is not None:
                continue  # the reader named the organ
            opts = _options(step, organ_label, table, present)
            if opts is _NOT_TRAINED:
                notes.append(f"{step.title}: the model was not trained on this question for the "
                             f"{organ_label.display}")
                continue
            done.append(_ask_step(step, organ_label, ask, table, present, opts))
    return _compose(task, organ_label, done, notes)


# -- one step ------------------------------------------------------------------------------------

_NOT_TRAINED = object()


def _ask_step(step, organ, ask: Ask, table: LabelTable, present, opts=None) -> StepResult:
    if opts is None:
        opts = _options(step, organ, table, present)
    options = None if opts is _NOT_TRAINED else opts
    q = _text(step.template, organ.display if organ else None, options)
    result = ask(step.id, q)
    c = result.conclusion
    value = pick_option(c.answer, options) if options else c.answer.strip()
    return StepResult(step.id, step.title, q, organ.name if organ else None, options,
                      [result.rounds[0].index, result.rounds[-1].index], c.answer, value or "",
                      bool(c.found and value), result.stop_reason)


def _options(step, organ, table: LabelTable, present):
    o = step.options
    if o is None:
        return None
    if isinstance(o, list):
        return list(o)
    if "by_organ" in o:
        found = o["by_organ"].get(organ.name) if organ is not None else None
        return list(found) if found else _NOT_TRAINED
    names = [n for n in o["organs_in_case"] if n in present and n in table]
    return [table.by_name(n).display for n in names] + list(o.get("extra", []))


def _text(template: str, organ_display: str | None, options: list[str] | None) -> str:
    q = template.format(organ=organ_display) if "{organ}" in template else template
    if options:
        q += " Options: " + " ".join(f"{LETTERS[i]}. {opt}" for i, opt in enumerate(options))
    return q


def pick_option(answer: str, options: Sequence[str]) -> str | None:
    """The option an answer chose: "B. pancreas", "B", "pancreas" -> "pancreas"; None when unclear."""
    a = (answer or "").strip()
    m = re.match(r"^\(?([A-Z])\)?(?:[.):]|\s|$)", a)
    if m and LETTERS.index(m.group(1)) < len(options):
        return options[LETTERS.index(m.group(1))]
    low = a.lower().rstrip(".")
    for opt in options:
        if low == opt.lower():
            return opt
    hits = [opt for opt in options if re.search(rf"\b{re.escape(opt.lower())}\b", low)]
    return hits[0] if len(hits) == 1 else None


def _locate_step(card, task: str):
    for s in card.tasks.get("localization", ()):
        if not s.needs_organ and s.options is not None:
            return s
    return None


def _organ_of(res: StepResult, table: LabelTable):
    if not res.value:
        return None
    for lab in table:
        if res.value.lower() in (lab.display.lower(), lab.name.lower()):
            return lab
    return None


def _label(table: LabelTable, organ: str):
    for lab in table:
        if organ.strip().lower() in (lab.name.lower(), lab.display.lower()):
            return lab
    raise InputError(None, f"unknown organ {organ!r}")


def _display(table: LabelTable, organ: str) -> str:
    try:
        return _label(table, organ).display
    except InputError:
        return organ


# -- composing -----------------------------------------------------------------------------------

def _single(task: str, question: str, ask: Ask, step_id: str = "", title: str = "") -> TaskOutcome:
    result = ask(step_id or task, question)
    c = result.conclusion
    step = StepResult(step_id or task, title or task_title(task), question, None, None,
                      [result.rounds[0].index, result.rounds[-1].index], c.answer, c.answer, c.found,
                      result.stop_reason)
    return TaskOutcome(question, [step], c, result.stop_reason)


def _span(s: StepResult) -> str:
    a, b = s.rounds
    return f"round {a}" if a == b else f"rounds {a}-{b}"


def _compose(task: str, organ, steps: list[StepResult], notes: list[str]) -> TaskOutcome:
    if not steps:
        raise InputError(None, "no question of the task could be asked: " + "; ".join(notes))
    where = f" of the {organ.display}" if organ is not None else ""
    question = f"{task_title(task)}{where}: " + "; ".join(s.question for s in steps)
    parts = [s for s in steps if not (task != "localization" and s.id == "organ")]
    if task == "tnm":
        answer = " ".join(s.value or f"{s.id}?" for s in parts) if parts else "no lesion located"
    elif task == "localization":
        answer = ", ".join(s.value for s in steps if s.value) or "no answer"
    else:
        answer = "; ".join(f"{s.title.lower()}: {s.value or '?'}" for s in parts) if parts else "no lesion located"
    reasoning = " ".join(f"{s.title} ({_span(s)}): {s.answer or 'no answer'}." for s in steps)
    summary = "; ".join(f"{s.value or 'no answer'} from {_span(s)} ({s.title})" for s in steps)
    if notes:
        summary += ". " + "; ".join(notes)
    found = all(s.found for s in parts) and bool(parts)
    return TaskOutcome(question, steps, Conclusion(reasoning=reasoning, answer=answer, found=found, summary=summary),
                       steps[-1].stop_reason, notes)
