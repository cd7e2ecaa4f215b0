"""How a model's prompt is laid out: the IIR template and round 1's segments, per prompt_format.

"tumorchain": resources/prompts/iir_template.json, round 1 = [<ct> x Lg] "\\n{question}\\n" "Answer:\\n".

"m3d": what M3D-LaMed was trained on (BAAI-DCAI/M3D LaMed/src/dataset/multi_dataset.py and
lamed_arch.prepare_inputs_for_multimodal): the text "<im_patch>" x Lg + " " + question, tokenized
with the tokenizer's own special tokens (a Llama tokenizer adds BOS), then the image features
written over positions 1 .. Lg whatever token stood there; here those positions become our "<ct>"
placeholders. With BOS that is exactly the Lg <im_patch> tokens; a tokenizer without BOS keeps the
first <im_patch> as text and loses the question's first token under the image, as it did in M3D's
training, so it is reproduced here. Later rounds
use resources/prompts/iir_template_m3d.json (zero-shot for M3D).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from inference.errors import InputError

from .interleaved_input import GlobalVisual, Ids, Segment
from .prompts import PROMPTS_DIR, IIRTemplate, load_template, round1_segments

M3D_IMAGE_TOKEN = "<im_patch>"
FirstRound = Callable[[str, int], list[Segment]]  # (question, Lg) -> round 1's segments


@dataclass(frozen=True)
class PromptStyle:
    template: IIRTemplate
    first_round: FirstRound


class M3DFirstRound:
    """Round 1 of an M3D-LaMed prompt (see the module docstring)."""

    def __init__(self, tokenizer, image_token: str):
        self.tokenizer = tokenizer
        self.image_token = image_token
        self.image_id = int(tokenizer.convert_tokens_to_ids(image_token))
        unk = getattr(tokenizer, "unk_token_id", None)  # unknown words are text, not an injected token
        self.special = ({int(i) for i in tokenizer.all_special_ids} | {self.image_id}) - {unk}

    def __call__(self, question: str, n_global: int) -> list[Segment]:
        ids = [int(i) for i in self.tokenizer(self.image_token * n_global + " " + question)["input_ids"]]
        first = next((i for i, t in enumerate(ids) if t == self.image_id), None)
        if first is None or ids[first:first + n_global] != [self.image_id] * n_global or first > 1:
            raise InputError(None, f"the tokenizer does not keep {self.image_token} as one token; not an M3D-LaMed tokenizer")
        tail = ids[first + n_global:]
        if any(t in self.special for t in tail):  # a question typing "<im_patch>" or "</s>" must stay text
            raise InputError(None, "the question contains one of the model's special tokens "
                                   f"({', '.join(sorted(set(self.tokenizer.all_special_tokens) | {self.image_token}))})")
        # M3D writes the image over positions 1 .. Lg (lamed_arch: embeds[:, :1], image, embeds[:, Lg + 1:])
        return [Ids(tuple(ids[:1])), GlobalVisual(n_global), Ids(tuple(ids[1 + n_global:]))]


def prompt_style(config, tokenizer) -> PromptStyle:
    """The style a TumorChainConfig names (prompt_format); configs without one are "tumorchain"."""
    if getattr(config, "prompt_format", "tumorchain") == "m3d":
        return PromptStyle(load_template(str(PROMPTS_DIR / "iir_template_m3d.json")),
                           M3DFirstRound(tokenizer, M3D_IMAGE_TOKEN))
    template = load_template()
    return PromptStyle(template, lambda question, n: round1_segments(template, question, n))
