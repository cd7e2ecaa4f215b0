"""The 3D vision encoder, global pooling and the projector: shapes, patch order, sizes."""
from __future__ import annotations

import pytest
import torch

from inference.model.config import TumorChainConfig, VisionConfig
from inference.model.projector import Projector, pool_patch_grid
from inference.model.vision_encoder import VisionEncoder3D

from tiny_models import one_torch_thread

TINY_FULL_INPUT = VisionConfig(hidden_size=32, mlp_dim=64, num_layers=2, num_heads=4)  # 1x32x256x256, patch 4x16x16


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_torch_thread():
        yield


def test_encoder_output_shape_on_the_full_size_input():
    torch.manual_seed(0)
    enc = VisionEncoder3D(TINY_FULL_INPUT).eval()
    with torch.no_grad():
        out = enc.encode(torch.rand(1, 1, 32, 256, 256))
    assert out.grid == (8, 16, 16)
    assert tuple(out.tokens.shape) == (1, 2048, 32)  # class token dropped
    assert tuple(out.token_grid().shape) == (1, 32, 8, 16, 16)
    assert torch.isfinite(out.tokens).all()


def test_patch_tokens_are_in_raster_order_of_the_grid():
    """Changing the voxels of patch (z=1, y=2, x=3) changes exactly token (1*16 + 2)*16 + 3 of
    the patch embedding: the (z, y, x) raster order Gamma relies on."""
    torch.manual_seed(0)
    enc = VisionEncoder3D(TINY_FULL_INPUT).eval()
    x = torch.rand(1, 1, 32, 256, 256)
    y = x.clone()
    y[0, 0, 4:8, 32:48, 48:64] += 1.0  # patch z=1 (slices 4..7), y=2 (rows 32..47), x=3 (cols 48..63)
    with torch.no_grad():
        diff = (enc.patch_embedding(y) - enc.patch_embedding(x)).abs().sum(dim=-1)[0]
    assert torch.nonzero(diff > 1e-6).flatten().tolist() == [(1 * 16 + 2) * 16 + 3]


def test_conv_patch_embedding_gives_the_same_layout():
    torch.manual_seed(0)
    cfg = VisionConfig(img_size=(8, 64, 64), hidden_size=32, mlp_dim=64, num_layers=1, num_heads=4, patch_embed="conv")
    enc = VisionEncoder3D(cfg).eval()
    x = torch.rand(1, 1, 8, 64, 64)
    y = x.clone()
    y[0, 0, 4:8, 16:32, 0:16] += 1.0  # patch (1, 1, 0) of grid (2, 4, 4)
    with torch.no_grad():
        diff = (enc.patch_embedding(y) - enc.patch_embedding(x)).abs().sum(dim=-1)[0]
    assert torch.nonzero(diff > 1e-6).flatten().tolist() == [16 + 4 + 0]
    assert "patch_embedding.patch_embeddings.weight" in enc.state_dict()


def test_wrong_input_shape_is_a_clear_error():
    enc = VisionEncoder3D(VisionConfig(img_size=(8, 64, 64), hidden_size=32, mlp_dim=64, num_layers=1, num_heads=4))
    with pytest.raises(ValueError, match=r"expects \(B, 1, 8, 64, 64\)"):
        enc(torch.zeros(1, 1, 8, 64, 32))


def test_config_rejects_sizes_that_do_not_tile():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        VisionConfig(img_size=(30, 256, 256))
    with pytest.raises(ValueError, match="pool_size"):
        TumorChainConfig(vision=VisionConfig(img_size=(4, 64, 64)), pool_size=(2, 2, 2))  # grid depth 1


def test_global_pooling_averages_2x2x2_blocks_in_raster_order():
    grid = (2, 4, 4)
    tokens = torch.arange(32, dtype=torch.float32).reshape(1, 32, 1).repeat(1, 1, 3)  # token value = its index
    pooled = pool_patch_grid(tokens, grid, (2, 2, 2))
    assert tuple(pooled.shape) == (1, 4, 3)
    # pooled token (0, 0, 1) averages patches z in {0,1}, y in {0,1}, x in {2,3}
    members = [z * 16 + y * 4 + x for z in (0, 1) for y in (0, 1) for x in (2, 3)]
    assert pooled[0, 1, 0].item() == pytest.approx(sum(members) / 8)
    with pytest.raises(ValueError, match="do not fill"):
        pool_patch_grid(tokens[:, :31], grid, (2, 2, 2))


