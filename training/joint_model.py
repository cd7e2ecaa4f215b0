"""TumorChainForTraining: the TumorChainModel's parts run on a batch (collate.py) with the joint loss.

Every step runs, for every rank and batch: the encoder on each distinct case, the projector on the
global and organ tokens, the classifier on every organ row (on the global tokens with weight 0 when
a batch has no organ), and the LLM. So the same parameters take part in every step on every rank
and no collective waits for a rank that skipped a module.

The visual embeddings replace the placeholder embeddings at the positions the sequence builder put
them, exactly as inference's embed_interleaved does; positions are 0..T-1 per sample (right
padding), as inference numbers them, (3, B, T) for M-RoPE language models.
"""
from __future__ import annotations

import torch
from torch import nn

from inference.model.organ_tokens import pool_stem_features
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


def masked_organ_inputs(model, features, organ_label, rows, cols, vals) -> torch.Tensor:
    """Masked Gamma on a batch: (C, Cs, d, h, w) stem features -> (M, Ll, Dv) organ inputs to the
    projector, through inference's own pooling; ``organ_label`` (M,) the organs' label ids,
    ``cols`` index the cases' stacked stem voxels (case row * V + voxel), ``rows`` the pooled rows
    (m * (Ll + 1) + t; t = Ll is the whole organ, organ_tokens.masked_weights)."""
    ll = model.config.n_organ_tokens + 1
    n_organs = organ_label.shape[0]
    flat = features.flatten(2).transpose(1, 2).reshape(-1, features.shape[1])  # (C * V, Cs)
    pooled = pool_stem_features(flat, rows, cols, vals, n_organs * ll)
    return model.organ_pool(pooled.reshape(n_organs, ll, -1), organ_label)


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
                organ_voxel_cols=None, organ_voxel_vals=None, case_key=None) -> dict[str, torch.Tensor]:
        m = self.model
        dtype = m.dtype
        train_encoder = any(p.requires_grad for p in m.vision_encoder.parameters())
        if not train_encoder and self.frozen_cache is not None and case_key is not None:
            tokens, features = self.frozen_cache.encode(m.vision_encoder, volumes.to(dtype), case_key)
        else:
            with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
                tokens, features = m.vision_encoder.forward_with_features(volumes.to(dtype))  # (C, N, Dv)
        global_vis = m.projector(pool_patch_grid(tokens, m.config.vision.grid, m.config.pool_size))  # (C, Lg, K)
        if organ_weights.shape[0]:
            if m.config.gamma_mode == "masked":
                organ_in = masked_organ_inputs(m, features, organ_label, organ_voxel_rows,
                                               organ_voxel_cols, organ_voxel_vals)
            else:
                organ_in = torch.bmm(organ_weights.to(tokens.dtype), tokens[organ_case])
            organ_vis = m.projector(organ_in)  # (M, Ll, K)
            cls_logits = m.classifier(organ_vis)[cls_row]  # (Q, 2)
        else:
            organ_vis = global_vis[:0]
            cls_logits = m.classifier(global_vis)[:0]  # keeps the classifier in this step's graph
        cls_loss, cls_correct = classifier_loss(cls_logits, cls_target)

        embeds = m.llm.get_input_embeddings()(input_ids)  # (B, T, K)
        embeds = self._place_visual(embeds, input_ids, global_vis, organ_vis, slot_sample, slot_start, slot_kind, slot_row)
        b, t = input_ids.shape
        positions = torch.arange(t, device=input_ids.device).expand(b, t)
        if getattr(m, "uses_mrope", False):
            positions = positions[None].expand(3, b, t)
        decoder, head = causal_lm_parts(m.llm)
        hidden = decoder(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions,
                         use_cache=False).last_hidden_state
        lm_loss, n_tokens = lm_loss_from_hidden(hidden, labels, head)
        loss = joint_loss(lm_loss, cls_loss, self.cls_loss_weight)
        self.last_parts = LossParts(loss.detach(), lm_loss.detach(), cls_loss.detach(), cls_correct.detach(),
                                    torch.tensor(cls_target.numel()), n_tokens.detach())
        return {"loss": loss, "cls_logits": cls_logits.detach()}

    def _place_visual(self, embeds, input_ids, global_vis, organ_vis, slot_sample, slot_start, slot_kind, slot_row):
        """Write each visual run over its placeholder embeddings (out of place, differentiable)."""
        cfg = self.model.config
        lg, ll = cfg.n_global_tokens, cfg.n_organ_tokens
        rows_b, rows_t, values = [], [], []
        for kind, length, source, placeholder in ((0, lg, global_vis, self.model.ct_token_id),
                                                  (1, ll, organ_vis, self.model.organ_token_id)):
            sel = slot_kind == kind
            if not bool(sel.any()):
                continue
            offs = torch.arange(length, device=embeds.device)
            pos = slot_start[sel][:, None] + offs  # (s, length)
            smp = slot_sample[sel][:, None].expand_as(pos)
            if not bool((input_ids[smp, pos] == placeholder).all()):
                raise ValueError("a visual slot does not sit on its placeholder tokens (collate/tokenizer mismatch)")
            rows_b.append(smp.reshape(-1))
            rows_t.append(pos.reshape(-1))
            values.append(source[slot_row[sel]].reshape(-1, source.shape[-1]))
        if not values:
            return embeds
        return embeds.index_put((torch.cat(rows_b), torch.cat(rows_t)), torch.cat(values).to(embeds.dtype))


__all__ = ["TumorChainForTraining", "causal_lm_parts", "masked_organ_inputs", "IGNORE_INDEX"]
