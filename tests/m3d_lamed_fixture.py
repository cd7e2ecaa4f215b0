"""A tiny M3D-LaMed-shaped folder, written from M3D's published code (BAAI-DCAI/M3D), not from ours.

What the published folders hold, and where it is defined:
- config.json: LamedPhi3Config / LamedLlamaConfig (LaMed/src/model/language_model/lamed_phi3.py,
  lamed_llama.py): the Phi-3 / Llama fields plus the ones train.py's ModelArguments and
  lamed_arch.initialize_vision_modules write: image_channel, image_size, patch_size, vision_tower
  "vit3d", vision_select_layer -1, vision_select_feature "patch", mm_projector_type "spp",
  proj_layer_type "mlp", proj_layer_num 2, proj_pooling_type "spatial", proj_pooling_size 2,
  mm_hidden_size (the ViT width), segmentation_module "segvol", and an auto_map for remote code.
- tensors: LamedPhi3ForCausalLM = model (LamedPhi3Model: Phi3Model + vision_tower + mm_projector +
  seg_module + seg_projector) + lm_head, so
    model.vision_tower.vision_tower.<MONAI 1.3 ViT keys>   (multimodal_encoder/vit.py, ViT3DTower)
    model.mm_projector.projector.{0,2}.{weight,bias}       (spatial_pooling_projector.py: Linear, GELU, Linear)
    model.seg_module.*  model.seg_projector.{0,2}.*         (SegVol; lamed_arch.LamedMetaModel)
    model.embed_tokens / model.layers.* / model.norm / lm_head   (transformers Phi3ForCausalLM)
- tokenizer: the base LLM's plus "<im_patch>", "<bx_start>", "<bx_end>" (special) and "[SEG]"
  (train.py), embeddings resized to len(tokenizer).
Sizes here are tiny: ViT 32 wide, 2 blocks, 4 heads; image 16x64x64 in 4x16x16 patches (grid
4x4x4, 8 tokens after 2x2x2 pooling); Phi-3 / Llama 48 wide, 2 layers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

IMAGE_SIZE = (16, 64, 64)
PATCH_SIZE = (4, 16, 16)
VIT_HIDDEN, VIT_MLP, VIT_LAYERS, VIT_HEADS = 32, 64, 2, 4
LLM_HIDDEN = 48


@dataclass(frozen=True)
class LamedSizes:
    """Sizes of a written folder; the defaults are the tests' tiny ones. PHI3_4B is the published one."""

    image_size: tuple[int, int, int] = IMAGE_SIZE
    vit_hidden: int = VIT_HIDDEN
    vit_mlp: int = VIT_MLP
    vit_layers: int = VIT_LAYERS
    llm_hidden: int = LLM_HIDDEN
    llm_intermediate: int = 96
    llm_layers: int = 2
    llm_heads: int = 4
    vocab_pad: int = 0  # extra embedding rows beyond the tokenizer (Phi-3's 32064 vs its tokenizer)
    dtype: torch.dtype = torch.float32


PHI3_4B = LamedSizes(image_size=(32, 256, 256), vit_hidden=768, vit_mlp=3072, vit_layers=12, llm_hidden=3072,
                     llm_intermediate=8192, llm_layers=32, llm_heads=32, vocab_pad=32064, dtype=torch.bfloat16)
WORDS = ("the liver spleen pancreas kidney stomach is are normal abnormal lesion a an of in with there any yes no "
         "question requires greater attention to what this image please describe findings mass enlarged ? . ,").split()
M3D_SPECIALS = ("<im_patch>", "<bx_start>", "<bx_end>")


