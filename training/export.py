"""A training checkpoint -> the from_pretrained folder the workstation loads.

    tumorchain-train export --checkpoint runs/x/checkpoint-500 --out models/tumorchain-ft [--dtype bfloat16]

1. Rebuild the model the run trained (its train_config.json: the same base model, the same LoRA).
2. Weights: a DeepSpeed checkpoint (``global_step*/``) is consolidated with DeepSpeed's own
   zero_to_fp32 utilities (the fp32 master weights of every ZeRO-2/3 shard, frozen parameters
   included); any other checkpoint reads its model.safetensors. Either way the state dict must
   fit the model exactly.
3. LoRA adapters are merged into the LLM's weights (peft merge_and_unload).
4. TumorChainModel.save_pretrained writes config.json, model.safetensors, the tokenizer and llm/
   (safetensors only), then the folder is loaded back with from_pretrained and run once.

Reading a DeepSpeed checkpoint unpickles its optimizer files (DeepSpeed's format): export only
checkpoints your own runs wrote. The folder this writes holds no pickle.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from inference.errors import InputError
from inference.model.folder_checks import check_tensor
from training.checkpoint_io import load_state_dict
from training.config import CONFIG_FILE, TrainConfig

log = logging.getLogger("tumorchain.training")


def find_run_config(checkpoint: Path) -> TrainConfig:
    for folder in (checkpoint, checkpoint.parent):
        if (folder / CONFIG_FILE).is_file():
            return TrainConfig.load(folder / CONFIG_FILE)
    raise InputError(checkpoint, f"no {CONFIG_FILE} in the checkpoint or its run folder: not a tumorchain-train checkpoint")


def checkpoint_state(checkpoint: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict of TumorChainForTraining, where it came from)."""
    tags = sorted(p.name for p in checkpoint.glob("global_step*") if p.is_dir())
    if tags:
        from training.runtime import setup_environment

        setup_environment("cpu" if not torch.cuda.is_available() else None)
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        tag = (checkpoint / "latest").read_text().strip() if (checkpoint / "latest").is_file() else tags[-1]
        state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint), tag=tag)
        return dict(state), f"DeepSpeed ZeRO checkpoint {checkpoint / tag} (zero_to_fp32)"
    weights = checkpoint / "model.safetensors"
    if not weights.is_file():
        raise InputError(checkpoint, "neither a DeepSpeed global_step* folder nor model.safetensors: nothing to export")
    return load_state_dict(weights), str(weights)


def export_checkpoint(checkpoint: str | Path, out: str | Path, dtype: str | None = None, verify: bool = True) -> dict:
    """Write the workstation model folder; returns what was done (for the log / tests)."""
    from training.build_model import load_base_model
    from training.joint_model import TumorChainForTraining
    from training.lora import apply_lora, merge_lora

    checkpoint, out = Path(checkpoint), Path(out)
    if not checkpoint.is_dir():
        raise InputError(checkpoint, "checkpoint folder not found")
    cfg = find_run_config(checkpoint)
    model = load_base_model(cfg, torch.float32)
    if cfg.lora:
        apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, list(cfg.lora_targets))
    wrapper = TumorChainForTraining(model, cfg.cls_loss_weight)
    state, source = checkpoint_state(checkpoint)
    expected = wrapper.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(checkpoint, f"weights do not fit the run's model: missing {missing[:4]}, unexpected {unexpected[:4]}")
    for key, value in state.items():  # one clear line instead of load_state_dict's size-mismatch traceback
        if value.shape != expected[key].shape:
            raise InputError(checkpoint, f"tensor {key} has shape {tuple(value.shape)}, the run's model needs "
                                         f"{tuple(expected[key].shape)}")
        check_tensor(source, key, value)
    wrapper.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    merge_lora(model)
    model.config.cls_loss_weight = float(cfg.cls_loss_weight)
    if dtype:
        from inference.model.devices import dtype_from_name

        model.to(dtype_from_name(dtype))
    model.save_pretrained(out)
    result = {"checkpoint": str(checkpoint), "weights_from": source, "out": str(out), "lora_merged": bool(cfg.lora),
              "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file())}
    if verify:
        result["verified_logits_shape"] = verify_export(out)
    return result


def verify_export(folder: Path) -> list[int]:
    """Load the folder as the workstation does and run the LLM on one token."""
    from inference.model.modeling_tumorchain import TumorChainModel

    m = TumorChainModel.from_pretrained(folder, device="cpu", dtype=torch.float32)
    ids = torch.tensor([[m.tokenizer.eos_token_id or 0]])
    with torch.inference_mode():
        logits = m(ids).logits
    if not torch.isfinite(logits).all():
        raise RuntimeError(f"{folder}: exported model gives non-finite logits")
    return list(logits.shape)
