"""The paper's organ matching operation Lambda (eq. 2): which organs does a text name?

``match_organs(text)`` finds every organ mention in a question or a model answer and
resolves it to label ids of the merged scheme (organs 1..56, substructures >= 100). The IIR
loop calls it on each answer to decide which organs' tokens to add in the next round, so it is
one precompiled regular expression over the whole vocabulary (resources/labels/synonyms.json),
linear in the text, and deterministic.

Rules: case-insensitive, whole words, longest match wins ("pancreatic head" beats
"pancreatic"), separators may be spaces, hyphens or line breaks. One mention may resolve to
several labels ("kidneys" -> both kidneys, "right lobe of the liver" -> segments V-VIII,
"hepatic flexure" -> ascending + transverse colon). Phrases that only count in a context
("S7" near the liver, "T12" near the spine) are kept only when that context is named nearby.
Negation / uncertainty come from inference/labels/negation.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .clauses import ClauseMap, clause_map
from .negation import default_scanner
from .organ_labels import LabelTable, merged_labels
from .phrase_syntax import SEP_RE, expand, normalize_key, trie_regex
from .synonyms import Candidate, Lexicon, SegmentListSpec, build_lexicon, default_lexicon

_SEG_TOKEN = re.compile(r"[a-z]+|\d+[a-z]?|[-\u2013]")  # words, numerals ("4a"), range dashes


@dataclass(frozen=True)
class OrganMention:
    """One organ named in a text. ``start``/``end`` are character offsets; ``surface`` is
    ``text[start:end]``. ``label_ids`` are sorted merged-scheme ids (several for "kidneys").
    ``negated`` covers both "no X" and "X is unremarkable"; ``normal`` tells the second case
    apart. ``trigger`` is the negation/uncertainty phrase that set the flags ("" if none)."""

    label_ids: tuple[int, ...]
    surface: str
    start: int
    end: int
    negated: bool = False
    uncertain: bool = False
    plural: bool = False
    normal: bool = False
    trigger: str = ""


@dataclass(frozen=True)
class _Raw:
    start: int
    end: int
    readings: tuple[Candidate, ...]


class OrganMatcher:
    """The vocabulary of one LabelTable compiled into one regex."""

    def __init__(self, table: LabelTable, lexicon: Lexicon, share: OrganMatcher | None = None):
        """``share``: a matcher of the same lexicon whose compiled regexes can be reused."""
        self.table = table
        self.lexicon = lexicon
        self._ids = self._name_to_ids(table)
        self._organ_cache: dict[tuple[int, ...], frozenset[int]] = {}
        self._context_ids = {name: frozenset(table.parent_or_self(i) for n in names for i in self._ids.get(n, ()))
                             for name, names in lexicon.contexts.items()}
        if share is not None and share.lexicon is lexicon:
            self._regex, self._side_before, self._side_of = share._regex, share._side_before, share._side_of
            self._numeral, self._s_numeral = share._numeral, share._s_numeral
            self._seg_order = share._seg_order
            return
        seg = lexicon.segment_lists
        parts = [f"(?P<seg>{self._segment_list_re(seg, s_form=False)})",
                 f"(?P<sseg>{self._segment_list_re(seg, s_form=True)})",
                 f"(?P<term>{trie_regex(sorted(t for spellings in lexicon.texts.values() for t in spellings))})"]
        if lexicon.prefixes:
            stems = "|".join(re.escape(p) for p, _ in lexicon.prefixes)
            parts.append(rf"(?P<prefix>(?<!\w)(?:{stems})[a-z]*(?!\w))")
        # One word-start test per position for all four alternatives (see phrase_syntax).
        self._regex = re.compile(r"(?<!\w)(?=\w)(?:" + "|".join(parts) + ")", re.IGNORECASE)
        side_phrases = {plain: side for side, raws in lexicon.side_words.items() for raw in raws
                        for plain in expand(raw)}
        self._side_of = {normalize_key(p): side for p, side in side_phrases.items()}
        self._side_before = re.compile(f"({trie_regex(sorted(side_phrases))}){SEP_RE}$", re.IGNORECASE)
        self._numeral = {f.lower(): name for name, forms in seg.forms.items() for f in forms}
        self._s_numeral = {f.lower(): name for name, forms in seg.s_forms.items() for f in forms}
        self._seg_order = list(seg.forms)  # label names in numeral order (segment 1..8)

    # -- compile ------------------------------------------------------------------------------
    def _name_to_ids(self, table: LabelTable) -> dict[str, tuple[int, ...]]:
        """Label name -> ids in ``table``; a substructure missing from the table falls back to
        its parent organ, a name with neither to nothing."""
        default = merged_labels()
        out: dict[str, tuple[int, ...]] = {}
        for lab in list(default) + list(table):
            if lab.name in table:
                out[lab.name] = (table.by_name(lab.name).id,)
            elif lab.parent is not None and default.by_id(lab.parent).name in table:
                out[lab.name] = (table.by_name(default.by_id(lab.parent).name).id,)
            else:
                out[lab.name] = ()
        return out

    @staticmethod
    def _segment_list_re(seg: SegmentListSpec, s_form: bool) -> str:
        forms = sorted({f for fs in (seg.s_forms if s_form else seg.forms).values() for f in fs}, key=len, reverse=True)
        num = "(?:" + "|".join(re.escape(f) for f in forms) + r")(?!\w)(?![.,]\d)(?!\s*(?:cm|mm)\b)"
        conn = r"\s*(?:" + "|".join(re.escape(c) for c in sorted(seg.connectors, key=len, reverse=True)) + r")\s*"
        if s_form:
            return rf"(?<!\w)S{num}(?:{conn}S?{num})+"
        words = "(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(seg.words, key=len, reverse=True)) + ")"
        return rf"(?<!\w){words}\s+{num}(?:{conn}(?:{words}\s+)?{num})+"

    # -- match --------------------------------------------------------------------------------
    def _segment_labels(self, surface: str, s_form: bool) -> tuple[str, ...]:
        """'segments 5-8' -> liver_segment_5..8; 'segments VI and VII' -> 6, 7; 'S6/7' -> 6, 7."""
        lookup = self._s_numeral if s_form else self._numeral
        ranges = self.lexicon.segment_lists.range_connectors
        names: list[str] = []
        pending_range = False
        for tok in _SEG_TOKEN.findall(surface.lower()):
            if tok in lookup:
                name = lookup[tok]
                if pending_range and names:  # "5-8": every segment between, in value-map order
                    lo, hi = sorted((self._seg_order.index(names[-1]), self._seg_order.index(name)))
                    names += self._seg_order[lo:hi + 1]
                else:
                    names.append(name)
                pending_range = False
            elif tok in ranges:
                pending_range = True
        return tuple(dict.fromkeys(names))

    def _with_side(self, text: str, start: int, floor: int, readings: tuple[Candidate, ...]):
        """Attach a side word right before a paired organ: 'left' + 'kidney' -> left kidney."""
        window_start = max(floor, start - 24)
        m = self._side_before.search(text, window_start, start)
        if m is None:
            return start, readings
        side = self._side_of[normalize_key(m.group(1))]
        out = []
        for cand in readings:
            if cand.left is None:
                return start, readings  # not a paired organ
            labels = cand.labels if side == "both" else (cand.left if side == "left" else cand.right)
            out.append(Candidate(labels, cand.plural or side == "both", cand.context, cand.window))
        return m.start(), tuple(out)

    def _raw_mentions(self, text: str) -> list[_Raw]:
        out: list[_Raw] = []
        for m in self._regex.finditer(text):
            kind, surface = m.lastgroup, m.group()
            start = m.start()
            if kind == "term":
                # A surface without separators is its own key; skip the normalizing regex then.
                readings = self.lexicon.phrases.get(surface.lower()) or self.lexicon.phrases[normalize_key(surface)]
                readings = tuple(readings)
                if readings[0].left is not None:
                    start, readings = self._with_side(text, start, out[-1].end if out else 0, readings)
            elif kind == "seg":
                readings = (Candidate(self._segment_labels(surface, False), True),)
            elif kind == "sseg":
                ctx = self.lexicon.segment_lists.s_context
                readings = (Candidate(self._segment_labels(surface, True), True, ctx, "near"),)
            else:
                low = surface.lower()
                labels = next(labs for p, labs in self.lexicon.prefixes if low.startswith(p))
                readings = (Candidate(labels),)
            out.append(_Raw(start, m.end(), readings))
        return out

    def _resolve(self, raws: list[_Raw], clauses: ClauseMap) -> list[tuple[_Raw, Candidate, tuple[int, ...]]]:
        """Pick one reading per raw match; drop 'ignore' phrases and unmet contexts."""
        chosen: dict[int, tuple[Candidate, tuple[int, ...]]] = {}
        for n, raw in enumerate(raws):
            first = raw.readings[-1]
            if first.context is None:  # unconditional reading (conditional ones sort first)
                ids = self._ids_of(first)
                if len(raw.readings) == 1:
                    chosen[n] = (first, ids)
        if len(chosen) == len(raws):
            return [(raw, chosen[n][0], chosen[n][1]) for n, raw in enumerate(raws) if chosen[n][1]]
        for _ in range(3):  # resolved contextual mentions may support others ("S6 ... S7")
            changed = False
            support = [(raw, self._organs_of(chosen[n][1])) for n, raw in enumerate(raws) if n in chosen and chosen[n][1]]
            for n, raw in enumerate(raws):
                if n in chosen:
                    continue
                pick = self._pick_reading(raw, support, clauses)
                if pick is not None:
                    chosen[n] = (pick, self._ids_of(pick))
                    changed = True
            if not changed:
                break
        for n, raw in enumerate(raws):  # unconditional fallbacks of phrases whose contexts failed
            if n not in chosen and raw.readings[-1].context is None:
                chosen[n] = (raw.readings[-1], self._ids_of(raw.readings[-1]))
        return [(raw, chosen[n][0], chosen[n][1]) for n, raw in enumerate(raws) if n in chosen and chosen[n][1]]

    def _pick_reading(self, raw: _Raw, support, clauses: ClauseMap) -> Candidate | None:
        best, best_dist = None, None
        sentence = clauses.sentence_of(raw.start)
        for cand in raw.readings:
            if cand.context is None:
                continue
            wanted = self._context_ids[cand.context]
            lowest = sentence if cand.window == "sentence" else sentence - 1
            for other, ids in support:
                if other is raw or not (ids & wanted):
                    continue
                if not lowest <= clauses.sentence_of(other.start) <= sentence:
                    continue
                dist = abs(other.start - raw.start)
                if best_dist is None or dist < best_dist:
                    best, best_dist = cand, dist
        return best

    def _organs_of(self, ids: tuple[int, ...]) -> frozenset[int]:
        organs = self._organ_cache.get(ids)
        if organs is None:
            organs = self._organ_cache[ids] = frozenset(self.table.parent_or_self(i) for i in ids)
        return organs

    def _ids_of(self, cand: Candidate) -> tuple[int, ...]:
        return tuple(sorted({i for name in cand.labels for i in self._ids.get(name, ())}))

    def match(self, text: str) -> list[OrganMention]:
        if not text:
            return []
        clauses = clause_map(text)
        resolved = self._resolve(self._raw_mentions(text), clauses)
        spans = [(raw.start, raw.end) for raw, _, _ in resolved]
        assertions = default_scanner().assess(text, spans, clauses)
        return [
            OrganMention(ids, text[raw.start:raw.end], raw.start, raw.end, a.negated, a.uncertain,
                         cand.plural, a.normal, a.trigger)
            for (raw, cand, ids), a in zip(resolved, assertions)
        ]


@lru_cache(maxsize=8)
def matcher_for(table: LabelTable | None = None) -> OrganMatcher:
    """The compiled matcher of a table (default: the merged scheme), built once."""
    default = merged_labels()
    if table is None or table is default:
        return OrganMatcher(default, default_lexicon())
    if all(lab.name in default and default.by_name(lab.name).display == lab.display for lab in table):
        # Same vocabulary (e.g. the organs without substructures): reuse the compiled regex;
        # names missing from the table resolve to their parent organ.
        return OrganMatcher(table, default_lexicon(), share=matcher_for(None))
    return OrganMatcher(table, build_lexicon(table))


def match_organs(text: str, table: LabelTable | None = None) -> list[OrganMention]:
    """Every organ mention in ``text``, in text order (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"match_organs expects a str, got {type(text).__name__}")
    return matcher_for(table).match(text)


def organs_named(text: str, table: LabelTable | None = None, include_negated: bool = True) -> list[int]:
    """Unique label ids named in ``text`` in order of first mention (ids of one mention ascending)."""
    seen: dict[int, None] = {}
    for mention in match_organs(text, table):
        if mention.negated and not include_negated:
            continue
        for i in mention.label_ids:
            seen.setdefault(i, None)
    return list(seen)


def parent_or_self(label_id: int, table: LabelTable | None = None) -> int:
    """The organ a label belongs to: a substructure's parent (liver_segment_7 -> liver), else itself."""
    return (table or merged_labels()).parent_or_self(label_id)
