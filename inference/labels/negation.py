"""NegEx-style assertion status of organ mentions: negated, called normal, or uncertain.

Trigger phrases, terminators and the small word lists live in
resources/labels/assertion_triggers.json (its "notes" state the rules); this module applies them:

- a 'pre' trigger covers every mention after it up to the end of its clause, a terminator
  ("but", "however", ", with") or the next pre/pseudo trigger
  ("No focal lesion in the liver or spleen." -> both negated);
- a 'post' trigger covers the coordinated list of mentions right before it: only list_glue
  words may stand between ("The liver and spleen are unremarkable."), plus finding words right
  after the nearest organ ("Liver metastases are excluded."); a list member that is the object
  of a preposition ("mass in the liver, spleen unremarkable") is left out;
- 'pre_post' is both; 'adjacent' covers glue-connected mentions on either side
  ("unremarkable pancreas", "pancreas unremarkable");
- a header "Pancreas: no mass." lends the trigger opening the text after the colon to the
  mentions before the colon;
- each mention takes the nearest trigger that covers it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .clauses import ClauseMap
from .phrase_syntax import expand, normalize_key, trie_regex

TRIGGERS_FILE = Path(__file__).resolve().parents[2] / "resources" / "labels" / "assertion_triggers.json"
KINDS = ("negation", "normal", "uncertain", "pseudo")
DIRECTIONS = ("pre", "pre_post", "post", "adjacent")
_TOKEN = re.compile(r"[a-z]+|\d+(?:\.\d+)?|[^\sa-z\d]")
_PUNCT_GLUE = frozenset(",()/-\u2013&'\"*\u2022")


@dataclass(frozen=True)
class Assertion:
    negated: bool = False
    uncertain: bool = False
    normal: bool = False  # negated because the text calls the organ normal/unremarkable
    trigger: str = ""  # the trigger text that set the status, "" if none


PRESENT = Assertion()


@dataclass(frozen=True)
class _Trigger:
    start: int
    end: int
    kind: str  # one of KINDS or "terminator"
    direction: str  # one of DIRECTIONS ("pre" for terminators)

    @property
    def forward(self) -> bool:
        return self.direction in ("pre", "pre_post", "adjacent")

    @property
    def backward(self) -> bool:
        return self.direction in ("post", "pre_post", "adjacent")


class AssertionScanner:
    """Compiled trigger lists. ``assess(text, spans, clauses)`` -> one Assertion per span."""

    def __init__(self, spec: dict, source: str = "assertion_triggers.json"):
        self._kind_of: dict[str, tuple[str, str]] = {}
        phrases: list[str] = []

        def add(raw: str, kind: str, direction: str) -> None:
            for plain in expand(raw):
                key = normalize_key(plain)
                if key in self._kind_of and self._kind_of[key] != (kind, direction):
                    raise ValueError(f"{source}: trigger {plain!r} is listed twice with different roles "
                                     f"{self._kind_of[key]} and {(kind, direction)}")
                self._kind_of[key] = (kind, direction)
                phrases.append(plain)

        try:
            for kind in KINDS:
                for direction in DIRECTIONS:
                    for raw in spec["triggers"][kind][direction]:
                        add(raw, kind, direction)
            for raw in spec["terminators"]:
                add(raw, "terminator", "pre")
            self._glue = frozenset(w for g in spec["list_glue"] for w in g.lower().split())
            self._findings = frozenset(w for g in spec["modifier_findings"] for w in g.lower().split())
            self._prepositions = frozenset(w.lower() for w in spec["prepositions"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: missing or malformed section {exc}") from exc
        self._regex = re.compile(trie_regex(phrases), re.IGNORECASE)

    # -- triggers -----------------------------------------------------------------------------
    def triggers(self, text: str, spans: list[tuple[int, int]]) -> list[_Trigger]:
        """Trigger and terminator matches, skipping any that overlap an organ mention."""
        out = []
        k = 0  # spans are sorted and disjoint: walk them alongside the matches
        for m in self._regex.finditer(text):
            start, end = m.span()
            while k < len(spans) and spans[k][1] <= start:
                k += 1
            if k < len(spans) and spans[k][0] < end:
                continue
            kind, direction = self._kind_of[normalize_key(m.group())]
            out.append(_Trigger(start, end, kind, direction))
        return out

    # -- gap tests ----------------------------------------------------------------------------
    def _tokens(self, gap: str) -> list[str]:
        return _TOKEN.findall(gap.lower())

    def _is_glue(self, gap: str, allow_findings: bool = False) -> bool:
        tokens = self._tokens(gap)
        i = 0
        if allow_findings:  # "Liver [metastases] are excluded": findings right after the organ
            while i < len(tokens) and tokens[i] in self._findings:
                i += 1
        return all(t in self._glue or t in _PUNCT_GLUE for t in tokens[i:])

    def _is_prepositional_object(self, text: str, start: int, floor: int) -> bool:
        """True when the words before ``start`` (back to a non-glue word) contain or end at a
        preposition that hangs off a non-glue word: 'mass in the [liver]'."""
        tokens = self._tokens(text[floor:start])
        saw_preposition = False
        for tok in reversed(tokens):
            if tok in self._prepositions:
                saw_preposition = True
                if tok not in self._glue:
                    return True
                continue
            if tok in self._glue or tok in _PUNCT_GLUE:
                continue
            return saw_preposition  # stopped at a content word
        return False  # reached the clause start or the previous mention

    # -- scopes -------------------------------------------------------------------------------
    def _backward_chain(self, text: str, spans, upto: int, clause_floor: int, first: int) -> list[int]:
        """Indices of the coordinated mentions ending before ``upto`` (a trigger or colon)."""
        chain: list[int] = []
        right = upto
        for i in range(first, -1, -1):
            s, e = spans[i]
            if s < clause_floor:
                break
            if not self._is_glue(text[e:right], allow_findings=not chain):
                break
            chain.append(i)
            right = s
        # Drop leftmost list members that are objects of a preposition ("mass in the liver,
        # spleen unremarkable"). The nearest mention always stays: in "Involvement of the
        # duodenum cannot be excluded" the trigger is about it.
        while len(chain) > 1:
            left = chain[-1]
            floor = spans[left - 1][1] if left > 0 and spans[left - 1][1] >= clause_floor else clause_floor
            if not self._is_prepositional_object(text, spans[left][0], floor):
                break
            chain.pop()
        return chain

    def _forward_chain(self, text: str, spans, start: int, clause_ceiling: int, first: int) -> list[int]:
        chain: list[int] = []
        left = start
        for i in range(first, len(spans)):
            s, e = spans[i]
            if s >= clause_ceiling or not self._is_glue(text[left:s]):
                break
            chain.append(i)
            left = e
        return chain

    def assess(self, text: str, spans: list[tuple[int, int]], clauses: ClauseMap) -> list[Assertion]:
        """Assertion of each (start, end) span (sorted by start) in ``text``."""
        if not spans:
            return []
        triggers = self.triggers(text, spans)
        best: list[tuple[int, Assertion] | None] = [None] * len(spans)

        def offer(i: int, distance: int, trig_text: str, kind: str) -> None:
            if kind == "pseudo":
                return
            if best[i] is None or distance < best[i][0]:
                best[i] = (distance, Assertion(negated=kind in ("negation", "normal"), uncertain=kind == "uncertain",
                                               normal=kind == "normal", trigger=trig_text))

        clause_of = clauses.clause_of
        starts = [s for s, _ in spans]
        for k, t in enumerate(triggers):
            if t.kind == "terminator":
                continue
            tc = clause_of(t.start)
            ceiling = clauses.clause_cuts[tc] if tc < len(clauses.clause_cuts) else len(text)
            floor = clauses.clause_start(t.start)
            first_after = _bisect_left(starts, t.end)
            trig_text = text[t.start:t.end]
            covered_forward = False
            if t.forward:
                if t.direction == "adjacent":
                    for i in self._forward_chain(text, spans, t.end, ceiling, first_after):
                        offer(i, spans[i][0] - t.end, trig_text, t.kind)
                else:
                    stop = ceiling
                    for later in triggers[k + 1:]:
                        if later.start >= ceiling:
                            break
                        if later.kind == "terminator" or later.direction in ("pre", "pre_post"):
                            stop = later.start
                            break
                    for i in range(first_after, len(spans)):
                        if spans[i][0] >= stop:
                            break
                        covered_forward = True
                        offer(i, spans[i][0] - t.end, trig_text, t.kind)
            # "not"/"does not" look back only when nothing follows them: "The liver is not
            # enlarged" vs "the hepatic flexure, not the liver".
            if t.direction == "pre_post" and covered_forward:
                continue
            if t.backward and first_after > 0:
                for i in self._backward_chain(text, spans, t.start, floor, first_after - 1):
                    offer(i, t.start - spans[i][1], trig_text, t.kind)

        self._headers(text, spans, clauses, triggers, offer)
        return [b[1] if b is not None else PRESENT for b in best]

    def _headers(self, text, spans, clauses: ClauseMap, triggers, offer) -> None:
        """'Liver: unremarkable.' / 'Pancreas: no mass.' -> the trigger after the colon covers the header."""
        starts = [s for s, _ in spans]
        for t in triggers:
            if t.kind in ("terminator", "pseudo") or not t.forward:
                continue
            colon = t.start - 1
            while colon >= 0 and text[colon] in " \t-*\u2022":
                colon -= 1
            if colon < 0 or text[colon] != ":":
                continue
            first_before = _bisect_left(starts, colon) - 1
            if first_before < 0:
                continue
            floor = clauses.clause_start(colon)
            for i in self._backward_chain(text, spans, colon, floor, first_before):
                offer(i, t.start - spans[i][1], text[t.start:t.end], t.kind)


def _bisect_left(values: list[int], x: int) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@lru_cache(maxsize=1)
def default_scanner() -> AssertionScanner:
    try:
        spec = json.loads(TRIGGERS_FILE.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{TRIGGERS_FILE}: cannot read assertion triggers ({exc})") from exc
    return AssertionScanner(spec, str(TRIGGERS_FILE))
