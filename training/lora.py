"""LoRA on the LLM through peft, and the freeze flags of the other parts.

With LoRA the LLM's own weights are frozen and rank-r adapters train on the chosen projections;
the projector and classifier stay trainable (and the encoder unless frozen), as LLaVA-style
fine-tuning does. merge_lora() folds the adapters back into plain Linear weights for export, so the
workstation loads an ordinary Hugging Face LLM folder.
"""
from __future__ import annotations

import logging
import warnings

from torch import nn

log = logging.getLogger("tumorchain.training")


def apply_lora(model: nn.Module, r: int, alpha: int, dropout: float, targets: list[str]) -> list[str]:
    """Wrap model.llm in a peft LoRA model; returns the module names that got adapters."""
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, mod in model.llm.named_modules() if isinstance(mod, nn.Linear)}
    found = [t for t in targets if t in names]
    missing = [t for t in targets if t not in names]
    if not found:
        raise ValueError(f"none of the LoRA targets {targets} is a Linear module of the LLM; it has {sorted(names)}")
    if missing:
        log.warning("LoRA targets not in this LLM (skipped): %s", missing)
    cfg = LoraConfig(r=int(r), lora_alpha=int(alpha), lora_dropout=float(dropout), target_modules=found, bias="none")
    with warnings.catch_warnings():
        # peft reads transformers' deprecated is_gradient_checkpointing alias: their matter, not the user's
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model.llm = get_peft_model(model.llm, cfg)
    return found


def has_lora(model: nn.Module) -> bool:
    return hasattr(model.llm, "merge_and_unload")


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold adapters into the base weights (in place on ``model``)."""
    if has_lora(model):
        model.llm = model.llm.merge_and_unload()
    return model


def set_trainable(model: nn.Module, *, encoder: bool, projector: bool, llm: bool, classifier: bool, lora: bool) -> dict[str, int]:
    """requires_grad per part; returns trainable parameter counts per part."""
    # organ_pool (masked Gamma) feeds the projector's input, so it follows the projector's flag
    for part, on in (("vision_encoder", encoder), ("projector", projector), ("organ_pool", projector),
                     ("classifier", classifier)):
        for p in getattr(model, part).parameters() if hasattr(model, part) else ():
            p.requires_grad_(on)
    if not lora:  # with LoRA, peft already froze the base and left the adapters trainable
        for p in model.llm.parameters():
            p.requires_grad_(llm)
    parts = {"vision_encoder": model.vision_encoder, "projector": model.projector, "llm": model.llm}
    parts |= {name: getattr(model, name) for name in ("classifier", "organ_pool") if hasattr(model, name)}
    return {k: sum(p.numel() for p in m.parameters() if p.requires_grad) for k, m in parts.items()}
