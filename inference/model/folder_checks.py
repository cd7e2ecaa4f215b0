"""Checks a model folder passes before anything in it is loaded (README: "Model folders").

A model folder is data, never code: a config that names custom code (``auto_map``) is refused, so
transformers never asks "Do you wish to run the custom code?" and never imports the folder's Python.
Every safetensors header is parsed here with bounded reads before safetensors sees the file, so a
truncated file, a pickle renamed ``.safetensors`` or a header declaring terabytes is one ModelError
naming the file, not a SafetensorError or an allocation. Sizes in an LLM config are bounded for the
same reason. After loading, every tensor is checked for NaN / inf (chunked, cheap next to the read).
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from inference.errors import ModelError

# Small JSON files of an HF / TumorChain folder that transformers reads; any may carry "auto_map".
CONFIG_FILES = ("config.json", "tokenizer_config.json", "generation_config.json", "preprocessor_config.json",
                "processor_config.json")
CUSTOM_CODE_KEYS = ("auto_map", "custom_pipelines")

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header
# Bytes per element of every dtype the safetensors format defines (to check shape x dtype = byte span).
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
# What our weights may be stored in: every tensor TumorChainModel and its LLMs save is floating point
# (no integer buffers), so an int8 / float64 / bool tensor is a foreign or damaged file, never cast.
WEIGHT_DTYPES = ("F32", "F16", "BF16")
TORCH_WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Upper bounds of LLM config sizes, a few times the largest published models; they keep a damaged
# config (vocab_size 2^31, hidden_size -128) from reaching a tensor constructor.
LLM_SIZE_LIMITS = {"vocab_size": 1 << 21, "hidden_size": 1 << 16, "intermediate_size": 1 << 18,
                   "num_hidden_layers": 1024, "num_attention_heads": 1024, "num_key_value_heads": 1024,
                   "head_dim": 4096, "max_position_embeddings": 1 << 24}
FINITE_CHUNK = 1 << 24  # elements per isfinite call: bounds the temporary bool tensor to 16 MB


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a safetensors header."""

    file: Path
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def refuse_custom_code(folder: Path) -> None:
    """ModelError when a config file of the folder names custom code (auto_map and the like)."""
    for name in CONFIG_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{path}: malformed {name} ({error})") from error
        found = [key for key in CUSTOM_CODE_KEYS if isinstance(data, dict) and key in data]
        if found:
            raise ModelError(f"{path}: names custom code ({found[0]}: {json.dumps(data[found[0]])[:120]}); "
                             "model folders may hold only configs, tokenizer files and safetensors weights, "
                             "and their Python code is never run")


def check_llm_config(path: Path, data: dict) -> None:
    """Sizes of an HF LLM config.json (and its text_config) are positive integers within bounds."""
    sections = [("", data)]
    if isinstance(data.get("text_config"), dict):
        sections.append(("text_config.", data["text_config"]))
    for prefix, section in sections:
        for key, limit in LLM_SIZE_LIMITS.items():
            value = section.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise ModelError(f"{path}: {prefix}{key} is {value!r}; it must be an integer in 1..{limit}")


def read_safetensors_header(path: Path) -> tuple[dict[str, str], dict[str, TensorInfo]]:
    """(metadata, {key: TensorInfo}) of a safetensors file, validated against the file's size:
    header length, JSON, dtypes, shapes, and tensors tiling the data area exactly. Reads only the header."""
    def bad(problem: str) -> ModelError:
        return ModelError(f"{path}: not a readable safetensors file ({problem})")

    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise bad(f"only {size} bytes, shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or 8 + n > size:
                if head[:4] == b"PK\x03\x04" or (head[0] == 0x80 and 2 <= head[1] <= 5):  # zip / pickle magic
                    raise bad("it is a pickle / torch.save archive with a .safetensors name; pickles are never loaded")
                raise bad(f"header length {n} bytes, but the file has {size} bytes (truncated or not safetensors)")
            raw = handle.read(n)
    except OSError as error:
        raise ModelError(f"{path}: cannot read ({error})") from error
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise bad(f"header is not JSON: {error}") from error
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ is not a string-to-string map")
    data_bytes = size - 8 - n
    infos: dict[str, TensorInfo] = {}
    spans = []
    for key, entry in header.items():
        if not isinstance(entry, dict):
            raise bad(f"entry of tensor {key} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise bad(f"tensor {key} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise bad(f"tensor {key} has invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise bad(f"tensor {key} has invalid data_offsets {offsets!r}")
        need = math.prod(shape) * DTYPE_BYTES[dtype]
        if offsets[1] - offsets[0] != need:
            raise bad(f"tensor {key}: shape {shape} of {dtype} is {need} bytes, its data span is "
                      f"{offsets[1] - offsets[0]} bytes")
        if offsets[1] > data_bytes:
            raise bad(f"tensor {key} ends at data byte {offsets[1]}, the file has {data_bytes} (truncated)")
        spans.append((offsets[0], offsets[1], key))
        infos[key] = TensorInfo(path, dtype, tuple(shape))
    end = 0
    for start, stop, key in sorted(spans):  # what safetensors itself demands: no gaps, no overlaps
        if start != end:
            raise bad(f"tensor {key} starts at data byte {start}, expected {end} (overlapping or gapped tensors)")
        end = stop
    if end != data_bytes:
        raise bad(f"{data_bytes - end} bytes after the last tensor")
    return metadata, infos


def read_weight_headers(files: list[Path]) -> dict[str, TensorInfo]:
    """The validated headers of all shards of one checkpoint; a tensor in two shards is refused."""
    infos: dict[str, TensorInfo] = {}
    for file in files:
        _, header = read_safetensors_header(file)
        for key, info in header.items():
            if key in infos:
                raise ModelError(f"{file}: tensor {key} is also in {infos[key].file.name}")
            infos[key] = info
    return infos


def check_weight_dtype(info: TensorInfo, key: str) -> None:
    if info.dtype not in WEIGHT_DTYPES:
        raise ModelError(f"{info.file}: tensor {key} is {info.dtype}; weights must be one of "
                         f"{', '.join(WEIGHT_DTYPES)} (never cast silently)")


def check_tensor(path: Path | str, key: str, tensor: torch.Tensor) -> None:
    """A weight read from disk (or loaded by transformers): floating dtype we accept, finite values."""
    if tensor.dtype not in TORCH_WEIGHT_DTYPES:
        raise ModelError(f"{path}: tensor {key} is {str(tensor.dtype).removeprefix('torch.')}; weights must be "
                         "float32, float16 or bfloat16 (never cast silently)")
    if tensor.device.type == "meta":
        return
    flat = tensor.detach().reshape(-1)
    for start in range(0, flat.numel(), FINITE_CHUNK):
        if not bool(torch.isfinite(flat[start:start + FINITE_CHUNK]).all()):
            raise ModelError(f"{path}: tensor {key} holds NaN or infinite values")
