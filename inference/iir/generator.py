"""ModelRoundGenerator: segments -> ids -> embeddings -> KVDecoder, for one IIR run."""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import torch

from .decoding import Generation, KVDecoder, SamplingConfig, default_end_of_answer_id, default_stop_ids
from .interleaved_input import CT_TOKEN, ORGAN_TOKEN, Segment, SequenceBuilder, embed_interleaved


class ModelRoundGenerator:
    """The language side of IIRLoop over an LLM with its tokenizer and input embedding.

    llm: HF causal LM; embed_text: ids [1, t] -> [1, t, K]. A new generator per run: its
    decoder's KV cache holds this run's context.
    """

    def __init__(self, llm, tokenizer, embed_text: Callable[[torch.Tensor], torch.Tensor], *,
                 sampling: SamplingConfig = SamplingConfig(), cache_mode: str = "shared",
                 stop_ids: Sequence[int] | None = None, end_of_answer_id: int | None = None,
                 placeholders: tuple[str, str] = (CT_TOKEN, ORGAN_TOKEN),
                 position_ids: Callable[[int, int], torch.Tensor] | None = None):
        self.builder = SequenceBuilder(tokenizer, *placeholders)
        self.embed_text = embed_text
        stops = list(stop_ids) if stop_ids is not None else default_stop_ids(tokenizer, llm)
        eoa = end_of_answer_id if end_of_answer_id is not None else default_end_of_answer_id(tokenizer, llm)
        if eoa is not None and eoa not in stops:
            stops.append(eoa)
        self.end_of_answer_id = eoa
        self.decoder = KVDecoder(llm, embed_text, tokenizer, stop_ids=stops, end_of_answer_id=eoa,
                                 sampling=sampling, cache_mode=cache_mode, position_ids=position_ids)

    @classmethod
    def for_model(cls, model, **kwargs) -> "ModelRoundGenerator":
        """From a TumorChainModel (tokenizer, llm, embed_text); uses its end-of-answer id if it names one."""
        cfg = getattr(model, "config", None)
        kwargs.setdefault("end_of_answer_id", getattr(cfg, "end_of_answer_token_id", None))
        kwargs.setdefault("placeholders", (getattr(cfg, "ct_token", CT_TOKEN), getattr(cfg, "organ_token", ORGAN_TOKEN)))
        if hasattr(model, "position_ids"):
            kwargs.setdefault("position_ids", model.position_ids)
        return cls(model.llm, model.tokenizer, model.embed_text, **kwargs)

    def generate(self, segments: Sequence[Segment], visuals: Sequence[torch.Tensor],
                 on_text: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None) -> Generation:
        seq = self.builder.build(segments)
        device = self.decoder.device
        with torch.inference_mode():
            embeds = embed_interleaved(
                seq,
                lambda ids: self.embed_text(ids.to(device)),
                [v.to(device) for v in visuals],
            )
        return self.decoder.generate(embeds, on_text=on_text, cancel=cancel)