def lamed_tokenizer(folder: Path, bos: bool = True):
    """A word-level tokenizer with M3D's added tokens; with ``bos`` it prepends <s> like Llama's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if bos:
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tok.add_special_tokens({"additional_special_tokens": list(M3D_SPECIALS)})
    tok.add_tokens("[SEG]")
    tok.pad_token = tok.unk_token  # train.py: pad = unk when there is no pad token
    tok.save_pretrained(str(folder))
    return tok


def sentencepiece_tokenizer(folder: Path):
    """The layout M3D's slow tokenizer (use_fast=False) saves: tokenizer.model (a sentencepiece BPE
    model trained here on WORDS), tokenizer_config.json with its added tokens, added_tokens.json,
    special_tokens_map.json; no tokenizer.json."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=120,
                                   model_type="bpe", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                   character_coverage=1.0, minloglevel=2)
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    added = {tok: 120 + i for i, tok in enumerate([*M3D_SPECIALS, "[SEG]"])}
    entry = lambda t: {"content": t, "special": t != "[SEG]", "lstrip": False, "rstrip": False,  # noqa: E731
                       "normalized": t == "[SEG]", "single_word": False}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": True,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>", "model_max_length": 512,
        "added_tokens_decoder": {str(i): entry(t) for t, i in added.items()},
        "additional_special_tokens": list(M3D_SPECIALS)}))
    (folder / "added_tokens.json").write_text(json.dumps(added))
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "additional_special_tokens": list(M3D_SPECIALS), "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "pad_token": "<unk>"}))
    return AutoTokenizer.from_pretrained(str(folder))


def vit_state(seed: int = 1, sizes: LamedSizes = LamedSizes()) -> dict[str, torch.Tensor]:
    """MONAI 1.3 ViT(pos_embed="perceptron", classification=True, qkv_bias=False) keys with random values."""
    g = torch.Generator().manual_seed(seed)
    n = 1
    for i, p in zip(sizes.image_size, PATCH_SIZE):
        n *= i // p
    patch_dim = PATCH_SIZE[0] * PATCH_SIZE[1] * PATCH_SIZE[2]
    h, m = sizes.vit_hidden, sizes.vit_mlp
    shapes = {"cls_token": (1, 1, h), "patch_embedding.position_embeddings": (1, n, h),
              "patch_embedding.patch_embeddings.1.weight": (h, patch_dim), "patch_embedding.patch_embeddings.1.bias": (h,),
              "norm.weight": (h,), "norm.bias": (h,)}
    for b in range(sizes.vit_layers):
        shapes |= {f"blocks.{b}.mlp.linear1.weight": (m, h), f"blocks.{b}.mlp.linear1.bias": (m,),
                   f"blocks.{b}.mlp.linear2.weight": (h, m), f"blocks.{b}.mlp.linear2.bias": (h,),
                   f"blocks.{b}.norm1.weight": (h,), f"blocks.{b}.norm1.bias": (h,),
                   f"blocks.{b}.attn.qkv.weight": (3 * h, h),
                   f"blocks.{b}.attn.out_proj.weight": (h, h), f"blocks.{b}.attn.out_proj.bias": (h,),
                   f"blocks.{b}.norm2.weight": (h,), f"blocks.{b}.norm2.bias": (h,)}
    out = {}
    for key, shape in shapes.items():
        scale = 0.1 if len(shape) > 1 else 0.05
        base = 1.0 if key.endswith(("norm1.weight", "norm2.weight", "norm.weight")) else 0.0
        out[key] = (base + scale * torch.randn(shape, generator=g)).to(sizes.dtype)
    return out


