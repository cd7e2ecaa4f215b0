"""Masked Gamma's last step before the projector: pooled stem statistics -> the encoder's width.

The (mean, variance) of the stem's features over an organ's voxels mean different things for
different organs (the stomach's air and contents are normal heterogeneity, the same variance in the
liver is a lesion), and the projector sees one token at a time. So each token gets the organ-wide
statistics next to its own, and the organ's identity is added as a learned embedding of its label
id (zero at start: a new model's tokens are the plain linear map). Measured on the demo cohort
(README, demo model v0.2): per-token statistics with the identity plateaued at held-out organ AUC
0.72; with the organ-wide statistics the shipped model reaches 0.92.
"""
from __future__ import annotations

import torch
from torch import nn

N_LABEL_IDS = 256  # merged label ids are uint8: organs 1..56, parts >= 100


class MaskedOrganPool(nn.Module):
    """(..., Ll + 1, 2C) pooled stem statistics (Ll tokens, then the whole organ; masked_weights) and
    (...,) label ids -> (..., Ll, Dv): each token is its own statistics next to the organ's."""

    def __init__(self, stem_channels: int, width: int):
        super().__init__()
        self.linear = nn.Linear(4 * stem_channels, width)
        self.organ = nn.Embedding(N_LABEL_IDS, width)
        nn.init.zeros_(self.organ.weight)

    def forward(self, pooled: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        tokens, organ = pooled[..., :-1, :], pooled[..., -1:, :]
        x = torch.cat([tokens, organ.expand_as(tokens)], dim=-1)
        return self.linear(x) + self.organ(label.to(pooled.device).long())[..., None, :]
