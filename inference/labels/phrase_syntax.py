"""The small phrase language of resources/labels/synonyms.json and assertion_triggers.json,
and the compiler that turns thousands of phrases into ONE fast regular expression.

A phrase is words separated by spaces, matched case-insensitively, plus:

    (words)     optional words            "head of (the) pancreas"
    {a|b|c}     alternatives              "{esophagus|oesophagus}", "(the|a)"
    <name>      every form of a value set "<ordinal> rib"  (value sets live in the JSON)

A space in a phrase matches any run of whitespace, hyphens or underscores, so a phrase
"gall bladder" also finds "gall-bladder", "gall\\nbladder" and the machine name "gall_bladder".
A hyphen written in a phrase is optional in the text: "t12-l1" finds "T12-L1", "T12 - L1", "T12L1".

Why a trie: Python's ``re`` tries alternatives one by one, so 5000 phrases joined with "|"
cost 5000 attempts at every character. Nesting the alternatives by shared prefix makes each
text position cost one or two character tests, and trying longer continuations before
"phrase ends here" gives longest-match semantics ("pancreatic head" beats "pancreatic").
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SEP = "\x00"  # a space in a phrase: one or more separators required
OPT = "\x01"  # a hyphen in a phrase: separators optional
SEP_RE = r"[\s\-_\u2013]+"
OPT_RE = r"[\s\-\u2013]*"
_KEY_STRIP = re.compile(r"[\s\-_\u2013]+")
_SPACES = re.compile(r" {2,}")


class PhraseSyntaxError(ValueError):
    pass


def normalize_key(text: str) -> str:
    """Lookup key of a phrase or of matched text: lowercase, separators removed.
    "Gall-Bladder" -> "gallbladder", "T12 - L1" -> "t12l1"."""
    return _KEY_STRIP.sub("", text.lower())


def expand(phrase: str, value_sets: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """All plain phrases a templated phrase stands for, lowercased, single-spaced, in order.

    >>> expand("head of (the) pancreas")
    ['head of the pancreas', 'head of pancreas']
    """
    value_sets = value_sets or {}
    pos = 0

    def parse_alternatives(closing: str | None) -> list[str]:
        nonlocal pos
        alternatives = [[""]]
        while pos < len(phrase):
            ch = phrase[pos]
            if closing is not None and ch == closing:
                pos += 1
                return [s for alt in alternatives for s in alt]
            if ch == "|" and closing is not None:
                pos += 1
                alternatives.append([""])
                continue
            if ch in "({":
                pos += 1
                inner = parse_alternatives(")" if ch == "(" else "}")
                if ch == "(":
                    inner = inner + [""]
                alternatives[-1] = [a + b for a in alternatives[-1] for b in inner]
            elif ch == "<":
                end = phrase.find(">", pos)
                if end < 0:
                    raise PhraseSyntaxError(f"unclosed '<' in phrase {phrase!r}")
                name = phrase[pos + 1:end]
                if name not in value_sets:
                    raise PhraseSyntaxError(f"unknown value set <{name}> in phrase {phrase!r}")
                pos = end + 1
                forms = [str(f) for f in value_sets[name]]
                alternatives[-1] = [a + f for a in alternatives[-1] for f in forms]
            elif ch in ")}>|":
                raise PhraseSyntaxError(f"unexpected {ch!r} in phrase {phrase!r}")
            else:
                pos += 1
                alternatives[-1] = [a + ch for a in alternatives[-1]]
        if closing is not None:
            raise PhraseSyntaxError(f"unclosed group in phrase {phrase!r}")
        return [s for alt in alternatives for s in alt]

    out: list[str] = []
    seen: set[str] = set()
    for raw in parse_alternatives(None):
        plain = _SPACES.sub(" ", raw.lower()).strip()
        if plain and plain not in seen:
            seen.add(plain)
            out.append(plain)
    return out


def _units(phrase: str) -> list[str]:
    units: list[str] = []
    for ch in phrase:
        if ch == " ":
            if units and units[-1] in (SEP, OPT):
                units[-1] = SEP
            else:
                units.append(SEP)
        elif ch == "-":
            if not (units and units[-1] in (SEP, OPT)):
                units.append(OPT)
        else:
            units.append(ch)
    return units


class _Node:
    __slots__ = ("children", "end")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.end = False


def _unit_re(unit: str) -> str:
    if unit == SEP:
        return SEP_RE
    if unit == OPT:
        return OPT_RE
    return re.escape(unit)


def _emit(node: _Node, last_unit: str) -> str:
    alternatives = [
        _unit_re(unit) + _emit(child, unit)
        # Separators last among siblings: a letter continuing the word is tried first.
        for unit, child in sorted(node.children.items(), key=lambda kv: (kv[0] in (SEP, OPT), kv[0]))
    ]
    if node.end:
        # "Phrase ends here" is tried last so that longer phrases win; a phrase ending in a
        # word character must end at a word boundary.
        alternatives.append(r"(?!\w)" if re.match(r"\w", last_unit) else "")
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"


def trie_regex(phrases: Iterable[str]) -> str:
    """One regex source matching any of ``phrases`` (already expanded, plain), longest first,
    starting and ending at word boundaries where the phrase starts/ends with a word character.
    Contains no capturing groups."""
    root = _Node()
    for phrase in phrases:
        units = _units(phrase.strip().lower())
        if not units or units[0] in (SEP, OPT) or units[-1] in (SEP, OPT):
            raise PhraseSyntaxError(f"phrase {phrase!r} must start and end with a character")
        node = root
        for unit in units:
            node = node.children.setdefault(unit, _Node())
        node.end = True
    if not root.children:
        return r"(?!x)x"  # matches nothing
    # Test "word start" and the first character once per position, before branching: sre has
    # no first-character filter for a pattern this large, so this is what keeps it fast.
    word_units = sorted(u for u in root.children if re.match(r"\w", u))
    other_units = sorted(u for u in root.children if not re.match(r"\w", u))
    branches = []
    if word_units:
        first = "".join(re.escape(u) for u in word_units)
        alts = "|".join(_unit_re(u) + _emit(root.children[u], u) for u in word_units)
        branches.append(rf"(?<!\w)(?=[{first}])(?:{alts})")
    for unit in other_units:
        branches.append(_unit_re(unit) + _emit(root.children[unit], unit))
    return "(?:" + "|".join(branches) + ")"
