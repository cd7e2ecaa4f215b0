"""The radiologist's review of one run (schema ``tumorchain.review/1``), Qt-free.

Each reviewable item (every IIR round, and the conclusion) carries the AI text as the run
produced it, untouched, and beside it the radiologist's decision: pending | agreed | edited |
rejected, with the edited text and a comment. Nothing the AI wrote is ever overwritten: an
edit is stored next to it.

Sign-off: once every item is decided, the reviewer confirms and the review is signed. After
that the decisions are frozen; a later change is appended as an Amendment (who, when, why),
and ``effective(key)`` gives the latest word on an item. Every decision ever taken, draft or
amendment, is also appended to ``history`` so the audit trail survives later changes.

Saving and autosaving live in review_store.py.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from inference.json_fields import field as _field, list_field as _list, need as _need
from inference.vocabulary import DECISIONS

SCHEMA = "tumorchain.review/1"
CONCLUSION = "conclusion"


class ReviewError(ValueError):
    """A review action that is not allowed now (e.g. signing with pending items)."""


def round_key(index: int) -> str:
    """The item key of IIR round ``index`` (1-based)."""
    return f"round-{int(index)}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def run_key(run: Any) -> str:
    """A stable 16-hex id of a run: what the case, model, question and AI texts were.

    Independent of file paths, so a run.json moved elsewhere keys the same review.
    """
    ident = {
        "case": run.case.content_hash, "masks": run.segmentation.mask_hash, "model": run.model.weight_hash,
        "question": run.question, "created": run.created,
        "rounds": [r.text for r in run.rounds], "answer": run.conclusion.answer,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Decision:
    """The radiologist's word on one item. text: their version (only when decision == 'edited')."""

    decision: str = "pending"
    text: str | None = None
    comment: str = ""
    reviewer: str = ""
    at: str = ""


@dataclass
class ReviewItem:
    """One reviewable item: the AI text (immutable) and the current decision."""

    key: str
    ai_text: str
    current: Decision = field(default_factory=Decision)


@dataclass
class Amendment:
    """A change after sign-off; never replaces the signed decision, only follows it."""

    number: int
    key: str
    decision: Decision
    reason: str


@dataclass
class SignOff:
    reviewer: str
    at: str


@dataclass
class HistoryEvent:
    key: str
    decision: Decision
    kind: str  # "draft" | "amendment" | "signed"


