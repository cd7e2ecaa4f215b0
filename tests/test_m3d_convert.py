"""M3D-CLIP key compatibility and the checkpoint converter.

The key list below is written from the published sources, not from our code:
- BAAI-DCAI/M3D, LaMed/src/model/CLIP.py: M3DCLIP.vision_encoder = ViT(in_channels=1,
  img_size=(32, 256, 256), patch_size=(4, 16, 16), hidden_size=768, mlp_dim=3072, num_layers=12,
  num_heads=12, pos_embed="perceptron", classification=True); language_encoder = BertModel;
  mm_vision_proj, mm_language_proj = Linear(768, 768); logit_scale.
- BAAI-DCAI/M3D, LaMed/src/model/multimodal_encoder/vit.py: ViT = patch_embedding
  (PatchEmbeddingBlock), blocks (TransformerBlock(hidden, mlp_dim, heads, dropout, qkv_bias=False)),
  norm (LayerNorm), cls_token (1, 1, hidden) when classification=True. M3D-LaMed wraps the same ViT
  as model.vision_tower.vision_tower (ViT3DTower).
- MONAI 1.3.0 (M3D's requirements.txt pins monai==1.3.0), monai/networks/blocks/:
  patchembedding.py "perceptron": patch_embeddings = Sequential(Rearrange, Linear(patch_dim, hidden)),
  position_embeddings (1, n_patches, hidden); transformerblock.py: mlp, norm1, attn, norm2;
  selfattention.py: qkv = Linear(hidden, 3*hidden, bias=qkv_bias), out_proj = Linear(hidden, hidden);
  mlp.py: linear1 = Linear(hidden, mlp_dim), linear2 = Linear(mlp_dim, hidden).
  MONAI >= 1.4 also builds an unused cross_attn / norm_cross_attn per block.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from inference.errors import ModelError
from inference.model.config import VisionConfig
from inference.model.convert_m3d import convert, main
from inference.model.vision_encoder import VisionEncoder3D


from tiny_models import one_torch_thread


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_torch_thread():
        yield


def m3d_vision_keys(hidden=768, mlp=3072, layers=12, n_patches=2048, patch_dim=1024) -> dict[str, tuple]:
    """{key: shape} of M3D-CLIP's vision encoder, without its "vision_encoder." prefix."""
    keys = {
        "cls_token": (1, 1, hidden),
        "patch_embedding.position_embeddings": (1, n_patches, hidden),
        "patch_embedding.patch_embeddings.1.weight": (hidden, patch_dim),
        "patch_embedding.patch_embeddings.1.bias": (hidden,),
        "norm.weight": (hidden,),
        "norm.bias": (hidden,),
    }
    for i in range(layers):
        keys.update({
            f"blocks.{i}.mlp.linear1.weight": (mlp, hidden), f"blocks.{i}.mlp.linear1.bias": (mlp,),
            f"blocks.{i}.mlp.linear2.weight": (hidden, mlp), f"blocks.{i}.mlp.linear2.bias": (hidden,),
            f"blocks.{i}.norm1.weight": (hidden,), f"blocks.{i}.norm1.bias": (hidden,),
            f"blocks.{i}.attn.out_proj.weight": (hidden, hidden), f"blocks.{i}.attn.out_proj.bias": (hidden,),
            f"blocks.{i}.attn.qkv.weight": (3 * hidden, hidden),
            f"blocks.{i}.norm2.weight": (hidden,), f"blocks.{i}.norm2.bias": (hidden,),
        })
    return keys


TINY = dict(hidden=32, mlp=64, layers=2, n_patches=32, patch_dim=1024)  # img (8, 64, 64), patch (4, 16, 16)
TINY_CONFIG = {"img_size": [8, 64, 64], "patch_size": [4, 16, 16], "num_heads": 4, "hidden_size": 32,
               "model_type": "m3d_clip"}


def m3d_clip_checkpoint(prefix="vision_encoder.", seed=0, extra_unused=False) -> dict[str, torch.Tensor]:
    """A tiny M3D-CLIP-shaped state dict: the encoder under `prefix` plus the other CLIP parts."""
    gen = torch.Generator().manual_seed(seed)
    state = {prefix + k: torch.randn(s, generator=gen) for k, s in m3d_vision_keys(**TINY).items()}
    if extra_unused:  # what a MONAI >= 1.4 ViT would add
        for i in range(TINY["layers"]):
            state[f"{prefix}blocks.{i}.norm_cross_attn.weight"] = torch.ones(32)
            state[f"{prefix}blocks.{i}.cross_attn.to_q.weight"] = torch.zeros(32, 32)
    state.update({
        "language_encoder.embeddings.word_embeddings.weight": torch.randn(30, 32, generator=gen),
        "mm_vision_proj.weight": torch.randn(32, 32, generator=gen),
        "mm_language_proj.weight": torch.randn(32, 32, generator=gen),
        "logit_scale": torch.tensor(2.65),
    })
    return state


