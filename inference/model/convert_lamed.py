"""Convert a downloaded M3D-LaMed folder (Phi-3-4B or Llama-2-7B) into a TumorChain model folder.

    python -m inference.model.convert_lamed SRC DST [--dtype bfloat16] [--num-heads 12] [--organ-tokens 64]

SRC: the folder as published (GoodBaiBai88/M3D-LaMed-Phi-3-4B, ...-Llama-2-7B): config.json
(model_type "lamed_phi3" / "lamed_llama"), model.safetensors or sharded model-*.safetensors with
model.safetensors.index.json, and the tokenizer files. Nothing in it is executed: config.json is
read as JSON (its auto_map / remote code is never imported), the tensors with safetensors.

The checkpoint holds, by key prefix (BAAI-DCAI/M3D LaMed/src/model/lamed_arch.py):
    model.vision_tower.vision_tower.*   the 3D ViT            -> DST/model.safetensors vision_encoder.*
    model.mm_projector.projector.{i}.*  the "spp" MLP          -> DST/model.safetensors projector.projector.{i}.*
    model.seg_module.*, model.seg_projector.*  SegVol          -> skipped (noted in config.json source_notes)
    model.*, lm_head.*                  the Phi-3 / Llama LLM  -> DST/llm/ as a plain phi3 / llama folder
Every tensor must be one of these, with the shape the config describes: a missing or extra tensor
is a ModelError naming it. The LLM gets embedding rows for our placeholders "<ct>" and
"<organ_feature>" (the mean of the others, as M3D initialised its own new tokens) unless its padded
vocabulary already has room. "<im_patch>" stays M3D's text token: round 1 is tokenized with it
exactly as M3D was trained, then the image is written over positions 1 .. Lg (iir/prompt_style.py).

DST then loads like any TumorChain folder (TumorChainModel.from_pretrained: CLI, workstation,
training): projector_type "m3d_spp", preprocessing "m3d", prompt_format "m3d", no organ classifier,
Gamma "crop" with the crop's patch grid pooled like the global tokens (organ_pooling).
Weights are streamed shard by shard, so memory stays at about one shard.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from inference.errors import ModelError

from inference.vocabulary import CT_TOKEN, ORGAN_TOKEN

from .config import TumorChainConfig, VisionConfig
from .convert_m3d import UNUSED, infer_config
from .devices import dtype_from_name
from .folder_checks import TensorInfo, check_llm_config, check_tensor, check_weight_dtype, read_weight_headers
from .llm_loader import safetensors_files
from .projector import M3DProjector
from .vision_encoder import VisionEncoder3D

VISION_PREFIX = "model.vision_tower.vision_tower."
PROJECTOR_PREFIX = "model.mm_projector."
SKIPPED_PREFIXES = ("model.seg_module.", "model.seg_projector.")
LLM_TYPES = {"lamed_phi3": ("phi3", "Phi3ForCausalLM"), "lamed_llama": ("llama", "LlamaForCausalLM")}
IMAGE_TOKEN = "<im_patch>"  # M3D's image token: stays text (the prompt is tokenized with it, as in training)
# M3D's own settings in config.json; they describe the vision side, not the LLM
LAMED_FIELDS = ("image_channel", "image_size", "patch_size", "vision_tower", "vision_select_layer",
                "vision_select_feature", "mm_projector_type", "proj_layer_type", "proj_layer_num", "proj_pooling_type",
                "proj_pooling_size", "mm_hidden_size", "segmentation_module", "seg_token_id", "img_token_id",
                "tune_mm_mlp_adapter", "proj_out_num", "pretrain_vision_model", "pretrain_mm_mlp_adapter",
                "pretrain_seg_module", "freeze_vision_tower", "auto_map", "num_new_tokens")
SHARD_BYTES = 2 << 30


@dataclass
class LamedReport:
    config: TumorChainConfig
    llm_type: str
    n_tensors: dict[str, int] = field(default_factory=dict)  # vision / projector / llm / skipped
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_lamed_config(src: Path) -> dict:
    path = src / "config.json"
    if not src.is_dir():
        raise ModelError(f"{src}: M3D-LaMed folder not found")
    if not path.is_file():
        raise ModelError(f"{src}: missing config.json (not an M3D-LaMed folder)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: malformed config.json ({error})") from error
    if not isinstance(data, dict) or data.get("model_type") not in LLM_TYPES:
        got = data.get("model_type") if isinstance(data, dict) else None
        raise ModelError(f"{path}: model_type {got!r} is not an M3D-LaMed model ({', '.join(LLM_TYPES)})")
    wanted = {"vision_tower": "vit3d", "vision_select_layer": -1, "vision_select_feature": "patch",
              "mm_projector_type": "spp", "proj_pooling_type": "spatial"}
    for key, value in wanted.items():
        got = data.get(key, value)
        if (str(got).lower() if isinstance(value, str) else got) != value:
            raise ModelError(f"{path}: {key} is {got!r}; only M3D-LaMed's published setting {value!r} is supported")
    if data.get("proj_layer_type", "mlp") != "mlp":
        raise ModelError(f"{path}: proj_layer_type {data.get('proj_layer_type')!r}; only 'mlp' (Linear, GELU, Linear) "
                         "is supported")
    check_llm_config(path, data)
    return data


def llm_config_dict(data: dict) -> tuple[str, str, dict]:
    """(model_type, architecture, plain LLM config dict) from an M3D-LaMed config.json."""
    model_type, arch = LLM_TYPES[data["model_type"]]
    clean = {k: v for k, v in data.items() if k not in LAMED_FIELDS and not k.startswith("_")}
    clean.update(model_type=model_type, architectures=[arch])
    return model_type, arch, clean


def vision_config(data: dict, vision_state: dict[str, torch.Tensor], src: Path, hints: dict) -> VisionConfig:
    """The ViT's sizes: image/patch size from config.json, widths and depth from the tensor shapes,
    heads 12 (M3D's ViT3DTower never sets them: MONAI's default) unless given."""
    hints = dict(hints)
    hints.setdefault("img_size", data.get("image_size") or (32, 256, 256))
    hints.setdefault("patch_size", data.get("patch_size") or (4, 16, 16))
    cfg = infer_config(vision_state, hints, src)
    if cfg.in_channels != int(data.get("image_channel", 1)):
        raise ModelError(f"{src}/config.json: image_channel {data.get('image_channel')} but the patch embedding "
                         f"reads {cfg.in_channels} channel(s)")
    if int(data.get("mm_hidden_size", cfg.hidden_size)) != cfg.hidden_size:
        raise ModelError(f"{src}/config.json: mm_hidden_size {data.get('mm_hidden_size')} but the vision tower is "
                         f"{cfg.hidden_size} wide")
    return cfg


def _classify(key: str) -> str:
    if key.startswith(VISION_PREFIX):
        return "vision"
    if key.startswith(PROJECTOR_PREFIX):
        return "projector"
    if key.startswith(SKIPPED_PREFIXES):
        return "skipped"
    if key.startswith(("model.", "lm_head.")):
        return "llm"
    return "unknown"


def _read(infos: dict[str, TensorInfo], keys: list[str]) -> dict[str, torch.Tensor]:
    """Read the given keys (grouped by file), each checked (dtype, finite)."""
    out: dict[str, torch.Tensor] = {}
    by_file: dict[Path, list[str]] = {}
    for key in keys:
        by_file.setdefault(infos[key].file, []).append(key)
    for file, names in by_file.items():
        try:
            with safe_open(str(file), framework="pt") as f:
                for name in names:
                    tensor = f.get_tensor(name)
                    check_tensor(file, name, tensor)
                    out[name] = tensor
        except SafetensorError as error:
            raise ModelError(f"{file}: not a readable safetensors file ({error})") from error
    return out


def _expect(kind: str, src: Path, infos: dict[str, TensorInfo], have: dict[str, str],
            expected: dict[str, tuple[int, ...]], prefix: str = "") -> None:
    """have: {checkpoint key: our key}; prefix: checkpoint key = prefix + our key. Missing, extra and
    mis-shaped tensors name the checkpoint key."""
    ours = {v: k for k, v in have.items()}
    extra = sorted(k for k, v in have.items() if v not in expected)
    if extra:
        raise ModelError(f"{infos[extra[0]].file}: tensor {extra[0]} is not part of the {kind} the config describes"
                         + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    missing = sorted(k for k in expected if k not in ours)
    if missing:
        raise ModelError(f"{src}: the checkpoint lacks the {kind} tensor {prefix}{missing[0]}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    for key, shape in expected.items():
        info = infos[ours[key]]
        check_weight_dtype(info, ours[key])
        if tuple(info.shape) != tuple(shape):
            raise ModelError(f"{info.file}: tensor {ours[key]} has shape {tuple(info.shape)}, the config needs {tuple(shape)}")


def convert_lamed(src: str | Path, dst: str | Path, dtype: torch.dtype | None = None, hints: dict | None = None,
                  n_organ_tokens: int = 64, overwrite: bool = False) -> LamedReport:
    src, dst = Path(src), Path(dst)
    data = read_lamed_config(src)
    model_type, arch, llm_dict = llm_config_dict(data)
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise ModelError(f"{dst}: exists and is not empty; choose a new folder (nothing was written)")
    files = safetensors_files(src)  # pickles refused, shards named by the index must exist
    infos = read_weight_headers(files)
    groups: dict[str, list[str]] = {"vision": [], "projector": [], "skipped": [], "llm": [], "unknown": []}
    for key in infos:
        groups[_classify(key)].append(key)
    if groups["unknown"]:
        key = sorted(groups["unknown"])[0]
        raise ModelError(f"{infos[key].file}: tensor {key} belongs to no part of an M3D-LaMed model")
    if not groups["vision"]:
        raise ModelError(f"{src}: no vision tower ({VISION_PREFIX}*) in the checkpoint")

    # vision tower: the ViT that convert_m3d already matches key for key
    vision_raw = _read(infos, groups["vision"])
    vision_state = {k[len(VISION_PREFIX):]: v for k, v in vision_raw.items() if not UNUSED.match(k[len(VISION_PREFIX):])}
    vcfg = vision_config(data, vision_state, src, hints or {})
    with torch.device("meta"):
        v_expected = {k: tuple(t.shape) for k, t in VisionEncoder3D(vcfg).state_dict().items()}
    _expect("vision tower", src, infos, {VISION_PREFIX + k: k for k in vision_state}, v_expected,
            VISION_PREFIX)

    # projector: M3D's spp MLP
    hidden = int(llm_dict.get("hidden_size") or 0)
    layers = int(data.get("proj_layer_num", 2))
    with torch.device("meta"):
        p_expected = {k: tuple(t.shape) for k, t in M3DProjector(vcfg.hidden_size, hidden, layers).state_dict().items()}
    _expect("projector", src, infos, {k: k[len(PROJECTOR_PREFIX):] for k in groups["projector"]}, p_expected,
            PROJECTOR_PREFIX)
    proj_state = {k[len(PROJECTOR_PREFIX):]: v for k, v in _read(infos, groups["projector"]).items()}

    # the LLM as transformers builds it from the plain config
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        llm_config = AutoConfig.for_model(**llm_dict)
        with torch.device("meta"):
            reference = AutoModelForCausalLM.from_config(llm_config)
    except (ValueError, TypeError, KeyError, RuntimeError) as error:
        raise ModelError(f"{src}/config.json: not a buildable {model_type} language model ({error})") from error
    l_expected = {k: tuple(t.shape) for k, t in reference.state_dict().items()}
    tied = bool(getattr(llm_config, "tie_word_embeddings", False))
    if tied and "lm_head.weight" not in groups["llm"]:
        l_expected.pop("lm_head.weight", None)
    _expect(f"{model_type} language model", src, infos, {k: k for k in groups["llm"]}, l_expected)

    tokenizer = _tokenizer(src, llm_config)
    rows = l_expected["model.embed_tokens.weight"][0]
    pool = int(data.get("proj_pooling_size", 2))
    notes = [f"converted from the M3D-LaMed folder {src.name} ({data['model_type']}) by inference.model.convert_lamed"]
    if groups["skipped"]:
        notes.append(f"SegVol segmentation module skipped: {len(groups['skipped'])} tensors (model.seg_module.*, "
                     "model.seg_projector.*) are not used; the workstation's organ masks come from its own expert")
    notes.append("no organ classifier in this model: rounds report no P(abnormal)")
    notes.append("preprocessing and prompt follow M3D-LaMed's own (min-max, foreground crop, resize; "
                 "<im_patch> tokens from position 1, question, answer); later rounds re-encode each organ's box")
    try:
        cfg = TumorChainConfig(vision=vcfg, pool_size=(pool, pool, pool), projector_type="m3d_spp",
                               projector_layers=layers, llm_hidden_size=hidden, n_organ_tokens=n_organ_tokens,
                               gamma_mode="crop", organ_pooling=True, organ_classifier=False, preprocessing="m3d",
                               prompt_format="m3d", llm_model_type=model_type, llm_source=src.name,
                               ct_token=CT_TOKEN, organ_token=ORGAN_TOKEN, source_notes=notes)
    except ValueError as error:
        raise ModelError(f"{src}/config.json: {error}") from error

    dst.mkdir(parents=True, exist_ok=True)
    llm_dir = dst / cfg.llm_subfolder
    llm_dir.mkdir(exist_ok=True)
    grow = max(0, len(tokenizer) - rows)  # rows the placeholders need beyond the LLM's vocabulary
    if grow:
        llm_config.vocab_size = rows + grow
    llm_config.save_pretrained(str(llm_dir))
    _copy_generation_config(src, llm_dir)
    n_llm = _write_llm(infos, groups["llm"], llm_dir, dtype, grow)
    _save_parts(dst / "model.safetensors", vision_state, proj_state, dtype)
    tokenizer.save_pretrained(str(dst))
    _drop_custom_code(dst / "tokenizer_config.json")
    cfg.save(dst / "config.json")
    return LamedReport(config=cfg, llm_type=model_type, skipped=sorted(groups["skipped"]), notes=notes,
                       n_tensors={"vision": len(vision_state), "projector": len(proj_state), "llm": n_llm,
                                  "skipped": len(groups["skipped"])})


def _tokenizer(src: Path, llm_config):
    """The folder's tokenizer (no remote code), with our two placeholders added as special tokens."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(src), config=llm_config, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise ModelError(f"{src}: no usable tokenizer files ({error})") from error
    if IMAGE_TOKEN not in tok.get_vocab():
        raise ModelError(f"{src}: the tokenizer has no {IMAGE_TOKEN} token; not an M3D-LaMed tokenizer")
    new = [t for t in (CT_TOKEN, ORGAN_TOKEN) if t not in tok.get_vocab()]
    if new:
        tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in new], special_tokens=True)
    return tok


