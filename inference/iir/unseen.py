"""Organs a round's text names although the case has no mask for them: the model never saw their
own tokens, so whatever the text says about them rests on the global view at best. The loop records
them as skipped (kind "no_mask"); this marks every round that names one, so the window, run.json
and the report can say so beside the text instead of presenting it as a finding."""
from __future__ import annotations

from typing import Sequence

from .rounds import Round


def unmasked_organs(rounds: Sequence[Round]) -> set[str]:
    """Label names some round skipped for want of a mask (label names, as Round.named_organs)."""
    return {s.name for r in rounds for s in r.skipped_organs if s.kind == "no_mask"}


def unseen_in(rnd: Round, rounds: Sequence[Round]) -> list[str]:
    """Label names this round's text names that have no mask in the case."""
    missing = unmasked_organs(rounds)
    return [n for n in rnd.named_organs if n in missing]


def unseen_note(names: Sequence[str], display=lambda n: n) -> str:
    shown = ", ".join(display(n) for n in names)
    return (f"Not seen: the text names the {shown}, which has no mask in this case; no local view was "
            "examined, so what it says about it is not a finding")


def unseen_warnings(rounds: Sequence[Round]) -> list[str]:
    out = []
    for r in rounds:
        names = unseen_in(r, rounds)
        if names:
            out.append(f"Round {r.index}: " + unseen_note(names))
    return out
