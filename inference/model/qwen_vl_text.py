"""Qwen2.5-VL's language model alone, as a causal LM (its 2D vision tower is never built).

transformers 5.x has Qwen2_5_VLTextModel (decoder stack, M-RoPE) but no causal-LM head for it
apart from Qwen2_5_VLForConditionalGeneration, which also builds the vision tower. This wrapper is
that text model plus lm_head, with the same parameter names as a Qwen2 causal LM
("model.layers.*", "model.embed_tokens.weight", "lm_head.weight").

Position ids may be (B, T) or (3, B, T) (temporal, height, width of M-RoPE); text tokens have all
three equal, and then M-RoPE equals ordinary 1D RoPE.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLTextConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VLPreTrainedModel,
    Qwen2_5_VLRotaryEmbedding,
    Qwen2_5_VLTextModel,
)


class Qwen25VLTextForCausalLM(Qwen2_5_VLPreTrainedModel, GenerationMixin):
    """Qwen2_5_VLTextModel + lm_head. forward -> CausalLMOutputWithPast (logits (B, T, vocab))."""

    config_class = Qwen2_5_VLTextConfig
    config: Qwen2_5_VLTextConfig
    base_model_prefix = "model"
    input_modalities = ("text",)
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _no_split_modules = ["Qwen2_5_VLDecoderLayer"]

    def __init__(self, config: Qwen2_5_VLTextConfig):
        super().__init__(config)
        self.model = Qwen2_5_VLTextModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def rebuild_rotary(self, device: torch.device) -> None:
        """Recreate the (non-persistent) RoPE frequency buffers, e.g. after meta-device loading."""
        self.model.rotary_emb = Qwen2_5_VLRotaryEmbedding(config=self.config).to(device)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


# so that AutoModelForCausalLM.from_pretrained(<our saved llm folder>) works once this module is imported
AutoModelForCausalLM.register(Qwen2_5_VLTextConfig, Qwen25VLTextForCausalLM, exist_ok=True)
