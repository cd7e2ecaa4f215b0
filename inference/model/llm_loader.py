"""Load the LLM (any Hugging Face causal LM, Qwen2.5-VL's language model first) from a local folder.

Qwen2.5-VL folders (config.json model_type "qwen2_5_vl"): only the language model is built
(Qwen25VLTextForCausalLM) and only its tensors are read, one by one with safetensors.safe_open:
checkpoint keys "model.language_model.*" (transformers >= 4.52 layout) or "model.*" (the published
layout) and "lm_head.weight"; every "visual.*" / "model.visual.*" tensor is skipped by name and
never read from disk. Folders we saved ourselves (model_type "qwen2_5_vl_text") load the same way.
Other causal LMs (qwen2, llama, ...) go through AutoModelForCausalLM.from_pretrained.

Nothing is downloaded (local_files_only=True), nothing is unpickled (safetensors only) and no code
of the folder runs (trust_remote_code=False; a config with auto_map is refused, folder_checks.py).
Every weight must be there, fit the config's shapes, be float32/16/bf16 and finite: transformers'
"newly initialized" weights are a ModelError here, not a warning.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLConfig, Qwen2_5_VLTextConfig

from inference.errors import ModelError

from .devices import Placement, check_fits, memory_errors_as_model_error
from .folder_checks import TensorInfo, check_llm_config, check_tensor, check_weight_dtype, read_weight_headers, refuse_custom_code
from .qwen_vl_text import Qwen25VLTextForCausalLM

VL_TEXT_ONLY_TYPES = ("qwen2_5_vl", "qwen2_5_vl_text")
MROPE_TYPES = VL_TEXT_ONLY_TYPES  # language models whose position ids are (3, B, T)


@dataclass
class LoadedLLM:
    """A causal LM ready to run, plus what loading it did."""

    model: PreTrainedModel
    model_type: str  # of the folder's config.json
    uses_mrope: bool  # position ids (3, B, T) instead of (B, T)
    n_params: int
    read_keys: list[str] = field(default_factory=list)  # checkpoint tensors read (text-only path)
    skipped_keys: list[str] = field(default_factory=list)  # checkpoint tensors never read


def read_config_json(folder: str | Path) -> dict:
    """The folder's config.json as a dict; ModelError naming the folder and the problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: model folder not found")
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError(f"{folder}: missing config.json (not a Hugging Face model folder)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: malformed config.json ({error})") from error
    if not isinstance(data, dict) or "model_type" not in data:
        raise ModelError(f"{path}: config.json has no model_type")
    refuse_custom_code(folder)
    check_llm_config(path, data)
    return data


def safetensors_files(folder: Path) -> list[Path]:
    """Weight shards of an HF folder (index or single file); pickles are refused."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise ModelError(f"{index}: malformed safetensors index ({error})") from error
        files = [folder / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ModelError(f"{folder}: missing weight shard(s) {', '.join(missing)} named in {index.name}")
        return files
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        raise ModelError(f"{folder}: has only pickle weights (.bin/.pt), which are never loaded; "
                         "convert them to safetensors first")
    raise ModelError(f"{folder}: missing model.safetensors (or model.safetensors.index.json)")


def count_checkpoint_params(infos: dict[str, TensorInfo], keep=lambda key: True) -> int:
    """Number of parameters in the checkpoint tensors selected by `keep`, from the validated headers."""
    return sum(info.numel for key, info in infos.items() if keep(key))


def text_key(key: str) -> str | None:
    """Checkpoint key of a Qwen2.5-VL folder -> our text-only key, or None to skip it."""
    if key.startswith(("visual.", "model.visual.")):
        return None
    if key.startswith("model.language_model."):
        return "model." + key[len("model.language_model."):]
    if key.startswith("model.") or key.startswith("lm_head."):
        return key
    return None


def load_llm(folder: str | Path, placement: Placement) -> LoadedLLM:
    """Load the causal LM in `folder` onto placement.device in placement.dtype."""
    folder = Path(folder)
    cfg = read_config_json(folder)
    model_type = cfg["model_type"]
    if model_type in VL_TEXT_ONLY_TYPES:
        return _load_vl_text(folder, model_type, placement)
    return _load_auto(folder, model_type, placement)


def load_tokenizer(folder: str | Path, llm_config=None):
    """The folder's tokenizer (local files only). Pass the LLM's config when the folder's own
    config.json is not the LLM's (a TumorChain folder), so transformers does not read that one."""
    folder = Path(folder)
    kwargs = {"config": llm_config} if llm_config is not None else {}
    try:
        refuse_custom_code(folder)
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False, **kwargs)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise ModelError(f"{folder}: no usable tokenizer files ({error})") from error


