"""The model card: what a model folder says it knows (``model_card.json``, schema tumorchain.model_card/1).

A card declares
- ``tasks``: for each of the four standard tasks, the questions the model was trained on, as steps
  (``{"id", "title", "template", "options"}``; ``{organ}`` in a template is an organ's display name,
  ``options`` a fixed list, ``{"by_organ": {organ name: [...]}}`` or ``{"organs_in_case": [...],
  "extra": [...]}``); the window and the CLI run these steps (inference/iir/task_plan.py);
- ``question_forms``: every question form of its training data (the steps' and their variants), so a
  typed question outside them is named as such;
- ``domain``: where its training images came from (``source``: "synthetic_phantom" or "clinical_ct";
  ``source_marker``: the series description its phantoms carry; ``grids``: shapes and spacings;
  ``field_of_view_mm``; ``spacing_tolerance``: relative), checked against each CT (``domain_check``);
- ``intended_use``.

A folder without a card gets ``default_card()``: the four single task prompts of
resources/prompts/tasks.json (what the workstation asked before cards existed), no declared forms
and an unknown domain; the card says so in ``note`` and every run records it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from inference.errors import InputError
from inference.vocabulary import TASKS

SCHEMA = "tumorchain.model_card/1"
CARD_FILE = "model_card.json"
DEFAULT_NOTE = ("this model folder has no model_card.json: the workstation asks its four built-in task prompts, "
                "cannot tell which questions the model was trained on, and knows nothing of its training domain")


@dataclass(frozen=True)
class Step:
    """One question of a task. options: None (open answer), a list, {"by_organ": {...}} or
    {"organs_in_case": [...], "extra": [...]}; needs_organ: the template has {organ}."""

    id: str
    title: str
    template: str
    options: Any = None

    @property
    def needs_organ(self) -> bool:
        return "{organ}" in self.template


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]


@dataclass(frozen=True)
class Domain:
    source: str = "unknown"  # synthetic_phantom | clinical_ct | unknown
    description: str = ""
    source_marker: str = ""  # phantoms' series description starts with it
    grids: tuple[Grid, ...] = ()
    field_of_view_mm: tuple[float, float, float] | None = None
    spacing_tolerance: float = 0.1  # relative, per axis
    fov_tolerance: float = 0.25


@dataclass(frozen=True)
class ModelCard:
    name: str
    tasks: dict[str, tuple[Step, ...]]
    question_forms: tuple[str, ...] = ()
    domain: Domain = field(default_factory=Domain)
    intended_use: str = ""
    version: str = ""
    source: str = "default"  # the card file, or "default"
    note: str = ""  # why the default is used

    @property
    def is_default(self) -> bool:
        return self.source == "default"

    def steps(self, task: str) -> tuple[Step, ...]:
        if task not in self.tasks:
            raise InputError(self.source if not self.is_default else None,
                             f"the model card declares no {task!r} task; it supports {', '.join(self.tasks)}")
        return self.tasks[task]

    def match_question(self, question: str) -> str | None:
        """The trained question form a typed question follows (its template), or None when it follows
        none. Without declared forms (the default card) nothing can be said: returns "" ."""
        if not self.question_forms:
            return ""
        q = _normal(_strip_options(question))
        for form in self.question_forms:
            if _form_regex(form).fullmatch(q):
                return form
        return None

    def summary(self) -> dict[str, Any]:
        """What run.json records of the card."""
        return {"source": self.source, "name": self.name, "version": self.version, "note": self.note,
                "domain": self.domain.source, "intended_use": self.intended_use}


# -- reading -------------------------------------------------------------------------------------

def load_model_card(folder: str | Path) -> ModelCard:
    """The card of a model folder, or the default card (saying so) when it has none.
    A card that is present but wrong raises InputError naming the file and the field."""
    file = Path(folder).expanduser() / CARD_FILE
    if not file.is_file():
        return default_card(note=DEFAULT_NOTE)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(file, f"cannot read the model card: {exc}") from None
    try:
        return card_from_dict(data, source=str(file))
    except ValueError as exc:
        raise InputError(file, f"not a valid {SCHEMA} model card: {exc}") from None


def card_from_dict(data: Any, source: str = "default") -> ModelCard:
    """Validate and build; ValueError names the bad field."""
    if not isinstance(data, dict):
        raise ValueError("the card must be a JSON object")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"schema must be {SCHEMA!r}, got {data.get('schema')!r}")
    tasks_raw = _get(data, "tasks", dict, "card")
    tasks: dict[str, tuple[Step, ...]] = {}
    for task, entry in tasks_raw.items():
        if task not in TASKS:
            raise ValueError(f"tasks.{task}: not one of {', '.join(TASKS)}")
        steps_raw = _get(entry, "steps", list, f"tasks.{task}")
        if not steps_raw:
            raise ValueError(f"tasks.{task}.steps: at least one step")
        steps = []
        for i, s in enumerate(steps_raw):
            where = f"tasks.{task}.steps[{i}]"
            step = Step(_get(s, "id", str, where), _get(s, "title", str, where), _get(s, "template", str, where),
                        s.get("options"))
            _check_options(step.options, f"{where}.options")
            steps.append(step)
        tasks[task] = tuple(steps)
    forms = tuple(_get(data, "question_forms", list, "card", default=[]))
    if any(not isinstance(f, str) or not f.strip() for f in forms):
        raise ValueError("question_forms: every entry must be a non-empty string")
    d = _get(data, "domain", dict, "card", default={})
    grids = []
    for i, g in enumerate(_get(d, "grids", list, "domain", default=[])):
        shape = _triple(_get(g, "shape", list, f"domain.grids[{i}]"), int, f"domain.grids[{i}].shape")
        spacing = _triple(_get(g, "spacing_mm", list, f"domain.grids[{i}]"), float, f"domain.grids[{i}].spacing_mm")
        grids.append(Grid(shape, spacing))
    fov = d.get("field_of_view_mm")
    domain = Domain(
        source=_get(d, "source", str, "domain", default="unknown"),
        description=_get(d, "description", str, "domain", default=""),
        source_marker=_get(d, "source_marker", str, "domain", default=""),
        grids=tuple(grids),
        field_of_view_mm=None if fov is None else _triple(fov, float, "domain.field_of_view_mm"),
        spacing_tolerance=float(_get(d, "spacing_tolerance", (int, float), "domain", default=0.1)),
        fov_tolerance=float(_get(d, "fov_tolerance", (int, float), "domain", default=0.25)),
    )
    return ModelCard(name=_get(data, "name", str, "card", default=""), tasks=tasks, question_forms=forms,
                     domain=domain, intended_use=_get(data, "intended_use", str, "card", default=""),
                     version=_get(data, "version", str, "card", default=""), source=source)


def default_card(note: str = "") -> ModelCard:
    """The four task prompts of resources/prompts/tasks.json, one question each, no forms, unknown domain."""
    from inference.iir.prompts import task_question, task_title

    # one step each; with an organ the plan asks the prompt's own organ form (tasks.json)
    tasks = {task: (Step(task, task_title(task), task_question(task)),) for task in TASKS}
    return ModelCard(name="", tasks=tasks, source="default", note=note)


# -- the CT against the training domain ----------------------------------------------------------

def domain_check(card: ModelCard, ct) -> list[str]:
    """Why this CT lies outside the card's training domain (empty: inside, or nothing declared).
    ``ct``: a CTVolume (series_description, shape, spacing)."""
    d = card.domain
    out: list[str] = []
    if d.source == "synthetic_phantom":
        marker = d.source_marker.lower()
        if not marker or not (ct.series_description or "").lower().startswith(marker):
            out.append("the model was trained on synthetic phantoms only and this CT is not one of them: its "
                       "findings on a real CT are not meaningful")
    spacing = tuple(float(s) for s in ct.spacing)
    if d.grids and not any(_close(spacing, g.spacing_mm, d.spacing_tolerance) for g in d.grids):
        trained = "; ".join(f"{_mm(g.spacing_mm)} ({'x'.join(map(str, g.shape))})" for g in d.grids)
        out.append(f"voxel spacing {_mm(spacing)} is outside the spacings the model was trained on ({trained})")
    if d.field_of_view_mm is not None:
        fov = tuple(n * s for n, s in zip(ct.shape, spacing))
        lo, hi = 1.0 - d.fov_tolerance, 1.0 / (1.0 - d.fov_tolerance)
        if not all(lo <= f / t <= hi for f, t in zip(fov, d.field_of_view_mm) if t > 0):
            out.append(f"field of view {_mm(fov, 0)} differs from the training field of view "
                       f"{_mm(d.field_of_view_mm, 0)}")
    return out


def _close(a: Sequence[float], b: Sequence[float], tol: float) -> bool:
    return all(abs(x - y) <= tol * y for x, y in zip(a, b))


def _mm(values: Sequence[float], digits: int = 2) -> str:
    """'366 x 303 x 90 mm', '0.8 x 0.8 x 2.5 mm': trailing zeros of the decimals only (90 stays 90)."""
    def one(v: float) -> str:
        text = f"{v:.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return " x ".join(one(v) for v in values) + " mm"


# -- question forms ------------------------------------------------------------------------------

_OPTIONS = re.compile(r"\s*Options:\s.*$", re.IGNORECASE | re.DOTALL)


def _strip_options(question: str) -> str:
    return _OPTIONS.sub("", question)


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip()).lower()


def _form_regex(form: str) -> re.Pattern:
    parts = [re.escape(_normal(p)) for p in _normal(form).split("{organ}")]
    return re.compile(r"[a-z0-9 ,'()\-]+?".join(parts))


# -- validation helpers --------------------------------------------------------------------------

def _get(d: Any, key: str, kind, where: str, default: Any = ...):
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected an object")
    if key not in d:
        if default is ...:
            raise ValueError(f"{where}.{key}: missing")
        return default
    value = d[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def _triple(values: Any, kind, where: str) -> tuple:
    if not isinstance(values, list) or len(values) != 3:
        raise ValueError(f"{where}: expected 3 numbers")
    try:
        out = tuple(kind(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected 3 numbers, got {values!r}") from None
    if min(out) <= 0:
        raise ValueError(f"{where}: every entry must be positive")
    return out


def _check_options(options: Any, where: str) -> None:
    if options is None:
        return
    if isinstance(options, list):
        if len(options) < 2 or not all(isinstance(o, str) and o for o in options):
            raise ValueError(f"{where}: a list of at least two option texts")
        return
    if isinstance(options, dict) and isinstance(options.get("by_organ"), dict):
        for organ, opts in options["by_organ"].items():
            _check_options(opts, f"{where}.by_organ.{organ}")
        return
    if isinstance(options, dict) and isinstance(options.get("organs_in_case"), list):
        if not all(isinstance(o, str) for o in options["organs_in_case"] + list(options.get("extra", []))):
            raise ValueError(f"{where}: organ names must be strings")
        return
    raise ValueError(f"{where}: a list, {{'by_organ': {{...}}}} or {{'organs_in_case': [...]}}")
