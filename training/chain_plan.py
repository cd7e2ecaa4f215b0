"""The training sequence of one sample, made by replaying inference's own IIR loop.

Teacher forcing of IIR (paper eq. 3-7): the real ``inference.iir.loop.IIRLoop`` runs with a
scripted generator that "answers" each round with the sample's chain text, and a features object
that only records which masks the loop asks for. The segments the loop hands to the generator are
exactly what inference feeds the LLM, so the training sequence

    round-1 segments, answer 1, <eoa>, round-2 segments (attention sentences + organ slots), answer 2, <eoa>, ...

is built from the same code, with the same organ matcher, substructure fallbacks and mask counts
(on the model grid) as a run of the workstation. A chain whose ``attend`` lists differ from what
the loop examines is reported (``ChainPlan.agrees``); the dataset drops such samples rather than
teach a sequence inference never builds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from inference.iir.decoding import Generation
from inference.iir.interleaved_input import Ids, OrganVisual, Segment, Text
from inference.iir.loop import IIRLoop, IIRSettings
from inference.labels import LabelTable, merged_labels


@dataclass
class ChainPlan:
    """segments: the whole teacher-forced sequence; organs: mask label of each organ slot in order;
    examined: label names examined before rounds 2..n; agrees: equals the manifest's attend lists;
    rounds: rounds the loop ran (== len(chain) when it agrees)."""

    segments: list[Segment]
    organs: list[int]
    examined: list[list[str]]
    agrees: bool
    rounds: int


class _Script:
    """RoundGenerator that replays fixed answers and records the segments of every round."""

    def __init__(self, answers: Sequence[str]):
        self.answers = list(answers)
        self.inputs: list[list[Segment]] = []

    def generate(self, segments, visuals, on_text=None, cancel=None) -> Generation:
        self.inputs.append(list(segments))
        text = self.answers[min(len(self.inputs), len(self.answers)) - 1]
        return Generation(ids=[], text=text, stop_reason="eos", prefill_tokens=0, prefill_ms=0.0,
                          decode_ms=0.0, context_tokens=0)


class _Recorder:
    """CaseFeatures with the case's mask voxel counts; tokens are empty stand-ins of the right length."""

    def __init__(self, counts: dict[int, int], n_global: int, n_organ: int):
        self.counts = counts
        self.n_global, self.n_organ = n_global, n_organ

    def global_tokens(self) -> torch.Tensor:
        return torch.zeros(1, self.n_global, 1)

    def mask_voxels(self, label_id: int) -> int:
        return int(self.counts.get(label_id, 0))

    def organ_tokens(self, mask_label: int) -> torch.Tensor:
        return torch.zeros(1, self.n_organ, 1)

    def abnormal_prob(self, organ_tokens: torch.Tensor) -> float:
        return 0.0


def plan_chain(question: str, chain: Sequence[tuple[str, Sequence[str]]], counts: dict[int, int],
               n_global: int, n_organ: int, end_of_answer_id: int, table: LabelTable | None = None,
               include_negated: bool = True, style=None) -> ChainPlan:
    """chain: (answer text, attend label names) per round, from the manifest. style: the model's
    inference.iir.prompt_style.PromptStyle (default: the TumorChain template)."""
    table = table or merged_labels()
    script = _Script([a for a, _ in chain])
    loop = IIRLoop(script, _Recorder(counts, n_global, n_organ),
                   IIRSettings(max_rounds=len(chain) + 1, include_negated=include_negated), table=table,
                   template=style.template if style else None, first_round=style.first_round if style else None)
    # one round more than the chain: if the loop asks for it, inference would not stop where the data does
    result = loop.run(question)
    segments: list[Segment] = []
    organs: list[int] = []
    for r, seg_in in enumerate(script.inputs[:len(chain)]):
        segments += seg_in
        organs += [s.mask_label if s.mask_label is not None else s.label_id for s in seg_in if isinstance(s, OrganVisual)]
        segments += [Text(chain[r][0], answer=True), Ids((int(end_of_answer_id),), answer=True)]
    examined = [[o.name for o in rnd.organs] for rnd in result.rounds[1:len(chain)]]
    wanted = [list(a) for _, a in chain[:-1]]
    agrees = len(result.rounds) == len(chain) and examined == wanted
    return ChainPlan(segments=segments, organs=organs, examined=examined, agrees=agrees, rounds=len(result.rounds))
