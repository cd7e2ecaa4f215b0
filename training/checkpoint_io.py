"""Safetensors state dicts with tied weights (an LLM whose lm_head shares the embedding matrix).

safetensors refuses two names for one storage; we write each storage once and record the other
names in the file's metadata, so a load restores the full state dict.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from inference.errors import ModelError
from inference.model.folder_checks import read_safetensors_header

ALIASES_KEY = "tumorchain_aliases"


def save_state_dict(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    seen: dict[tuple, str] = {}
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, t in state.items():
        t = t.detach()
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if t.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = t.cpu().contiguous().clone() if _shares_storage(t, tensors) else t.cpu().contiguous()
    meta = {"format": "pt", ALIASES_KEY: json.dumps(aliases)}
    meta.update(metadata or {})
    save_file(tensors, str(path), metadata=meta)


def _shares_storage(t: torch.Tensor, others: dict[str, torch.Tensor]) -> bool:
    ptr = t.untyped_storage().data_ptr()
    return any(o.untyped_storage().data_ptr() == ptr for o in others.values() if o.numel())


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint weights not found")
    metadata, _ = read_safetensors_header(path)  # a damaged file is a ModelError, not a SafetensorError
    try:
        aliases = json.loads(metadata.get(ALIASES_KEY, "{}"))
    except json.JSONDecodeError as error:
        raise ModelError(f"{path}: malformed {ALIASES_KEY} metadata ({error})") from error
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    for alias, target in aliases.items():
        if target not in state:
            raise ModelError(f"{path}: {ALIASES_KEY} names {alias} -> {target}, which the file does not hold")
        state[alias] = state[target]
    return state