class Review:
    """The review of one run. Build with ``Review.for_run(run, reviewer)``."""

    def __init__(self, run_key: str, case_id: str, items: list[ReviewItem], reviewer: str = "",
                 created: str | None = None, modified: str | None = None, signed: SignOff | None = None,
                 amendments: list[Amendment] | None = None, history: list[HistoryEvent] | None = None):
        self.run_key = run_key
        self.case_id = case_id
        self.reviewer = reviewer
        self._items = {it.key: it for it in items}
        if len(self._items) != len(items):
            raise ReviewError("duplicate item keys")
        self.created = created or now_iso()
        self.modified = modified or self.created
        self.signed = signed
        self.amendments = list(amendments or [])
        self.history = list(history or [])

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def for_run(cls, run: Any, reviewer: str = "") -> "Review":
        """A fresh review, every item pending: one per round (AI text = round text) + the conclusion
        (AI text = the conclusion's answer)."""
        items = [ReviewItem(round_key(r.index), r.text) for r in run.rounds]
        items.append(ReviewItem(CONCLUSION, run.conclusion.answer))
        return cls(run_key(run), run.case.case_id, items, reviewer=reviewer)

    # -- reading -----------------------------------------------------------------------------------

    @property
    def keys(self) -> list[str]:
        return list(self._items)

    def ai_text(self, key: str) -> str:
        return self._item(key).ai_text

    def current(self, key: str) -> Decision:
        """The decision before any amendment (the signed one once signed)."""
        return replace(self._item(key).current)

    def effective(self, key: str) -> Decision:
        """The latest word on an item: its last amendment, else its current decision."""
        for a in reversed(self.amendments):
            if a.key == key:
                return replace(a.decision)
        return self.current(key)

    def effective_text(self, key: str) -> str:
        """The text a reader should take: the radiologist's when edited, else the AI's."""
        d = self.effective(key)
        return d.text if d.decision == "edited" and d.text is not None else self.ai_text(key)

    def pending(self) -> list[str]:
        return [k for k in self._items if self.effective(k).decision == "pending"]

    def is_complete(self) -> bool:
        return not self.pending()

    @property
    def is_signed(self) -> bool:
        return self.signed is not None

    # -- changing ----------------------------------------------------------------------------------

    def decide(self, key: str, decision: str, *, text: str | None = None, comment: str = "",
               reviewer: str | None = None, reason: str = "") -> Decision:
        """Record a decision on an item; after sign-off this appends an amendment (``reason`` why).

        'edited' needs ``text`` (the radiologist's version); other decisions take none.
        """
        item = self._item(key)
        if decision not in DECISIONS:
            raise ReviewError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
        if decision == "edited":
            if text is None or not text.strip():
                raise ReviewError(f"{key}: an edit needs the edited text")
        elif text is not None:
            raise ReviewError(f"{key}: only an 'edited' decision carries text")
        who = self.reviewer if reviewer is None else reviewer
        d = Decision(decision, text, comment, who, now_iso())
        if self.signed is None:
            item.current = d
            self.history.append(HistoryEvent(key, replace(d), "draft"))
        else:
            if decision == "pending":
                raise ReviewError(f"{key}: a signed review cannot return an item to pending")
            self.amendments.append(Amendment(len(self.amendments) + 1, key, d, reason))
            self.history.append(HistoryEvent(key, replace(d), "amendment"))
        self.modified = d.at
        return replace(d)

    def sign(self, reviewer: str | None = None, *, confirm: bool) -> SignOff:
        """Sign the review. Needs every item decided and ``confirm=True`` (the reviewer's explicit OK)."""
        if self.signed is not None:
            raise ReviewError(f"already signed by {self.signed.reviewer} at {self.signed.at}")
        if not confirm:
            raise ReviewError("signing needs the reviewer's confirmation")
        if self.pending():
            raise ReviewError(f"cannot sign: still pending: {', '.join(self.pending())}")
        who = (self.reviewer if reviewer is None else reviewer).strip()
        if not who:
            raise ReviewError("cannot sign without a reviewer name")
        self.reviewer = who
        self.signed = SignOff(who, now_iso())
        self.history.append(HistoryEvent("*", Decision("signed", None, "", who, self.signed.at), "signed"))
        self.modified = self.signed.at
        return replace(self.signed)

    def check_matches(self, run: Any) -> None:
        """Raise ReviewError when this review belongs to another run (other AI texts)."""
        if self.run_key != run_key(run):
            raise ReviewError(f"this review is of run {self.run_key}, not of run {run_key(run)}")
        fresh = Review.for_run(run)
        if fresh.keys != self.keys or any(fresh.ai_text(k) != self.ai_text(k) for k in self.keys):
            raise ReviewError("the review's AI texts differ from the run's")

    # -- JSON --------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "run_key": self.run_key, "case_id": self.case_id, "reviewer": self.reviewer,
            "created": self.created, "modified": self.modified,
            "items": [asdict(it) for it in self._items.values()],
            "signed": asdict(self.signed) if self.signed else None,
            "amendments": [asdict(a) for a in self.amendments],
            "history": [asdict(h) for h in self.history],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: Any) -> "Review":
        """Validate and build; raises ValueError naming the bad field."""
        _need(d, dict, "review")
        schema = _field(d, "schema", str, "review")
        if schema != SCHEMA:
            raise ValueError(f"schema {schema!r} is not {SCHEMA!r}")
        items = []
        for i, it in enumerate(_field(d, "items", list, "review")):
            w = f"items[{i}]"
            items.append(ReviewItem(_field(it, "key", str, w), _field(it, "ai_text", str, w),
                                    _decision(_field(it, "current", dict, w), f"{w}.current")))
        signed = _field(d, "signed", (dict, type(None)), "review", default=None)
        if signed is not None:
            signed = SignOff(_field(signed, "reviewer", str, "signed"), _field(signed, "at", str, "signed"))
        amendments = [
            Amendment(_field(a, "number", int, f"amendments[{i}]"), _field(a, "key", str, f"amendments[{i}]"),
                      _decision(_field(a, "decision", dict, f"amendments[{i}]"), f"amendments[{i}].decision"),
                      _field(a, "reason", str, f"amendments[{i}]", default=""))
            for i, a in enumerate(_list(d, "amendments", "review"))
        ]
        history = [
            HistoryEvent(_field(h, "key", str, f"history[{i}]"),
                         _decision(_field(h, "decision", dict, f"history[{i}]"), f"history[{i}].decision",
                                   allow=DECISIONS + ("signed",)),
                         _field(h, "kind", str, f"history[{i}]"))
            for i, h in enumerate(_list(d, "history", "review"))
        ]
        keys = {it.key for it in items}
        for a in amendments:
            if a.key not in keys:
                raise ValueError(f"amendments[{a.number}]: unknown item {a.key!r}")
        try:
            return cls(_field(d, "run_key", str, "review"), _field(d, "case_id", str, "review"), items,
                       reviewer=_field(d, "reviewer", str, "review", default=""),
                       created=_field(d, "created", str, "review"), modified=_field(d, "modified", str, "review"),
                       signed=signed, amendments=amendments, history=history)
        except ReviewError as exc:
            raise ValueError(str(exc)) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Review) and self.to_dict() == other.to_dict()

    def _item(self, key: str) -> ReviewItem:
        try:
            return self._items[key]
        except KeyError:
            raise ReviewError(f"no review item {key!r}; items are {', '.join(self._items)}") from None


def _decision(d: dict, where: str, allow: tuple[str, ...] = DECISIONS) -> Decision:
    value = _field(d, "decision", str, where)
    if value not in allow:
        raise ValueError(f"{where}.decision: {value!r} is not one of {', '.join(allow)}")
    text = _field(d, "text", (str, type(None)), where, default=None)
    if value == "edited" and text is None:
        raise ValueError(f"{where}: an 'edited' decision needs its text")
    return Decision(value, text, _field(d, "comment", str, where, default=""),
                    _field(d, "reviewer", str, where, default=""), _field(d, "at", str, where, default=""))
