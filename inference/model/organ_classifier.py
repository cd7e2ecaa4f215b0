"""The auxiliary classifier Cls: normal vs abnormal for one organ (paper eq. 2 and 8).

Defined on the organ tokens *after* the projector, as the paper writes y = Cls(tau_l) with
tau_l = Gamma(tau_g, M) and tau_g = P(tau_v): the Ll projected tokens (1, Ll, K) are averaged and
one Linear(K, 2) gives the logits. Its loss therefore trains P and the encoder too (appendix 10.1:
"a single fully connected layer").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMAL, ABNORMAL = 0, 1


class OrganClassifier(nn.Module):
    """(B, Ll, K) organ tokens -> (B, 2) logits; class 1 = abnormal."""

    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, 2)

    def forward(self, organ_tokens: torch.Tensor) -> torch.Tensor:
        if organ_tokens.ndim != 3:
            raise ValueError(f"organ tokens must be (B, Ll, K), got {tuple(organ_tokens.shape)}")
        return self.fc(organ_tokens.mean(dim=1))


def organ_loss(logits: torch.Tensor, abnormal: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (M, 2) logits against (M,) labels 0 normal / 1 abnormal (the alpha term of eq. 8)."""
    return F.cross_entropy(logits.float(), abnormal.long().to(logits.device))


def abnormal_probability(logits: torch.Tensor) -> torch.Tensor:
    """(M, 2) logits -> (M,) probability of 'abnormal'."""
    return logits.float().softmax(dim=-1)[..., ABNORMAL]
