"""The projector P and the spatial pooling that makes the global tokens.

P is the paper's two-layer MLP (appendix 10.1): Linear -> ReLU -> Linear, applied to each token,
mapping encoder width Dv to the LLM width K. One P serves global and organ tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Projector(nn.Module):
    """(..., Dv) -> (..., K)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.linear1 = nn.Linear(in_dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(F.relu(self.linear1(x)))


def pool_patch_grid(tokens: torch.Tensor, grid: tuple[int, int, int], pool: tuple[int, int, int]) -> torch.Tensor:
    """Average-pool patch tokens over the patch grid (M3D's "spatial" pooling projector).

    tokens: (B, N, D) in raster order of grid (gd, gh, gw); returns (B, N', D) in raster order of
    the pooled grid (gd/pd, gh/ph, gw/pw): (1, 2048, 768) -> (1, 256, 768) for M3D sizes.
    """
    b, n, d = tokens.shape
    gd, gh, gw = grid
    if n != gd * gh * gw:
        raise ValueError(f"{n} tokens do not fill the patch grid {grid}")
    x = tokens.transpose(1, 2).reshape(b, d, gd, gh, gw)
    x = F.avg_pool3d(x, kernel_size=pool, stride=pool)
    return x.flatten(2).transpose(1, 2)
