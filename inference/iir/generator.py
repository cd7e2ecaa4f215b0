"""ModelRoundGenerator: segments -> ids -> embeddings -> KVDecoder, for one IIR run."""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import torch

from .decoding import Generation, KVDecoder, SamplingConfig, default_end_of_answer_id, default_stop_ids
from inference.model.visual_inputs import scatter_visual

from .interleaved_input import CT_TOKEN, ORGAN_TOKEN, Segment, SequenceBuilder

# (ids (1, T), global runs (G, Lg, K) | None, organ runs (S, Ll, K) | None) -> (1, T, K)
EmbedInputs = Callable[[torch.Tensor, "torch.Tensor | None", "torch.Tensor | None"], torch.Tensor]


class ModelRoundGenerator:
    """The language side of IIRLoop over an LLM with its tokenizer and input embedding.

    llm: HF causal LM; embed_text: ids [1, t] -> [1, t, K]; embed_inputs: the model's own
    placeholder-scatter (TumorChainModel.embed_inputs, the trainer's path too), by default the same
    scatter over embed_text. A new generator per run: its decoder's KV cache holds this run's context.
    """

    def __init__(self, llm, tokenizer, embed_text: Callable[[torch.Tensor], torch.Tensor], *,
                 sampling: SamplingConfig = SamplingConfig(), cache_mode: str = "shared",
                 stop_ids: Sequence[int] | None = None, end_of_answer_id: int | None = None,
                 placeholders: tuple[str, str] = (CT_TOKEN, ORGAN_TOKEN),
                 position_ids: Callable[[int, int], torch.Tensor] | None = None,
                 embed_inputs: EmbedInputs | None = None):
        self.builder = SequenceBuilder(tokenizer, *placeholders)
        self.embed_text = embed_text
        self.embed_inputs = embed_inputs or self._scatter_over_text
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
        if hasattr(model, "embed_inputs"):
            kwargs.setdefault("embed_inputs", model.embed_inputs)
        return cls(model.llm, model.tokenizer, model.embed_text, **kwargs)

    def _scatter_over_text(self, ids: torch.Tensor, global_visual, organ_visual) -> torch.Tensor:
        embeds = self.embed_text(ids)
        embeds = scatter_visual(embeds, ids, self.builder.ct_id, global_visual, "global")
        return scatter_visual(embeds, ids, self.builder.organ_id, organ_visual, "organ")

    def generate(self, segments: Sequence[Segment], visuals: Sequence[torch.Tensor],
                 on_text: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None) -> Generation:
        seq = self.builder.build(segments)
        if len(visuals) != len(seq.slots):
            raise ValueError(f"the segments have {len(seq.slots)} visual slots but {len(visuals)} tensors were given")
        for slot, vis in zip(seq.slots, visuals):
            if vis.dim() != 3 or vis.shape[0] != 1 or vis.shape[1] != slot.length:
                raise ValueError(f"{slot.kind} slot at {slot.start} needs [1, {slot.length}, K], got {tuple(vis.shape)}")
        device = self.decoder.device

        def runs(kind: str):
            got = [v.to(device) for slot, v in zip(seq.slots, visuals) if slot.kind == kind]
            return torch.cat(got) if got else None

        with torch.inference_mode():
            embeds = self.embed_inputs(seq.input_ids[None].to(device), runs("global"), runs("organ"))
        return self.decoder.generate(embeds, on_text=on_text, cancel=cancel)
