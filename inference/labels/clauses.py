"""Clause and sentence boundaries of report text, for negation scope and context windows.

A clause ends at . ; : ! ? and at line breaks that start a new item; a sentence ends at
. ! ? and at those line breaks (a colon or semicolon continues the sentence, so
"LIVER: lesion in S7" is one sentence). Not boundaries: decimal points ("2.3 cm"),
abbreviation dots followed by a lowercase word or glued to a letter ("approx. 2", "e.g."),
times ("10:30"), and line breaks inside a hard-wrapped sentence (next line lowercase).
"""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

# Each alternative is one boundary character (or newline run); group "strong" = sentence end too.
_BOUNDARY = re.compile(
    r"""
    (?=[!?.;:\n])                                   # cheap first-character filter
    (?:(?P<strong>
        [!?]
      | \.(?!\w)(?!\s+[a-z])        # full stop; not '2.3', 'e.g', nor 'approx. the'
      | \n[ \t]*\n\s*                                 # blank line
      | \n(?=[ \t]*(?:[A-Z0-9]|[-*\u2022\u00b7\u2013]\s))  # new line starting an item
    )
    | (?P<weak> ; | (?<!\d):|:(?!\d) ))
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class ClauseMap:
    """Boundary offsets of one text. ``clause_of(pos)`` / ``sentence_of(pos)`` give indices
    that are equal for two positions exactly when no boundary lies between them."""

    clause_cuts: tuple[int, ...]  # sorted offsets where a new clause starts
    sentence_cuts: tuple[int, ...]

    def clause_of(self, pos: int) -> int:
        return bisect_right(self.clause_cuts, pos)

    def sentence_of(self, pos: int) -> int:
        return bisect_right(self.sentence_cuts, pos)

    def clause_start(self, pos: int) -> int:
        i = bisect_right(self.clause_cuts, pos)
        return self.clause_cuts[i - 1] if i else 0


def clause_map(text: str) -> ClauseMap:
    clause_cuts: list[int] = []
    sentence_cuts: list[int] = []
    for m in _BOUNDARY.finditer(text):
        clause_cuts.append(m.end())
        if m.lastgroup == "strong":
            sentence_cuts.append(m.end())
    return ClauseMap(tuple(clause_cuts), tuple(sentence_cuts))
