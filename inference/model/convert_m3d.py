"""Convert a published M3D checkpoint's vision encoder into our safetensors.

    python -m inference.model.convert_m3d SRC DST [--num-heads 12] [--img-size 32 256 256]
                                                  [--patch-size 4 16 16] [--dtype float32]

For a whole M3D-LaMed model (vision tower, projector and LLM) use inference.model.convert_lamed.

SRC is an M3D-CLIP (GoodBaiBai88/M3D-CLIP) or M3D-LaMed download: a folder with config.json and
model.safetensors / pytorch_model.bin (sharded or not), or one such file. The encoder's tensors are
found by their anchor "patch_embedding.position_embeddings" whatever the prefix ("vision_encoder."
in M3D-CLIP, "model.vision_tower.vision_tower." in M3D-LaMed); everything else (BERT, projectors,
the LLM, M3D-LaMed's SegVol ViT under "model.seg_module.") is ignored. Pickled .bin files are read with torch.load(weights_only=True), which refuses
arbitrary objects. DST gets plain encoder keys (see vision_encoder.py) plus the encoder sizes in the
safetensors metadata, ready for TumorChainModel.build(..., vision_weights=DST).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from inference.errors import ModelError

from .config import VisionConfig
from .devices import dtype_from_name
from .folder_checks import check_tensor, read_safetensors_header
from .model_files import VISION_CONFIG_KEY
from .vision_encoder import VisionEncoder3D

ANCHOR = "patch_embedding.position_embeddings"
# MONAI >= 1.4 TransformerBlock always builds an (unused) cross-attention; M3D (monai 1.3.0) has none
UNUSED = re.compile(r"^blocks\.\d+\.(norm_cross_attn|cross_attn)\.")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")


@dataclass
class ConversionReport:
    source_prefix: str
    config: VisionConfig
    n_tensors: int
    n_params: int
    dropped: list[str]


def checkpoint_files(src: Path) -> list[Path]:
    """The weight files of a folder or a single file; safetensors preferred over pickles."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise ModelError(f"{src}: checkpoint not found")
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = src / index_name
        if index.is_file():
            try:
                names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
                raise ModelError(f"{index}: malformed index ({error})") from error
            return [src / n for n in names]
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (src / name).is_file():
            return [src / name]
    raise ModelError(f"{src}: no model.safetensors or pytorch_model.bin in this folder")


def read_encoder_tensors(files: list[Path]) -> tuple[str, dict[str, torch.Tensor]]:
    """(prefix, {key without prefix: tensor}) of the one vision encoder in the checkpoint.
    Keys of all shards are listed first, so an encoder split over shards is found whole."""
    sources: list[tuple[Path, list[str], dict | None]] = []  # (file, keys, loaded pickle or None)
    for file in files:
        if not file.is_file():
            raise ModelError(f"{file}: weight file not found")
        if file.suffix == ".safetensors":
            _, infos = read_safetensors_header(file)  # bounded, validated header before safetensors reads it
            sources.append((file, list(infos), None))
        elif file.suffix in PICKLE_SUFFIXES:
            data = _load_pickle(file)
            sources.append((file, list(data), data))
        else:
            raise ModelError(f"{file}: unknown weight file type (expected .safetensors, .bin, .pt or .pth)")
    prefix = _prefix([k for _, keys, _ in sources for k in keys], files[0])
    if prefix is None:
        raise ModelError(f"{files[0]}: no 3D vision encoder (no '*{ANCHOR}' tensor) in this checkpoint")
    state: dict[str, torch.Tensor] = {}
    for file, keys, data in sources:
        wanted = [k for k in keys if k.startswith(prefix)]
        if data is not None:
            state.update({k[len(prefix):]: data[k] for k in wanted})
        elif wanted:
            try:
                with safe_open(str(file), framework="pt") as f:  # reads only the encoder's tensors
                    state.update({k[len(prefix):]: f.get_tensor(k) for k in wanted})
            except SafetensorError as error:
                raise ModelError(f"{file}: not a readable safetensors file ({error})") from error
        for key in wanted:  # only the encoder's tensors: the rest of an M3D checkpoint is never used
            check_tensor(file, key, state[key[len(prefix):]])
    return prefix, state


