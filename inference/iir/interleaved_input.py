"""The interleaved LLM input of paper eq. 3: text, global CT tokens and organ tokens in one sequence.

A sequence is a list of segments. Text becomes token ids; each visual segment becomes a run of
placeholder ids (``<ct>`` for the global tokens, ``<organ_feature>`` for an organ's tokens), one
id per visual embedding, so ``input_ids``, ``position_ids`` and the embedded sequence all have the
same length T. The model's ``embed_inputs`` (inference/model/visual_inputs.py) then scatters the
visual embeddings over the placeholder runs.

Training and inference build their sequences with the same code: inference feeds one round's new
segments at a time into a KV cache; training builds the whole chain at once and takes
``labels()`` (answer tokens only) for the language-model loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

import torch

from inference.errors import ModelError
from inference.vocabulary import CT_TOKEN, IGNORE_INDEX, ORGAN_TOKEN  # noqa: F401 (re-exported)



@dataclass(frozen=True)
class Text:
    """Text the tokenizer turns into ids. ``answer``: the model is trained to produce it."""

    text: str
    answer: bool = False


@dataclass(frozen=True)
class Ids:
    """Token ids as they are (a generated answer, an end-of-answer id): never re-tokenized."""

    ids: tuple[int, ...]
    answer: bool = False


@dataclass(frozen=True)
class GlobalVisual:
    """The global CT tokens tau_g, ``length`` = Lg embeddings."""

    length: int


@dataclass(frozen=True)
class OrganVisual:
    """One organ's local tokens tau_l, ``length`` = Ll embeddings.

    label_id:   the organ the text names; mask_label: the mask the tokens come from (a parent
    organ when a substructure has no mask of its own).
    """

    label_id: int
    length: int
    mask_label: int | None = None


Segment = Union[Text, Ids, GlobalVisual, OrganVisual]


@dataclass(frozen=True)
class VisualSlot:
    """Where one visual segment sits in the sequence: positions [start, start + length)."""

    kind: str  # "global" | "organ"
    start: int
    length: int
    label_id: int | None = None
    mask_label: int | None = None


@dataclass
class InterleavedIds:
    """A built sequence (no batch dimension).

    input_ids:    int64 [T]; visual positions hold the placeholder id of their kind.
    labels_mask:  bool [T]; True on answer tokens (the LM loss positions before the HF shift).
    position_ids: int64 [T]; ``start_position + arange(T)``, explicit so that a segment appended
                  to a KV cache continues the numbering of the tokens already in it.
    slots:        the visual segments in order, with sequence-relative starts.
    """

    input_ids: torch.Tensor
    labels_mask: torch.Tensor
    position_ids: torch.Tensor
    slots: list[VisualSlot] = field(default_factory=list)
    text_pieces: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, kind)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def labels(self) -> torch.Tensor:
        """int64 [T]: input ids on answer tokens, IGNORE_INDEX elsewhere (HF models shift inside)."""
        return torch.where(self.labels_mask, self.input_ids, torch.full_like(self.input_ids, IGNORE_INDEX))


class SequenceBuilder:
    """Turns segments into ids with one tokenizer; checks it knows both placeholder tokens."""

    def __init__(self, tokenizer, ct_token: str = CT_TOKEN, organ_token: str = ORGAN_TOKEN):
        self.tokenizer = tokenizer
        self.ct_id = _special_id(tokenizer, ct_token)
        self.organ_id = _special_id(tokenizer, organ_token)

    def tokenize(self, text: str) -> list[int]:
        """Plain text -> ids. Special-token strings typed in a question ("<ct>") stay text:
        a user must not be able to inject a visual placeholder or an end-of-answer."""
        ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return [int(i) for i in ids]

    def build(self, segments: Sequence[Segment], start_position: int = 0) -> InterleavedIds:
        ids: list[int] = []
        answer: list[bool] = []
        slots: list[VisualSlot] = []
        pieces: list[tuple[int, int, str]] = []
        for seg in segments:
            start = len(ids)
            if isinstance(seg, Text):
                new = self.tokenize(seg.text)
                ids += new
                answer += [seg.answer] * len(new)
                pieces.append((start, len(ids), "answer" if seg.answer else "text"))
            elif isinstance(seg, Ids):
                ids += [int(i) for i in seg.ids]
                answer += [seg.answer] * len(seg.ids)
                pieces.append((start, len(ids), "answer" if seg.answer else "text"))
            elif isinstance(seg, GlobalVisual):
                ids += [self.ct_id] * seg.length
                answer += [False] * seg.length
                slots.append(VisualSlot("global", start, seg.length))
            elif isinstance(seg, OrganVisual):
                ids += [self.organ_id] * seg.length
                answer += [False] * seg.length
                mask_label = seg.label_id if seg.mask_label is None else seg.mask_label
                slots.append(VisualSlot("organ", start, seg.length, seg.label_id, mask_label))
            else:
                raise TypeError(f"unknown segment {seg!r}")
        n = len(ids)
        return InterleavedIds(
            input_ids=torch.tensor(ids, dtype=torch.long),
            labels_mask=torch.tensor(answer, dtype=torch.bool),
            position_ids=torch.arange(start_position, start_position + n, dtype=torch.long),
            slots=slots,
            text_pieces=pieces,
        )


def _special_id(tokenizer, token: str) -> int:
    tid = tokenizer.convert_tokens_to_ids(token)
    unk = getattr(tokenizer, "unk_token_id", None)
    if tid is None or (unk is not None and tid == unk):
        raise ModelError(f"the model's tokenizer has no special token {token!r}; it is not a TumorChain tokenizer")
    return int(tid)
