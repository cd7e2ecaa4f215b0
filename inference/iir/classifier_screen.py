"""The organ classifier's word on every sub-region of the organs a run examined, and whether it
disagrees with the conclusion.

The rounds carry P(abnormal) only for what the text named: on the bundled demo case the report
rounds examine "pancreas" (P 0.27) and conclude "no abnormality", while the same classifier gives the
pancreatic head 0.94. A radiologist needs to see that: the run screens the present sub-regions of
each examined organ (and the organs themselves), records the figures in run.json
(``classifier_screen``), and adds a "Discordant:" warning when the conclusion reads as normal but a
region is at or above its threshold (screen_thresholds.py). The screen never changes the model's answer."""
from __future__ import annotations

import re
from typing import Callable, Iterable, Sequence

from .conclusion import Conclusion
from .screen_thresholds import DEFAULT, ScreenThresholds
from .rounds import Round

DISCORDANT = "Discordant:"
# a conclusion that reports nothing abnormal (the cohort's and typical report wordings)
_NORMAL = re.compile(r"\b(?:no\s+(?:abnormalit(?:y|ies)|lesions?|tumou?rs?|focal\s+lesions?|mass(?:es)?)|"
                     r"normal\s+(?:study|ct|examination|scan)|unremarkable|none)\b", re.IGNORECASE)


def regions_to_screen(rounds: Sequence[Round], present: Iterable[int], parent_of: Callable[[int], int]) -> list[int]:
    """Mask labels of the organs the rounds examined (their mask, not the named substructure) and every
    present label whose parent is one of them, in label order."""
    organs = {parent_of(o.mask_label) for r in rounds for o in r.organs}
    return sorted(i for i in set(present) if i in organs or parent_of(i) in organs)


def reads_normal(conclusion: Conclusion) -> bool:
    return bool(_NORMAL.search(f"{conclusion.answer} {conclusion.summary}"))


def discordance_warning(conclusion: Conclusion, screen: dict[str, float], display=lambda n: n,
                        thresholds: ScreenThresholds | None = None) -> str | None:
    """A warning when the conclusion reads as normal while a screened region is at/above its threshold
    (the model folder's calibrated one, screen_thresholds.py; else 0.5)."""
    thresholds = thresholds or ScreenThresholds()
    flagged = sorted(((p, n) for n, p in screen.items() if p >= thresholds.of(n)), reverse=True)
    if not flagged or not reads_normal(conclusion):
        return None
    if thresholds.calibrated:
        regions = ", ".join(f"the {display(n)} P(abnormal) {p:.2f} (its threshold {thresholds.of(n):.2f})"
                            for p, n in flagged)
        rule = "each region's threshold from held-out normal cases"
    else:
        regions = ", ".join(f"the {display(n)} P(abnormal) {p:.2f}" for p, n in flagged)
        rule = f"threshold {DEFAULT:.2f}, not calibrated for this model"
    return (f"{DISCORDANT} the conclusion reads as normal ('{conclusion.answer}'), but the organ classifier gives "
            f"{regions} ({rule}); review {'that region' if len(flagged) == 1 else 'them'} before signing")