def _load_vl_text(folder: Path, model_type: str, placement: Placement) -> LoadedLLM:
    try:
        if model_type == "qwen2_5_vl":
            full = Qwen2_5_VLConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
            text_config = full.text_config
            text_config.tie_word_embeddings = bool(getattr(full, "tie_word_embeddings", False))
        else:
            text_config = Qwen2_5_VLTextConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
            text_config.tie_word_embeddings = bool(getattr(text_config, "tie_word_embeddings", False))
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise ModelError(f"{folder}/config.json: not a usable {model_type} config ({error})") from error
    files = safetensors_files(folder)
    infos = read_weight_headers(files)
    n_params = count_checkpoint_params(infos, keep=lambda k: text_key(k) is not None)
    check_fits("the language model", folder, n_params, placement.dtype, placement.device)

    try:
        with torch.device("meta"):
            model = Qwen25VLTextForCausalLM(text_config)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as error:
        raise ModelError(f"{folder}/config.json: describes a {model_type} model that cannot be built ({error})") from error
    expected = model.state_dict()
    # Everything is decided from the headers before a byte of tensor data is read.
    ours_of: dict[str, str] = {}
    seen: set[str] = set()
    for key, info in infos.items():
        ours = text_key(key)
        if ours is None:
            continue
        if ours in seen:
            raise ModelError(f"{info.file}: tensor {key} duplicates another checkpoint key for {ours}")
        ours_of[key] = ours
        seen.add(ours)
        if ours in expected:
            check_weight_dtype(info, key)
            if info.shape != tuple(expected[ours].shape):
                raise ModelError(f"{info.file}: tensor {key} has shape {info.shape}, the config.json needs "
                                 f"{tuple(expected[ours].shape)}")
    unexpected = sorted(k for k, ours in ours_of.items() if ours not in expected)
    if unexpected:
        raise ModelError(f"{infos[unexpected[0]].file}: checkpoint tensors that the {model_type} language model does "
                         f"not have: {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
    missing = sorted(set(expected) - set(ours_of.values()))
    if missing == ["lm_head.weight"] and text_config.tie_word_embeddings:
        missing = []  # tied: lm_head shares embed_tokens, which the checkpoint holds
    if missing:
        raise ModelError(f"{folder}: checkpoint lacks {len(missing)} language-model tensor(s), e.g. "
                         f"{', '.join(missing[:5])}")
    state: dict[str, torch.Tensor] = {}
    read, skipped = [], []
    with memory_errors_as_model_error("the language model", folder, n_params, placement.dtype, placement.device):
        for file in files:
            with safe_open(str(file), framework="pt", device=str(placement.device)) as f:
                for key in f.keys():
                    ours = text_key(key)
                    if ours is None:
                        skipped.append(key)
                        continue
                    tensor = f.get_tensor(key)
                    check_tensor(file, key, tensor)  # before the cast, which would hide int8 / keep NaN
                    state[ours] = tensor.to(dtype=placement.dtype)
                    read.append(key)
        model.load_state_dict(state, strict=False, assign=True)
        if "lm_head.weight" not in state:
            model.lm_head.weight = model.model.embed_tokens.weight
        model.rebuild_rotary(placement.device)
    model.eval()
    return LoadedLLM(model=model, model_type=model_type, uses_mrope=True, n_params=n_params,
                     read_keys=read, skipped_keys=skipped)


def _load_auto(folder: Path, model_type: str, placement: Placement) -> LoadedLLM:
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        with torch.device("meta"):  # the size the config describes, without allocating it
            expected_params = sum(p.numel() for p in AutoModelForCausalLM.from_config(config, trust_remote_code=False).parameters())
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, ZeroDivisionError) as error:
        raise ModelError(f"{folder}/config.json: model_type {model_type!r} is not a causal LM this "
                         f"transformers can build ({error})") from error
    files = safetensors_files(folder)
    infos = read_weight_headers(files)
    for key, info in infos.items():
        check_weight_dtype(info, key)
    n_params = count_checkpoint_params(infos)
    # a config larger than its checkpoint would have transformers allocate (and randomly fill) the rest
    check_fits("the language model", folder, max(n_params, expected_params), placement.dtype, placement.device)
    kwargs = dict(local_files_only=True, dtype=placement.dtype, use_safetensors=True, trust_remote_code=False,
                  output_loading_info=True, ignore_mismatched_sizes=True,  # mismatches come back in the info
                  use_kernels=False)  # never Hub kernels: they are code fetched at run time (offline, no remote code)
    if placement.device.type != "cpu" and importlib.util.find_spec("accelerate") is not None:
        kwargs["device_map"] = {"": str(placement.device)}  # straight to the GPU, no CPU copy
    with memory_errors_as_model_error("the language model", folder, n_params, placement.dtype, placement.device):
        try:
            model, info = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        except (OSError, ValueError, KeyError) as error:
            raise ModelError(f"{folder}: cannot load the causal LM ({error})") from error
        _check_loading_info(folder, info, infos)
        model = model.to(placement.device)
    checked: set[int] = set()
    for key, tensor in model.state_dict().items():
        if tensor.data_ptr() not in checked:  # a tied lm_head is the embedding: check it once
            checked.add(tensor.data_ptr())
            check_tensor(infos[key].file if key in infos else folder, key, tensor)
    model.eval()
    return LoadedLLM(model=model, model_type=model_type, uses_mrope=model_type in MROPE_TYPES, n_params=n_params)


def _check_loading_info(folder: Path, info: dict, infos: dict[str, TensorInfo]) -> None:
    """transformers only warns about these and fills missing weights with random values; we refuse."""
    def where(key: str) -> Path:
        return infos[key].file if key in infos else folder

    def more(items) -> str:
        return f" and {len(items) - 1} more" if len(items) > 1 else ""

    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ModelError(f"{folder}: the checkpoint lacks language-model tensor {missing[0]}{more(missing)}")
    unexpected = sorted(info.get("unexpected_keys") or ())
    if unexpected:
        raise ModelError(f"{where(unexpected[0])}: tensor {unexpected[0]}{more(unexpected)} is not part of "
                         "the language model that config.json describes")
    mismatched = sorted(info.get("mismatched_keys") or (), key=str)
    if mismatched:
        key, got, need = (tuple(mismatched[0]) + (None, None))[:3]
        raise ModelError(f"{where(str(key))}: tensor {key} has shape {tuple(got or ())}, config.json needs "
                         f"{tuple(need or ())}{more(mismatched)}")
    if info.get("error_msgs"):
        raise ModelError(f"{folder}: cannot load the causal LM ({'; '.join(map(str, info['error_msgs']))[:300]})")
