"""Load resources/labels/synonyms.json into a lexicon: normalized phrase -> candidate labels.

The JSON holds the vocabulary (see its "notes"); this module only expands it:
terms, lateral pairs (left/right/both/bare), numbered templates ("segment <N>"), the display
and machine name of every label in the table, and checks that every label name exists.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .organ_labels import LabelTable, merged_labels
from .phrase_syntax import PhraseSyntaxError, expand, normalize_key

SYNONYMS_FILE = Path(__file__).resolve().parents[2] / "resources" / "labels" / "synonyms.json"
WINDOWS = ("sentence", "near")


@dataclass(frozen=True)
class Candidate:
    """One reading of a phrase. ``labels`` are label names; empty means 'names no organ'."""

    labels: tuple[str, ...]
    plural: bool = False
    context: str | None = None  # a key of Lexicon.contexts, or None = always counts
    window: str = "near"
    left: tuple[str, ...] | None = None  # for a paired organ: the labels when "left ..." precedes it
    right: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SegmentListSpec:
    """Grammar data for 'segments 6 and 7', 'segments V-VIII', 'S6/7'."""

    forms: dict[str, tuple[str, ...]]  # label name -> numeral forms ("7", "VII")
    s_forms: dict[str, tuple[str, ...]]  # label name -> forms after a bare 'S' ("7")
    s_context: str
    words: tuple[str, ...]
    connectors: tuple[str, ...]
    range_connectors: tuple[str, ...]


@dataclass
class Lexicon:
    phrases: dict[str, list[Candidate]] = field(default_factory=dict)  # normalize_key -> readings
    texts: dict[str, set[str]] = field(default_factory=dict)  # normalize_key -> spellings (for the trie)
    contexts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # context -> label names
    prefixes: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # longest first
    side_words: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "left"/"right"/"both" -> phrases
    segment_lists: SegmentListSpec | None = None
    source: str = ""

    def add(self, plain: str, cand: Candidate, where: str) -> None:
        key = normalize_key(plain)
        readings = self.phrases.setdefault(key, [])
        self.texts.setdefault(key, set()).add(plain)
        for i, old in enumerate(readings):
            if old.context == cand.context:
                if set(old.labels) != set(cand.labels):
                    raise ValueError(f"{self.source}: phrase {plain!r} ({where}) names {list(cand.labels)} "
                                     f"but an earlier entry names {list(old.labels)}")
                readings[i] = Candidate(old.labels, old.plural or cand.plural, old.context, old.window,
                                        old.left or cand.left, old.right or cand.right)
                return
        readings.append(cand)
        # Conditional readings first: they are tried before the unconditional fallback.
        readings.sort(key=lambda c: c.context is None)


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read synonyms ({exc})") from exc


def build_lexicon(table: LabelTable | None = None, path: Path | None = None) -> Lexicon:
    """Expand the synonyms file against ``table`` (default: the merged scheme)."""
    table = table or merged_labels()
    path = path or SYNONYMS_FILE
    data = _load_json(path)
    lex = Lexicon(source=str(path))
    known = {lab.name for lab in merged_labels()} | {lab.name for lab in table}
    value_sets = data.get("value_sets", {})

    def check(names, where: str) -> tuple[str, ...]:
        for name in names:
            if name not in known:
                raise ValueError(f"{path}: unknown label name {name!r} in {where}")
        return tuple(names)

    def add_all(raw: str, cand: Candidate, where: str) -> None:
        try:
            plains = expand(raw, value_sets)
        except PhraseSyntaxError as exc:
            raise ValueError(f"{path}: {exc} ({where})") from exc
        for plain in plains:
            lex.add(plain, cand, where)

    try:
        contexts = {k: check(v, f"contexts.{k}") for k, v in data["contexts"].items()}
        lex.contexts = contexts

        def context_of(entry: dict, where: str) -> tuple[str | None, str]:
            ctx, window = entry.get("context"), entry.get("window", "near")
            if ctx is not None and ctx not in contexts:
                raise ValueError(f"{path}: unknown context {ctx!r} in {where}")
            if window not in WINDOWS:
                raise ValueError(f"{path}: window must be one of {WINDOWS}, got {window!r} in {where}")
            return ctx, window

        for n, entry in enumerate(data["terms"]):
            where = f"terms[{n}]"
            labels = check(entry["labels"], where)
            ctx, window = context_of(entry, where)
            for raw in entry["phrases"]:
                add_all(raw, Candidate(labels, False, ctx, window), where)
            for raw in entry.get("plurals", []):
                add_all(raw, Candidate(labels, True, ctx, window), where)

        sides = data["side_words"]
        lex.side_words = {k: tuple(sides[k]) for k in ("left", "right", "both")}
        for n, entry in enumerate(data["lateral"]):
            where = f"lateral[{n}]"
            left, right, also = (check(entry.get(k, []), where) for k in ("left", "right", "also"))
            left, right = _unique(left + also), _unique(right + also)
            for raw, plural in [(p, False) for p in entry["phrases"]] + [(p, True) for p in entry.get("plurals", [])]:
                if "{side}" in raw:  # side inside the phrase ("7th left rib"): spell out both sides
                    for side, labels in (("left", left), ("right", right)):
                        group = "{" + "|".join(sides[side]) + "}"
                        add_all(raw.replace("{side}", group), Candidate(labels, plural), where)
                else:  # a side word before it is attached by the matcher ("left" + "kidney")
                    add_all(raw, Candidate(_unique(right + left), plural, left=left, right=right), where)

        value_maps = data["value_maps"]
        for n, entry in enumerate(data["numbered"]):
            where = f"numbered[{n}]"
            ctx, window = context_of(entry, where)
            for name, forms in value_maps[entry["values"]].items():
                labels = check([name], where)
                group = "{" + "|".join(forms) + "}"
                for raw in entry["phrases"]:
                    add_all(raw.replace("<N>", group), Candidate(labels, False, ctx, window), where)

        for n, raw in enumerate(data["ignore"]):
            add_all(raw, Candidate(()), f"ignore[{n}]")

        lex.prefixes = sorted(((p["prefix"].lower(), check(p["labels"], f"prefixes[{n}]"))
                               for n, p in enumerate(data["prefixes"])), key=lambda x: -len(x[0]))

        seg = data["segment_lists"]
        if seg["s_context"] not in contexts:
            raise ValueError(f"{path}: unknown context {seg['s_context']!r} in segment_lists")
        lex.segment_lists = SegmentListSpec(
            forms={check([k], "segment_lists")[0]: tuple(v) for k, v in value_maps[seg["values"]].items()},
            s_forms={check([k], "segment_lists")[0]: tuple(v) for k, v in value_maps[seg["s_values"]].items()},
            s_context=seg["s_context"],
            words=tuple(w.lower() for w in seg["words"]),
            connectors=tuple(seg["connectors"]),
            range_connectors=tuple(seg["range_connectors"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: missing or malformed section {exc}") from exc

    # Every label answers to its own display and machine name unless the file says otherwise.
    side_prefixes = [f"{w.lower()} " for words in lex.side_words.values() for w in words]
    for lab in table:
        for raw in (lab.display, lab.name.replace("_", " ")):
            plain = " ".join(raw.lower().split())
            if normalize_key(plain) in lex.phrases or _is_side_plus_paired(plain, side_prefixes, lex):
                continue
            lex.add(plain, Candidate((lab.name,)), f"label {lab.id} name")
    return lex


def _is_side_plus_paired(plain: str, side_prefixes: list[str], lex: Lexicon) -> bool:
    """'right kidney' is already understood as side word + paired organ."""
    for prefix in side_prefixes:
        if plain.startswith(prefix):
            readings = lex.phrases.get(normalize_key(plain[len(prefix):]))
            if readings and readings[0].left is not None:
                return True
    return False


def _unique(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    return build_lexicon(merged_labels())