def test_our_encoder_state_dict_equals_m3d_clip_keys_and_shapes():
    with torch.device("meta"):
        ours = VisionEncoder3D(VisionConfig()).state_dict()
    expected = m3d_vision_keys()
    assert set(ours) == set(expected)
    assert {k: tuple(v.shape) for k, v in ours.items()} == expected
    tiny = VisionEncoder3D(VisionConfig(img_size=(8, 64, 64), hidden_size=32, mlp_dim=64, num_layers=2, num_heads=4))
    assert {k: tuple(v.shape) for k, v in tiny.state_dict().items()} == m3d_vision_keys(**TINY)


def test_convert_pytorch_bin_folder(tmp_path):
    src = tmp_path / "M3D-CLIP"
    src.mkdir()
    state = m3d_clip_checkpoint()
    torch.save(state, src / "pytorch_model.bin")
    (src / "config.json").write_text(json.dumps(TINY_CONFIG))
    assert main([str(src), str(tmp_path / "enc.safetensors")]) == 0
    with safe_open(str(tmp_path / "enc.safetensors"), framework="pt") as f:
        out = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["tumorchain_vision_config"])
    assert set(out) == set(m3d_vision_keys(**TINY))
    assert all(torch.equal(out[k], state["vision_encoder." + k]) for k in out)
    assert meta["num_heads"] == 4 and meta["img_size"] == [8, 64, 64] and meta["patch_embed"] == "perceptron"
    cfg = VisionConfig(**meta)
    encoder = VisionEncoder3D(cfg)
    encoder.load_state_dict(out, strict=True)


def test_convert_lamed_safetensors_with_extra_monai_keys(tmp_path):
    state = m3d_clip_checkpoint(prefix="model.vision_tower.vision_tower.", extra_unused=True)
    state["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(4, 4)  # the LLM around it
    save_file(state, str(tmp_path / "model.safetensors"))
    report = convert(tmp_path / "model.safetensors", tmp_path / "out" / "enc.safetensors",
                     hints={"num_heads": 4, "img_size": (8, 64, 64)})
    assert report.source_prefix == "model.vision_tower.vision_tower."
    assert len(report.dropped) == 4 and report.n_tensors == len(m3d_vision_keys(**TINY))
    assert report.config.cls_token and not report.config.qkv_bias


def test_converted_weights_load_into_the_model(tmp_path):
    from tiny_models import tiny_config, tiny_qwen25_vl

    from inference.model import TumorChainModel

    src = tmp_path / "clip.safetensors"
    state = m3d_clip_checkpoint(seed=5)
    save_file(state, str(src))
    convert(src, tmp_path / "enc.safetensors", hints={"num_heads": 4, "img_size": (8, 64, 64)})
    llm = tiny_qwen25_vl(tmp_path / "vl")
    config = tiny_config()
    model = TumorChainModel.build(llm, config=config, vision_weights=tmp_path / "enc.safetensors", device="cpu")
    loaded = model.vision_encoder.state_dict()
    assert all(torch.equal(loaded[k], state["vision_encoder." + k]) for k in loaded)

    config.vision = VisionConfig(img_size=(8, 64, 64), hidden_size=32, mlp_dim=64, num_layers=2, num_heads=8)
    with pytest.raises(ModelError, match="num_heads=4.*num_heads=8"):
        TumorChainModel.build(llm, config=config, vision_weights=tmp_path / "enc.safetensors", device="cpu")


def test_pickled_objects_are_refused_without_running_them(tmp_path, capsys):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"vision_encoder.patch_embedding.position_embeddings": Payload()}, tmp_path / "evil.bin")
    assert main([str(tmp_path / "evil.bin"), str(tmp_path / "enc.safetensors")]) == 2
    assert not marker.exists()
    assert "evil.bin" in capsys.readouterr().err


def test_wrong_sizes_are_clear_errors(tmp_path):
    save_file(m3d_clip_checkpoint(), str(tmp_path / "clip.safetensors"))
    with pytest.raises(ModelError, match="32 position embeddings.*pass --img-size"):
        convert(tmp_path / "clip.safetensors", tmp_path / "a.safetensors", hints={"num_heads": 4})
    with pytest.raises(ModelError, match="--num-heads"):
        convert(tmp_path / "clip.safetensors", tmp_path / "a.safetensors", hints={"img_size": (8, 64, 64)})
    save_file({"mm_vision_proj.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelError, match="no 3D vision encoder"):
        convert(tmp_path / "other.safetensors", tmp_path / "a.safetensors")
    with pytest.raises(ModelError, match="not found"):
        convert(tmp_path / "missing", tmp_path / "a.safetensors")