def llm_config(kind: str, vocab: int, sizes: LamedSizes = LamedSizes()) -> dict:
    common = dict(vocab_size=vocab, hidden_size=sizes.llm_hidden, intermediate_size=sizes.llm_intermediate,
                  num_hidden_layers=sizes.llm_layers, num_attention_heads=sizes.llm_heads,
                  num_key_value_heads=sizes.llm_heads, max_position_embeddings=4096, rms_norm_eps=1e-5,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    if kind == "phi3":
        return common | {"rope_theta": 10000.0}
    return common


def write_lamed_folder(folder: Path, kind: str = "phi3", bos: bool = True, shards: int = 2, seed: int = 0,
                       sizes: LamedSizes = LamedSizes(), spm: bool = False) -> Path:
    """An M3D-LaMed-Phi-3 (kind "phi3") or -Llama-2 ("llama") folder with sharded safetensors and an
    index, as save_pretrained of LamedPhi3ForCausalLM writes it."""
    from transformers import LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tok = sentencepiece_tokenizer(folder) if spm else lamed_tokenizer(folder, bos=bos)
    vocab = max(len(tok), sizes.vocab_pad)
    torch.manual_seed(seed)
    cfg_cls, model_cls = (Phi3Config, Phi3ForCausalLM) if kind == "phi3" else (LlamaConfig, LlamaForCausalLM)
    with torch.device("meta"):  # shapes only; random values below without the slow initialisation
        llm = model_cls(cfg_cls(**llm_config(kind, vocab, sizes)))
    g = torch.Generator().manual_seed(seed)
    state = {k: _random(v.shape, g, k, sizes.dtype) for k, v in llm.state_dict().items()}
    state |= {f"model.vision_tower.vision_tower.{k}": v for k, v in vit_state(seed + 1, sizes).items()}
    g = torch.Generator().manual_seed(seed + 2)
    lh, vh = sizes.llm_hidden, sizes.vit_hidden
    state |= {"model.mm_projector.projector.0.weight": _random((lh, vh), g, "w", sizes.dtype, 0.1),
              "model.mm_projector.projector.0.bias": _random((lh,), g, "b", sizes.dtype, 0.1),
              "model.mm_projector.projector.2.weight": _random((lh, lh), g, "w", sizes.dtype, 0.1),
              "model.mm_projector.projector.2.bias": _random((lh,), g, "b", sizes.dtype, 0.1)}
    # SegVol: its own ViT (another patch_embedding.position_embeddings) and the seg projector
    state |= {"model.seg_module.image_encoder.patch_embedding.position_embeddings": torch.zeros(1, 8, 16),
              "model.seg_module.image_encoder.norm.weight": torch.ones(16),
              "model.seg_module.mask_decoder.iou_token.weight": torch.zeros(1, 16),
              "model.seg_projector.0.weight": torch.zeros(lh, lh),
              "model.seg_projector.2.weight": torch.zeros(vh, lh)}
    write_shards(folder, state, shards)
    model_type = "lamed_phi3" if kind == "phi3" else "lamed_llama"
    arch = "LamedPhi3ForCausalLM" if kind == "phi3" else "LamedLlamaForCausalLM"
    config = llm_config(kind, vocab, sizes) | {
        "model_type": model_type, "architectures": [arch],
        "auto_map": {"AutoConfig": f"configuration_{model_type}.{arch[:-11]}Config",
                     "AutoModelForCausalLM": f"modeling_{model_type}.{arch}"},
        "image_channel": 1, "image_size": list(sizes.image_size), "patch_size": list(PATCH_SIZE),
        "vision_tower": "vit3d", "vision_select_layer": -1, "vision_select_feature": "patch",
        "mm_projector_type": "spp", "proj_layer_type": "mlp", "proj_layer_num": 2, "proj_pooling_type": "spatial",
        "proj_pooling_size": 2, "mm_hidden_size": vh, "segmentation_module": "segvol",
        "seg_token_id": tok.convert_tokens_to_ids("[SEG]"), "torch_dtype": str(sizes.dtype).replace("torch.", "")}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _random(shape, g: torch.Generator, key: str, dtype: torch.dtype, scale: float = 0.02) -> torch.Tensor:
    """Random values for a weight: ones for norm weights, small normal values elsewhere."""
    if "norm" in key and key.endswith("weight"):
        return torch.ones(shape, dtype=dtype)
    return (scale * torch.randn(shape, generator=g)).to(dtype)


def write_shards(folder: Path, state: dict[str, torch.Tensor], shards: int) -> None:
    for old in folder.glob("model*.safetensors*"):
        old.unlink()
    keys = sorted(state)
    size = -(-len(keys) // shards)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k].contiguous() for k in keys[i * size:(i + 1) * size]}
        save_file(part, str(folder / name), metadata={"format": "pt"})
        weight_map |= {k: name for k in part}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def read_state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for file in sorted(folder.glob("model-*.safetensors")):
        out |= load_file(str(file))
    return out
