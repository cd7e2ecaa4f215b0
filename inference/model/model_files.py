"""Files of a saved TumorChain model and the safetensors I/O of its own parts.

    <folder>/config.json          TumorChainConfig
    <folder>/model.safetensors    vision_encoder.*, projector.*, classifier.*
    <folder>/tokenizer*.json ...  the LLM's tokenizer with <ct> and <organ_feature> added
    <folder>/llm/                 the LLM in Hugging Face format (config.json + safetensors)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
import torch
from torch import nn

from inference.errors import ModelError

from .config import TumorChainConfig, VisionConfig
from .folder_checks import check_tensor, check_weight_dtype, read_safetensors_header, refuse_custom_code

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
VISION_CONFIG_KEY = "tumorchain_vision_config"  # safetensors metadata written by convert_m3d


def check_model_folder(folder: Path) -> TumorChainConfig:
    """Everything from_pretrained needs is there and parses; else ModelError naming the file."""
    if not folder.is_dir():
        raise ModelError(f"{folder}: model folder not found")
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError(f"{folder}: missing config.json (not a TumorChain model folder)")
    refuse_custom_code(folder)  # the LLM subfolder is checked by load_llm
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: malformed config.json ({error})") from error
    if not isinstance(data, dict) or data.get("model_type") != "tumorchain":
        raise ModelError(f"{path}: not a TumorChain config (model_type {data.get('model_type') if isinstance(data, dict) else None!r})")
    try:
        config = TumorChainConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ModelError(f"{path}: invalid TumorChain config ({error})") from error
    if not (folder / "model.safetensors").is_file():
        raise ModelError(f"{folder}: missing model.safetensors (vision encoder, projector, classifier)")
    if not (folder / config.llm_subfolder / "config.json").is_file():
        raise ModelError(f"{folder}: missing {config.llm_subfolder}/config.json (the language model)")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{folder}: missing tokenizer files ({' or '.join(TOKENIZER_FILES)})")
    return config


def save_part_weights(model: nn.Module, path: Path, parts: Sequence[str]) -> None:
    state = {
        f"{part}.{key}": value.detach().cpu().contiguous()
        for part in parts
        for key, value in getattr(model, part).state_dict().items()
    }
    save_file(state, str(path), metadata={"format": "pt"})


def load_part_weights(model: nn.Module, path: Path, parts: Sequence[str], prefix_in_file: str | None = None) -> None:
    """Load parts of `model` from a safetensors file, strictly: exactly the parts' keys (none missing,
    none extra), shapes equal, float32/16/bf16 only, finite values; else ModelError naming file and tensor.

    Keys in the file are "<part>.<key>", or "<prefix_in_file><key>" when one part is loaded from
    a file of its own (the converted M3D encoder: prefix_in_file="").
    """
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found")
    metadata, infos = read_safetensors_header(path)  # before safetensors sees the file
    wanted: dict[str, tuple[str, str, torch.Tensor]] = {}  # file key -> (part, module key, reference)
    for part in parts:
        module = getattr(model, part)
        prefix = f"{part}." if prefix_in_file is None else prefix_in_file
        _check_vision_metadata(path, part, module, metadata)
        for key, ref in module.state_dict().items():
            wanted[prefix + key] = (part, key, ref)
        missing = sorted(k for k, (p, _, _) in wanted.items() if p == part and k not in infos)
        if missing:
            raise ModelError(f"{path}: missing {len(missing)} {part} tensor(s), e.g. {', '.join(missing[:4])}")
    extra = sorted(set(infos) - set(wanted))
    if extra:
        raise ModelError(f"{path}: tensors that the {' / '.join(parts)} do not have (this model config has none), "
                         f"e.g. {', '.join(extra[:4])}")
    for name, (_, _, ref) in wanted.items():
        check_weight_dtype(infos[name], name)
        if infos[name].shape != tuple(ref.shape):
            raise ModelError(f"{path}: {name} has shape {infos[name].shape}, the model config needs {tuple(ref.shape)}")
    states: dict[str, dict[str, torch.Tensor]] = {part: {} for part in parts}
    try:
        with safe_open(str(path), framework="pt") as f:
            for name, (part, key, ref) in wanted.items():
                tensor = f.get_tensor(name)
                check_tensor(path, name, tensor)
                states[part][key] = tensor.to(ref.dtype)
    except SafetensorError as error:
        raise ModelError(f"{path}: not a readable safetensors file ({error})") from error
    except OSError as error:
        raise ModelError(f"{path}: cannot read ({error})") from error
    for part in parts:
        getattr(model, part).load_state_dict(states[part], strict=True)


def _check_vision_metadata(path: Path, part: str, module: nn.Module, metadata: dict) -> None:
    """A converted encoder records its sizes; say plainly when they differ from the model config."""
    if part != "vision_encoder" or VISION_CONFIG_KEY not in metadata:
        return
    try:
        saved = VisionConfig(**json.loads(metadata[VISION_CONFIG_KEY]))
    except (TypeError, ValueError) as error:
        raise ModelError(f"{path}: malformed {VISION_CONFIG_KEY} metadata ({error})") from error
    ours = module.config
    for name in ("img_size", "patch_size", "hidden_size", "mlp_dim", "num_layers", "num_heads", "patch_embed", "cls_token",
                 "stem_channels", "stem_strides"):
        if getattr(saved, name) != getattr(ours, name):
            raise ModelError(f"{path}: encoder was converted with {name}={getattr(saved, name)}, "
                             f"the model config has {name}={getattr(ours, name)}")
