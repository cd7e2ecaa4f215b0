"""The model a run trains: a saved TumorChain folder, or a new one built from a base LLM; then the
freeze flags, LoRA and gradient checkpointing of the TrainConfig."""
from __future__ import annotations

import logging

import torch

from inference.errors import InputError
from training.config import TrainConfig
from training.lora import apply_lora, set_trainable

log = logging.getLogger("tumorchain.training")


def load_base_model(cfg: TrainConfig, dtype: torch.dtype = torch.float32):
    """TumorChainModel on the CPU (the Trainer / DeepSpeed moves it), before freezing and LoRA."""
    from inference.model import TumorChainConfig
    from inference.model.modeling_tumorchain import TumorChainModel

    if cfg.model:
        return TumorChainModel.from_pretrained(cfg.model, device="cpu", dtype=dtype)
    if cfg.llm:
        config = TumorChainConfig.load(cfg.model_config) if cfg.model_config else TumorChainConfig()
        return TumorChainModel.build(cfg.llm, config, vision_weights=cfg.vision_weights, device="cpu", dtype=dtype)
    raise InputError(None, "give --model (a TumorChain folder to fine-tune) or --llm (a base LLM folder to build on)")


def prepare_for_training(model, cfg: TrainConfig) -> dict[str, int]:
    """Apply LoRA, freeze flags and gradient checkpointing in place; returns trainable counts."""
    model.config.cls_loss_weight = float(cfg.cls_loss_weight)
    if cfg.lora:
        found = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, list(cfg.lora_targets))
        log.info("LoRA r=%d alpha=%d on %s", cfg.lora_r, cfg.lora_alpha, found)
    counts = set_trainable(model, encoder=not cfg.freeze_encoder, projector=not cfg.freeze_projector,
                           llm=not cfg.freeze_llm, classifier=not cfg.freeze_classifier, lora=cfg.lora)
    if cfg.gradient_checkpointing:
        llm = model.llm
        llm.config.use_cache = False
        llm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})  # transformers 5 name
    if sum(counts.values()) == 0:
        raise InputError(None, "every part is frozen: nothing to train")
    model.train()
    return counts


def training_model(cfg: TrainConfig, dtype: torch.dtype = torch.float32):
    """(TumorChainModel ready to train, trainable parameter counts)."""
    model = load_base_model(cfg, dtype)
    return model, prepare_for_training(model, cfg)
