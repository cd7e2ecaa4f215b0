"""The joint loss of paper eq. 8: L = LM cross-entropy on the answer tokens + alpha x the organ
classifier's cross-entropy (normal / abnormal per organ)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from inference.vocabulary import IGNORE_INDEX



@dataclass
class LossParts:
    """loss: what back-propagates. The rest are detached numbers for the logs."""

    loss: torch.Tensor
    lm_loss: torch.Tensor
    cls_loss: torch.Tensor
    cls_correct: torch.Tensor  # classifier targets predicted right in this batch
    cls_count: torch.Tensor  # classifier targets in this batch
    lm_tokens: torch.Tensor  # answer tokens in this batch


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """(B, T) labels -> (B, T-1) bool: positions whose next token is an answer token (the HF shift)."""
    return labels[:, 1:] != IGNORE_INDEX


def lm_loss_from_hidden(hidden: torch.Tensor, labels: torch.Tensor, lm_head: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of the answer tokens. hidden: (B, T, K) last hidden states; the head runs
    only on the answer positions, so a 150k vocabulary never makes (B, T, V) logits."""
    keep = answer_positions(labels)
    n = keep.sum()
    if int(n) == 0:
        # no answer token (never in valid data): a zero that still touches the head's graph
        return hidden.sum() * 0.0, n
    h = hidden[:, :-1][keep]
    logits = lm_head(h).float()
    return F.cross_entropy(logits, labels[:, 1:][keep]), n


def classifier_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, 2) logits, (Q,) targets -> (mean cross-entropy, number correct)."""
    if targets.numel() == 0:
        return logits.float().sum() * 0.0, torch.zeros((), dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits.float(), targets)
    correct = (logits.argmax(dim=-1) == targets).sum()
    return loss, correct


def joint_loss(lm: torch.Tensor, cls: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 8."""
    return lm + alpha * cls
