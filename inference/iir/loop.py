"""IIRLoop: organ-guided iterative interleaved reasoning (paper section 3.2, eq. 4-7).

Round 1 reads the global CT tokens and the question (eq. 4), nothing local. After each round the
organs that the question (after round 1 only, so they come first) or the round's answer names,
not examined yet and with a mask in this case, are examined in the next round: per organ an
attention sentence (eq. 5) and its local tokens are appended after the answer (eq. 6). The loop
stops when no new organ emerges or at ``max_rounds``; the last answer is the conclusion.

Negated mentions ("no lymph node enlargement", "liver without metastasis") are examined too by
default (``include_negated=True``): a negative finding is a claim like any other, and IIR exists
to check the claims of an answer against that organ's own tokens (self-verification, section
3.2); N and M staging rest on exactly such negatives. Excluding them saves rounds at the price of
unchecked "no ..." statements; ``include_negated=False`` is there for that choice.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch

from inference.errors import raise_if_cancelled
from inference.labels import LabelTable, merged_labels

from .conclusion import Conclusion, parse_conclusion
from .decoding import Generation, SamplingConfig
from .interleaved_input import Segment
from .prompts import IIRTemplate, OrganRef, followup_segments, load_template, render_segments, round1_segments
from .rounds import ExaminedOrgan, Round, RoundTimings, SkippedOrgan

Matcher = Callable[..., list]  # (text, table, include_negated=...) -> label ids in order of first mention


class CaseFeatures(Protocol):
    """The visual side of one case (see features.ModelCaseFeatures)."""

    def global_tokens(self) -> torch.Tensor:
        """[1, Lg, K]."""

    def mask_voxels(self, label_id: int) -> int:
        """Voxels of a label's mask on the model grid; 0 = no mask in this case."""

    def organ_tokens(self, mask_label: int) -> torch.Tensor:
        """[1, Ll, K] local tokens of one mask."""

    def abnormal_prob(self, organ_tokens: torch.Tensor) -> float | None:
        """The auxiliary classifier's P(abnormal) for these tokens; None without a classifier."""


class RoundGenerator(Protocol):
    """The language side (see generator.ModelRoundGenerator); keeps the run's context."""

    def generate(self, segments: Sequence[Segment], visuals: Sequence[torch.Tensor],
                 on_text: Callable[[str], None] | None, cancel: threading.Event | None) -> Generation:
        """Append segments (visual ones filled from ``visuals`` in order) and decode one answer."""


@dataclass(frozen=True)
class IIRSettings:
    max_rounds: int = 4
    include_negated: bool = True
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    cache_mode: str = "shared"

    def __post_init__(self) -> None:
        if self.max_rounds < 1:
            raise ValueError("max_rounds must be >= 1")


@dataclass
class IIRResult:
    question: str
    rounds: list[Round]
    stop_reason: str  # "no_new_organ" | "round_limit"
    conclusion: Conclusion


@dataclass
class _Pick:
    label_id: int
    mask_label: int
    fallback: str | None
    voxels: int


