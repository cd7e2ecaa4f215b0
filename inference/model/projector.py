"""The projector P and the spatial pooling that makes the global tokens.

P is the paper's two-layer MLP (appendix 10.1): Linear -> ReLU -> Linear, applied to each token,
mapping encoder width Dv to the LLM width K. One P serves global and organ tokens.

M3D-LaMed's projector ("spp", BAAI-DCAI/M3D multimodal_projector/spatial_pooling_projector.py) is
average pooling of the patch grid (pool_patch_grid below, kernel = stride = proj_pooling_size) and
then an MLP whose first layer maps Dv -> K and every further layer is GELU + Linear(K, K), held in
a Sequential named ``projector``: keys projector.0.*, projector.2.*, ... (M3DProjector).
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


class M3DProjector(nn.Module):
    """(..., Dv) -> (..., K), M3D-LaMed's "mlp" projector layers (exact erf GELU, as nn.GELU())."""

    def __init__(self, in_dim: int, out_dim: int, layers: int = 2):
        super().__init__()
        modules: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        for _ in range(1, layers):
            modules += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        self.projector = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(x)


def make_projector(projector_type: str, in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2) -> nn.Module:
    """The projector a TumorChainConfig names (projector_type "mlp_relu" or "m3d_spp")."""
    if projector_type == "m3d_spp":
        return M3DProjector(in_dim, out_dim, layers)
    return Projector(in_dim, hidden_dim, out_dim)


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