def _drop_custom_code(path: Path) -> None:
    """A tokenizer config naming remote code (auto_map) would make the converted folder refused."""
    if path.is_file():
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.pop("auto_map", None) is not None:
            path.write_text(json.dumps(data, indent=2) + "\n")


def _copy_generation_config(src: Path, llm_dir: Path) -> None:
    gen = src / "generation_config.json"
    if gen.is_file():
        shutil.copyfile(gen, llm_dir / "generation_config.json")


def _cast(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return (tensor.to(dtype) if dtype is not None else tensor).contiguous()


def _write_llm(infos: dict[str, TensorInfo], keys: list[str], llm_dir: Path, dtype: torch.dtype | None,
               grow: int) -> int:
    """Stream the LLM's tensors into shards of about SHARD_BYTES with an index; embedding rows for the
    new placeholder(s) = the mean of the existing rows (input and output embeddings alike)."""
    by_file: dict[Path, list[str]] = {}
    for key in sorted(keys):
        by_file.setdefault(infos[key].file, []).append(key)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = total = 0
    weight_map: dict[str, str] = {}
    names: list[str] = []

    def flush() -> None:
        nonlocal size
        if shards[-1]:
            name = f"part-{len(names) + 1:05d}.safetensors"
            save_file(shards[-1], str(llm_dir / name), metadata={"format": "pt"})
            weight_map.update({k: name for k in shards[-1]})
            names.append(name)
            shards[-1] = {}
            size = 0

    for file, names_in_file in by_file.items():
        with safe_open(str(file), framework="pt") as f:
            for key in names_in_file:
                tensor = f.get_tensor(key)
                check_tensor(file, key, tensor)
                if grow and key in ("model.embed_tokens.weight", "lm_head.weight"):
                    mean = tensor.float().mean(dim=0, keepdim=True).to(tensor.dtype)
                    tensor = torch.cat([tensor, mean.expand(grow, -1)])
                tensor = _cast(tensor, dtype)
                shards[-1][key] = tensor
                size += tensor.numel() * tensor.element_size()
                total += tensor.numel() * tensor.element_size()
                if size >= SHARD_BYTES:
                    flush()
    flush()
    final = {}
    for i, name in enumerate(names, start=1):  # the usual model-0000i-of-0000n names, once n is known
        target = f"model-{i:05d}-of-{len(names):05d}.safetensors"
        (llm_dir / name).rename(llm_dir / target)
        final[name] = target
    index = {"metadata": {"total_size": total},
             "weight_map": {k: final[v] for k, v in sorted(weight_map.items())}}
    (llm_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return len(weight_map)


def _save_parts(path: Path, vision: dict[str, torch.Tensor], projector: dict[str, torch.Tensor],
                dtype: torch.dtype | None) -> None:
    state = {f"vision_encoder.{k}": _cast(v, dtype) for k, v in vision.items()}
    state |= {f"projector.{k}": _cast(v, dtype) for k, v in projector.items()}
    save_file(state, str(path), metadata={"format": "pt"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.model.convert_lamed", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="the downloaded M3D-LaMed folder (config.json, safetensors, tokenizer)")
    parser.add_argument("dst", help="the TumorChain model folder to write (new or empty)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="cast tensors (default: keep)")
    parser.add_argument("--num-heads", type=int, help="vision attention heads (default 12, M3D's ViT)")
    parser.add_argument("--organ-tokens", type=int, default=64, help="tokens per organ in later rounds (default 64)")
    args = parser.parse_args(argv)
    hints = {"num_heads": args.num_heads} if args.num_heads else {"num_heads": 12}
    try:
        report = convert_lamed(args.src, args.dst, dtype_from_name(args.dtype) if args.dtype else None, hints,
                               n_organ_tokens=args.organ_tokens)
    except (ModelError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    n = report.n_tensors
    print(f"wrote {args.dst}: {report.llm_type} LLM ({n['llm']} tensors), vision tower ({n['vision']}), "
          f"projector ({n['projector']}); skipped {n['skipped']} SegVol tensors")
    for note in report.notes:
        print(f"  note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