class IIRLoop:
    def __init__(
        self,
        generator: RoundGenerator,
        features: CaseFeatures,
        settings: IIRSettings = IIRSettings(),
        template: IIRTemplate | None = None,
        matcher: Matcher | None = None,
        table: LabelTable | None = None,
        tokenizer=None,
        first_round: Callable[[str, int], list[Segment]] | None = None,
    ):
        self.generator = generator
        self.features = features
        self.settings = settings
        self.template = template or load_template()
        self.matcher = matcher or _default_matcher()
        self.table = table or merged_labels()
        self.tokenizer = tokenizer  # only to render id segments in Round.prompt
        # round 1's segments (question, Lg); prompt_style.py gives M3D-LaMed's own layout
        self.first_round = first_round or (lambda question, n: round1_segments(self.template, question, n))

    def run(
        self,
        question: str,
        *,
        on_round_start: Callable[[int, str], None] | None = None,
        on_text: Callable[[int, str], None] | None = None,
        on_round: Callable[[Round], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> IIRResult:
        """Run the rounds; callbacks get (round index, prompt), (round index, text delta), Round."""
        considered: set[int] = set()  # label ids examined or reported as skipped
        used_masks: dict[int, int] = {}  # mask label -> round that examined it
        question_named = self._named(question)
        gt = self.features.global_tokens()
        segments = self.first_round(question, int(gt.shape[1]))
        visuals: list[torch.Tensor] = [gt]
        examined: list[ExaminedOrgan] = []
        organ_ms = 0.0
        rounds: list[Round] = []
        stop_reason = "round_limit"
        for r in range(1, self.settings.max_rounds + 1):
            _check(cancel)
            prompt = render_segments(segments, self.tokenizer)
            if on_round_start is not None:
                on_round_start(r, prompt)
            stream = (lambda delta, _r=r: on_text(_r, delta)) if on_text is not None else None
            gen = self.generator.generate(segments, visuals, stream, cancel)
            named = _unique((question_named if r == 1 else []) + self._named(gen.text))
            picks, skipped = self._plan(named, considered, used_masks, next_round=r + 1)
            last = r == self.settings.max_rounds
            if last and picks:
                skipped += [SkippedOrgan(self.table.by_id(p.label_id).name, "round limit reached", p.label_id, "round_limit")
                            for p in picks]
            rnd = Round(
                index=r,
                prompt=prompt,
                text=gen.text,
                token_ids=list(gen.ids),
                stop_reason=gen.stop_reason,
                organs=examined,
                named_organs=[self._name(i) for i in named],
                next_organs=[] if last else [self.table.by_id(p.label_id).name for p in picks],
                skipped_organs=skipped,
                timings=RoundTimings(
                    organ_tokens_ms=organ_ms,
                    prefill_ms=gen.prefill_ms,
                    decode_ms=gen.decode_ms,
                    prompt_tokens=gen.prefill_tokens,
                    generated_tokens=gen.new_tokens,
                    context_tokens=gen.context_tokens,
                    tokens_per_s=gen.tokens_per_s,
                ),
            )
            rounds.append(rnd)
            if on_round is not None:
                on_round(rnd)
            if not picks:
                stop_reason = "no_new_organ"
                break
            if last:
                break
            t0 = time.perf_counter()
            examined, visuals, refs = [], [], []
            for p in picks:
                _check(cancel)
                tokens = self.features.organ_tokens(p.mask_label)
                lab, mlab = self.table.by_id(p.label_id), self.table.by_id(p.mask_label)
                examined.append(ExaminedOrgan(
                    label_id=lab.id, name=lab.name, display=lab.display, mask_label=mlab.id,
                    mask_name=mlab.name, abnormal_prob=_prob(self.features.abnormal_prob(tokens)),
                    n_tokens=int(tokens.shape[1]), fallback=p.fallback, voxels=p.voxels,
                ))
                visuals.append(tokens)
                refs.append(OrganRef(lab.id, lab.display, mlab.id))
                used_masks[p.mask_label] = r + 1
            organ_ms = (time.perf_counter() - t0) * 1000.0
            n_organ = int(visuals[0].shape[1])
            segments = followup_segments(self.template, refs, n_organ)
        return IIRResult(question, rounds, stop_reason, parse_conclusion(rounds[-1].text))

    # -- organ policy --------------------------------------------------------------------------

    def _named(self, text: str) -> list[int]:
        return [int(i) for i in self.matcher(text, self.table, include_negated=self.settings.include_negated)]

    def _name(self, label_id: int) -> str:
        return self.table.by_id(label_id).name if label_id in self.table else f"label {label_id}"

    def _plan(self, named: list[int], considered: set[int], used_masks: dict[int, int], next_round: int
              ) -> tuple[list[_Pick], list[SkippedOrgan]]:
        """Which named organs the next round examines; the others, first time only, with why."""
        picks: list[_Pick] = []
        skipped: list[SkippedOrgan] = []
        taken = dict(used_masks)
        for lid in named:
            if lid in considered:
                continue
            considered.add(lid)
            if lid not in self.table:
                skipped.append(SkippedOrgan(f"label {lid}", "not in the label table", lid, "not_in_table"))
                continue
            lab = self.table.by_id(lid)
            voxels = self.features.mask_voxels(lid)
            mask_label, fallback = lid, None
            if voxels == 0:
                parent = self.table.by_id(lab.parent) if lab.parent is not None and lab.parent in self.table else None
                pvox = self.features.mask_voxels(parent.id) if parent is not None else 0
                if parent is None or pvox == 0:
                    why = f"no {lab.name} mask in this case" + (f" and no {parent.name} mask to fall back on" if parent else "")
                    skipped.append(SkippedOrgan(lab.name, why, lid, "no_mask"))
                    continue
                mask_label, voxels = parent.id, pvox
                fallback = f"no {lab.name} mask in this case; used the {parent.name} mask"
            if mask_label in taken:
                owner = self.table.by_id(mask_label).name
                skipped.append(SkippedOrgan(
                    lab.name, f"its tokens come from the {owner} mask, examined in round {taken[mask_label]}", lid, "shared_mask"))
                continue
            taken[mask_label] = next_round
            picks.append(_Pick(lid, mask_label, fallback, int(voxels)))
        return picks, skipped


def _prob(value) -> float | None:
    return None if value is None else float(value)


def _unique(ids: list[int]) -> list[int]:
    seen: set[int] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]


_check = raise_if_cancelled


def _default_matcher() -> Matcher:
    from inference.labels.organ_matcher import organs_named
    return organs_named
