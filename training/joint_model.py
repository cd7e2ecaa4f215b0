"""TumorChainForTraining: the TumorChainModel's parts run on a batch (collate.py) with the joint loss.

Every step runs, for every rank and batch: the encoder on each distinct case, the projector on the
global and organ tokens, the classifier on every organ row (on the global tokens with weight 0 when
a batch has no organ), and the LLM. So the same parameters take part in every step on every rank
and no collective waits for a rank that skipped a module.

Embedding, positions and Gamma are the model's own (TumorChainModel.embed_inputs, position_ids,
organ_inputs: inference/model/visual_inputs.py), the path the IIR generator runs with batch 1;
positions are 0..T-1 per sample (right padding), (3, B, T) for M-RoPE language models.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from inference.model.projector import pool_patch_grid
from training.collate import IGNORE_INDEX
from training.losses import LossParts, classifier_loss, joint_loss, lm_loss_from_hidden


def causal_lm_parts(llm: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(decoder, lm_head) of a causal LM, through a peft wrapper when there is one."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    decoder = getattr(base, "model", None)
    if decoder is None and hasattr(base, "get_decoder"):
        decoder = base.get_decoder()
    head = base.get_output_embeddings()
    if decoder is None or head is None:
        raise TypeError(f"{type(base).__name__}: cannot find the decoder and lm_head of this causal LM")
    return decoder, head


@dataclass
class TrainingOutput(ModelOutput):
    """What one training step returns (the HF Trainer reads ``loss``); the loss parts for logging."""

    loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    cls_loss: torch.Tensor | None = None
    cls_logits: torch.Tensor | None = None


class FrozenEncoderCache:
    """The encoder's outputs (patch tokens, stem features) per case while the encoder is frozen: a
    frozen encoder gives the same outputs every epoch, so it runs once per case, not once per batch
    (with a conv stem at full resolution that was ~80 % of a CPU step). Keeps cases until ``max_bytes``
    (on the encoder's device), then runs the encoder for the rest as before."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.store: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def encode(self, encoder, volumes: torch.Tensor, keys: torch.Tensor):
        keys = [int(k) for k in keys]
        missing = [i for i, k in enumerate(keys) if k not in self.store]
        fresh = {}
        if missing:
            with torch.no_grad():
                tokens, features = encoder.forward_with_features(volumes[missing])
            for j, i in enumerate(missing):
                fresh[keys[i]] = (tokens[j], None if features is None else features[j])
                size = sum(t.numel() * t.element_size() for t in fresh[keys[i]] if t is not None)
                if self.bytes + size <= self.max_bytes:
                    self.store[keys[i]] = fresh[keys[i]]
                    self.bytes += size
        outs = [self.store[k] if k in self.store else fresh[k] for k in keys]
        tokens = torch.stack([o[0] for o in outs])
        features = None if outs[0][1] is None else torch.stack([o[1] for o in outs])
        return tokens, features


class TumorChainForTraining(nn.Module):
    def __init__(self, model: nn.Module, cls_loss_weight: float = 1.0, frozen_encoder_cache_mb: int = 0):
        super().__init__()
        self.model = model
        self.cls_loss_weight = float(cls_loss_weight)
        self.last_parts: LossParts | None = None
        self.frozen_cache = FrozenEncoderCache(frozen_encoder_cache_mb << 20) if frozen_encoder_cache_mb > 0 else None

    @property
    def config(self):
        # the Trainer reads model.config for a few optional things (e.g. use_cache)
        return self.model.llm.config

    def forward(self, input_ids, labels, attention_mask, volumes, sample_case, organ_weights, organ_case,
                slot_sample, slot_start, slot_kind, slot_row, cls_row, cls_target, organ_label=None, organ_voxel_rows=None,
                organ_voxel_cols=None, organ_voxel_vals=None, case_key=None) -> TrainingOutput:
        m = self.model
        dtype = m.dtype
        train_encoder = any(p.requires_grad for p in m.vision_encoder.parameters())
        if not train_encoder and self.frozen_cache is not None and case_key is not None:
            tokens, features = self.frozen_cache.encode(m.vision_encoder, volumes.to(dtype), case_key)
        else:
            with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
                tokens, features = m.vision_encoder.forward_with_features(volumes.to(dtype))  # (C, N, Dv)
        # rows of volumes: the batch's cases, then (crop mode) each organ's crop box
        global_vis = m.projector(pool_patch_grid(tokens, m.config.vision.grid, m.config.pool_size))  # (C, Lg, K)
        organ_tokens = tokens
        if m.config.organ_pooling:  # Gamma's weights refer to the pooled crop grids (TumorChainModel.organ_source)
            organ_tokens = pool_patch_grid(tokens, m.config.vision.grid, m.config.pool_size)
        if organ_weights.shape[0]:
            organ_in = m.organ_inputs(organ_tokens, features, organ_weights, organ_case, organ_label, organ_voxel_rows,
                                      organ_voxel_cols, organ_voxel_vals)
            organ_vis = m.projector(organ_in)  # (M, Ll, K)
            if m.has_organ_classifier:
                cls_logits = m.organ_logits(organ_vis)[cls_row]  # (Q, 2)
            else:  # no Cls in this model (a converted M3D-LaMed): the language loss alone
                cls_logits, cls_target = organ_vis.new_zeros(0, 2), cls_target[:0]
        elif not m.has_organ_classifier:
            organ_vis, cls_logits, cls_target = global_vis[:0], global_vis.new_zeros(0, 2), cls_target[:0]
        else:
            organ_vis = global_vis[:0]
            cls_logits = m.organ_logits(global_vis)[:0]  # keeps the classifier in this step's graph
        cls_loss, cls_correct = classifier_loss(cls_logits, cls_target)

        order = torch.argsort(slot_sample * input_ids.shape[1] + slot_start)  # runs in sequence order
        kind, row = slot_kind[order], slot_row[order]
        embeds = m.embed_inputs(input_ids, global_vis[row[kind == 0]], organ_vis[row[kind == 1]])  # (B, T, K)
        b, t = input_ids.shape
        decoder, head = causal_lm_parts(m.llm)
        hidden = decoder(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=m.position_ids(0, t, b),
                         use_cache=False).last_hidden_state
        lm_loss, n_tokens = lm_loss_from_hidden(hidden, labels, head)
        loss = joint_loss(lm_loss, cls_loss, self.cls_loss_weight)
        self.last_parts = LossParts(loss.detach(), lm_loss.detach(), cls_loss.detach(), cls_correct.detach(),
                                    torch.tensor(cls_target.numel()), n_tokens.detach())
        return TrainingOutput(loss=loss, lm_loss=lm_loss.detach(), cls_loss=cls_loss.detach(),
                              cls_logits=cls_logits.detach())


__all__ = ["TumorChainForTraining", "TrainingOutput", "causal_lm_parts", "IGNORE_INDEX"]