def _load_pickle(file: Path) -> dict:
    """A state dict from a torch pickle, refusing anything but tensors and plain containers."""
    try:
        data = torch.load(str(file), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - old (non-zip) format cannot be mmapped; retry plainly
        try:
            data = torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - weights_only refusals and corrupt files alike
            raise ModelError(f"{file}: not a plain tensor checkpoint ({type(error).__name__}: {error})") from error
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelError(f"{file}: does not hold a state dict of tensors")
    return data


def _prefix(keys: list[str], file: Path) -> str | None:
    prefixes = sorted({k[: -len(ANCHOR)] for k in keys if k.endswith(ANCHOR)})
    if len(prefixes) > 1:  # M3D-LaMed also holds SegVol's ViT (model.seg_module.image_encoder.): not the tower
        prefixes = [p for p in prefixes if "seg_module." not in p] or prefixes
    if len(prefixes) > 1:
        raise ModelError(f"{file}: several vision encoders in one checkpoint ({', '.join(repr(p) for p in prefixes)})")
    return prefixes[0] if prefixes else None


def infer_config(state: dict[str, torch.Tensor], hints: dict, src: Path) -> VisionConfig:
    """Encoder sizes from tensor shapes; heads and image/patch size from hints (not in the shapes)."""
    try:
        hidden = state["norm.weight"].shape[0]
        n_patches = state[ANCHOR].shape[1]
        mlp_dim = state["blocks.0.mlp.linear1.weight"].shape[0]
    except KeyError as error:
        raise ModelError(f"{src}: encoder tensor {error} missing; not an M3D/MONAI ViT") from error
    num_layers = len({int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
    patch_size = tuple(hints.get("patch_size") or (4, 16, 16))
    img_size = tuple(hints.get("img_size") or hints.get("image_size") or (32, 256, 256))
    if "patch_embedding.patch_embeddings.1.weight" in state:
        patch_embed = "perceptron"
        in_channels = state["patch_embedding.patch_embeddings.1.weight"].shape[1] // math.prod(patch_size)
    elif "patch_embedding.patch_embeddings.weight" in state:
        patch_embed = "conv"
        weight = state["patch_embedding.patch_embeddings.weight"]
        in_channels, patch_size = weight.shape[1], tuple(weight.shape[2:])
    else:
        raise ModelError(f"{src}: no patch embedding weight (patch_embedding.patch_embeddings.*)")
    num_heads = hints.get("num_heads") or (12 if hidden == 768 else None)
    if num_heads is None:
        raise ModelError(f"{src}: the number of attention heads is not in the checkpoint; pass --num-heads")
    try:
        cfg = VisionConfig(in_channels=int(in_channels), img_size=img_size, patch_size=patch_size, hidden_size=int(hidden),
                           mlp_dim=int(mlp_dim), num_layers=num_layers, num_heads=int(num_heads), patch_embed=patch_embed,
                           qkv_bias="blocks.0.attn.qkv.bias" in state, cls_token="cls_token" in state)
    except ValueError as error:
        raise ModelError(f"{src}: inconsistent encoder sizes ({error})") from error
    if cfg.n_patches != n_patches:
        raise ModelError(f"{src}: the checkpoint has {n_patches} position embeddings, but img_size {cfg.img_size} / "
                         f"patch_size {cfg.patch_size} gives {cfg.n_patches}; pass --img-size/--patch-size")
    return cfg


def convert(src: str | Path, dst: str | Path, hints: dict | None = None, dtype: torch.dtype | None = None) -> ConversionReport:
    src, dst = Path(src), Path(dst)
    files = checkpoint_files(src)
    hints = dict(hints or {})
    config_json = (src if src.is_dir() else src.parent) / "config.json"
    if config_json.is_file():
        try:
            saved = json.loads(config_json.read_text())
        except (OSError, json.JSONDecodeError):
            saved = {}
        for key in ("num_heads", "img_size", "image_size", "patch_size"):
            if isinstance(saved, dict) and saved.get(key) is not None:
                hints.setdefault(key, saved[key])
    prefix, state = read_encoder_tensors(files)
    dropped = sorted(k for k in state if UNUSED.match(k))
    state = {k: v for k, v in state.items() if not UNUSED.match(k)}
    cfg = infer_config(state, hints, src)
    with torch.device("meta"):
        reference = VisionEncoder3D(cfg).state_dict()
    missing, extra = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    if missing or extra:
        raise ModelError(f"{src}: encoder keys differ from an M3D ViT: missing {missing[:4]}, unexpected {extra[:4]}")
    for key, ref in reference.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise ModelError(f"{src}: {prefix}{key} has shape {tuple(state[key].shape)}, expected {tuple(ref.shape)}")
    out = {k: (v.to(dtype) if dtype is not None else v).contiguous() for k, v in state.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dst), metadata={"format": "pt", VISION_CONFIG_KEY: json.dumps(asdict(cfg)),
                                       "converted_from": src.name, "source_prefix": prefix})
    return ConversionReport(source_prefix=prefix, config=cfg, n_tensors=len(out),
                            n_params=sum(v.numel() for v in out.values()), dropped=dropped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.model.convert_m3d", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="M3D-CLIP / M3D-LaMed folder or weight file")
    parser.add_argument("dst", help="output .safetensors file")
    parser.add_argument("--num-heads", type=int, help="attention heads (default: config.json, else 12 for width 768)")
    parser.add_argument("--img-size", type=int, nargs=3, metavar=("D", "H", "W"))
    parser.add_argument("--patch-size", type=int, nargs=3, metavar=("D", "H", "W"))
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="cast tensors (default: keep)")
    args = parser.parse_args(argv)
    hints = {k: v for k, v in (("num_heads", args.num_heads), ("img_size", args.img_size),
                               ("patch_size", args.patch_size)) if v}
    try:
        report = convert(args.src, args.dst, hints, dtype_from_name(args.dtype) if args.dtype else None)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst}: {report.n_tensors} tensors, {report.n_params / 1e6:.1f} M parameters "
          f"(prefix {report.source_prefix!r}; {len(report.dropped)} unused cross-attention tensors dropped)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