def test_m3d_sizes_give_256_global_tokens_and_the_projector_maps_to_the_llm_width():
    cfg = TumorChainConfig(llm_hidden_size=2048)
    assert cfg.vision.grid == (8, 16, 16)
    assert cfg.pooled_grid == (4, 8, 8) and cfg.n_global_tokens == 256
    proj = Projector(32, 48, 40)
    out = proj(torch.rand(1, 256, 32))
    assert tuple(out.shape) == (1, 256, 40)
    assert [type(m).__name__ for m in proj.children()] == ["Linear", "Linear"]  # ReLU between, in forward


def test_m3d_sized_encoder_parameter_count():
    """ViT-B of M3D-CLIP: 87,389,184 parameters (MONAI 1.3.0 ViT with the same arguments has the same)."""
    with torch.device("meta"):
        enc = VisionEncoder3D(VisionConfig())
    assert sum(p.numel() for p in enc.parameters()) == 87_389_184
    with torch.device("meta"):
        tiny = VisionEncoder3D(TINY_FULL_INPUT)
    # positions 2048*32 + patch linear 1024*32+32 + cls 32 + 2 blocks * 8448 + final norm 64
    assert sum(p.numel() for p in tiny.parameters()) == 65_536 + 32_800 + 32 + 2 * 8_448 + 64


STEM = VisionConfig(img_size=(8, 64, 64), patch_size=(4, 16, 16), hidden_size=32, mlp_dim=64, num_layers=1, num_heads=4,
                    stem_channels=(4, 8), stem_strides=((1, 2, 2), (2, 2, 2)))


def test_conv_stem_keeps_the_patch_grid_and_adds_only_stem_keys():
    """A stem with total stride (2, 4, 4) leaves each patch 2x4x4 cells of 8 channels: same token grid
    and order, patch embedding sized from the stem's output; without a stem no stem.* key exists
    (so M3D's state dict still matches)."""
    torch.manual_seed(0)
    assert STEM.stem_stride == (2, 4, 4) and STEM.embed_patch_size == (2, 4, 4) and STEM.embed_channels == 8
    enc = VisionEncoder3D(STEM).eval()
    keys = enc.state_dict()
    assert tuple(keys["patch_embedding.patch_embeddings.1.weight"].shape) == (32, 8 * 2 * 4 * 4)
    assert [k for k in keys if k.startswith("stem.")] == ["stem.layers.0.weight", "stem.layers.0.bias",
                                                           "stem.layers.2.weight", "stem.layers.2.bias"]
    assert not any(k.startswith("stem.") for k in VisionEncoder3D(TINY_FULL_INPUT).state_dict())
    x = torch.rand(1, 1, 8, 64, 64)
    with torch.no_grad():
        out = enc.encode(x)
    assert out.grid == (2, 4, 4) and tuple(out.tokens.shape) == (1, 32, 32)
    # a change deep inside patch (1, 2, 3) moves that patch's embedding most (the 3x3x3 kernels
    # reach at most one stem cell into the neighbours)
    y = x.clone()
    y[0, 0, 5:7, 36:44, 52:60] += 1.0
    with torch.no_grad():
        diff = (enc.patch_embedding(enc.stem(y)) - enc.patch_embedding(enc.stem(x))).abs().sum(dim=-1)[0]
    assert int(diff.argmax()) == (1 * 4 + 2) * 4 + 3


def test_conv_stem_config_round_trips_and_rejects_bad_strides():
    cfg = TumorChainConfig(vision=STEM, n_organ_tokens=4)
    again = TumorChainConfig.from_dict(__import__("json").loads(__import__("json").dumps(cfg.to_dict())))
    assert again.vision == STEM
    with pytest.raises(ValueError, match="one .d, h, w. stride per stem layer"):
        VisionConfig(stem_channels=(4, 8), stem_strides=((1, 2, 2),))
    with pytest.raises(ValueError, match="not a multiple of the stem's total stride"):
        VisionConfig(patch_size=(4, 16, 16), stem_channels=(4,), stem_strides=((3, 1, 1),))
