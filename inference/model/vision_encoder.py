"""The 3D vision encoder E_v: a ViT whose state dict equals M3D-CLIP's vision encoder.

M3D-CLIP (BAAI-DCAI/M3D, LaMed/src/model/CLIP.py) builds MONAI's ViT (monai==1.3.0 blocks, copied
in LaMed/src/model/multimodal_encoder/vit.py) with pos_embed="perceptron", classification=True,
qkv_bias=False. We re-implement the same maths in plain torch so that MONAI is not a dependency;
module names are chosen so that state_dict keys and shapes match exactly:

    cls_token                                   (1, 1, D)
    patch_embedding.position_embeddings         (1, N, D)          N = 8*16*16 = 2048
    patch_embedding.patch_embeddings.1.weight   (D, C*4*16*16)     perceptron ("conv": .weight (D, C, 4, 16, 16))
    patch_embedding.patch_embeddings.1.bias     (D,)
    blocks.{i}.norm1.{weight,bias}              (D,)
    blocks.{i}.attn.qkv.weight                  (3D, D)            no bias
    blocks.{i}.attn.out_proj.{weight,bias}      (D, D), (D,)
    blocks.{i}.norm2.{weight,bias}              (D,)
    blocks.{i}.mlp.linear1.{weight,bias}        (M, D), (M,)
    blocks.{i}.mlp.linear2.{weight,bias}        (D, M), (D,)
    norm.{weight,bias}                          (D,)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import VisionConfig


@dataclass
class CaseEncoding:
    """Encoder output for one volume; computed once per case and cached by the caller.

    tokens: (1, N, Dv) patch tokens after the final norm, class token removed, in raster order
            of the patch grid: index = (z * gh + y) * gw + x.
    grid:   (gd, gh, gw) patch grid, e.g. (8, 16, 16).
    """

    tokens: torch.Tensor
    grid: tuple[int, int, int]
    features: torch.Tensor | None = None  # (1, C, d, h, w) conv stem output, when the encoder has a stem

    def token_grid(self) -> torch.Tensor:
        """tokens as (1, Dv, gd, gh, gw)."""
        gd, gh, gw = self.grid
        return self.tokens.transpose(1, 2).reshape(self.tokens.shape[0], -1, gd, gh, gw)


class _VolumeToPatches(nn.Module):
    """(B, C, D, H, W) -> (B, N, pd*ph*pw*C): MONAI's perceptron rearrange
    "b c (h p1) (w p2) (d p3) -> b (h w d) (p1 p2 p3 c)" applied to the three spatial axes in order."""

    def __init__(self, patch_size: tuple[int, int, int]):
        super().__init__()
        self.patch_size = patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        pd, ph, pw = self.patch_size
        x = x.reshape(b, c, d // pd, pd, h // ph, ph, w // pw, pw)
        x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # b, gd, gh, gw, pd, ph, pw, c
        return x.reshape(b, (d // pd) * (h // ph) * (w // pw), pd * ph * pw * c)


class PatchEmbedding(nn.Module):
    """Patches -> tokens plus learned position embeddings (MONAI PatchEmbeddingBlock)."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.patch_embed_type = cfg.patch_embed
        patch, channels = cfg.embed_patch_size, cfg.embed_channels
        patch_dim = channels * patch[0] * patch[1] * patch[2]
        if cfg.patch_embed == "perceptron":
            self.patch_embeddings = nn.Sequential(_VolumeToPatches(patch), nn.Linear(patch_dim, cfg.hidden_size))
        else:
            self.patch_embeddings = nn.Conv3d(channels, cfg.hidden_size, patch, stride=patch)
        self.position_embeddings = nn.Parameter(torch.zeros(1, cfg.n_patches, cfg.hidden_size))
        nn.init.trunc_normal_(self.position_embeddings, std=0.02, a=-2.0, b=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embeddings(x)
        if self.patch_embed_type == "conv":
            x = x.flatten(2).transpose(1, 2)
        return x + self.position_embeddings


class ConvStem(nn.Module):
    """3x3x3 conv + GELU layers, each with its own stride: local, translation-invariant features for
    the patch embedding. Keys: stem.layers.{2i}.{weight,bias}."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = cfg.in_channels
        for c_out, stride in zip(cfg.stem_channels, cfg.stem_strides):
            layers += [nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1), nn.GELU()]
            c_in = c_out
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SelfAttention(nn.Module):
    """MONAI SABlock: fused qkv laid out as (3, heads, head_dim), softmax(q k^T / sqrt(d)) v."""

    def __init__(self, hidden: int, heads: int, qkv_bias: bool):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, hidden * 3, bias=qkv_bias)
        self.out_proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (b, heads, n, head_dim)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, hidden: int, mlp_dim: int):
        super().__init__()
        self.linear1 = nn.Linear(hidden, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(F.gelu(self.linear1(x)))  # MONAI "GELU" = exact erf GELU


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.mlp = MLP(cfg.hidden_size, cfg.mlp_dim)
        self.norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attn = SelfAttention(cfg.hidden_size, cfg.num_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionEncoder3D(nn.Module):
    """M3D-CLIP-compatible 3D ViT.

    forward(volume (B, C, D, H, W)) -> patch tokens (B, N, Dv), class token removed.
    """

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.config = cfg
        if cfg.stem_channels:
            self.stem = ConvStem(cfg)
        self.patch_embedding = PatchEmbedding(cfg)
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.num_layers)])
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        if cfg.cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.hidden_size))
        self.apply(_init_weights)

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(volume)[0]

    def forward_with_features(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(patch tokens (B, N, Dv), the stem's features (B, C, d, h, w) or None without a stem)."""
        expected = (self.config.in_channels, *self.config.img_size)
        if volume.ndim != 5 or tuple(volume.shape[1:]) != expected:
            raise ValueError(f"vision encoder expects (B, {', '.join(map(str, expected))}), got {tuple(volume.shape)}")
        features = self.stem(volume) if hasattr(self, "stem") else None
        x = self.patch_embedding(volume if features is None else features)
        has_cls = hasattr(self, "cls_token")
        if has_cls:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return (x[:, 1:] if has_cls else x), features

    def encode(self, volume: torch.Tensor) -> CaseEncoding:
        tokens, features = self.forward_with_features(volume)
        return CaseEncoding(tokens=tokens, grid=self.config.grid, features=features)


def _init_weights(m: nn.Module) -> None:
    """MONAI's initialisation (truncated normal 0.02 for Linear, zero bias, unit LayerNorm)."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
