"""The one path by which visual tokens enter the language model, for inference and training alike.

As in transformers' Llava: embed the ids, then scatter the visual embeddings into the positions of
their placeholder tokens, in sequence order (row-major over batch and position). The IIR generator
calls it with batch 1 (one round's new segment at a time); the trainer with a padded batch of B
sequences. Gamma's organ inputs (modes tokens | crop | masked) are built here too, batched over M
(case, organ) pairs, from inputs both sides prepare with the same code (organ_tokens.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inference.preprocess import ModelInput, resample_box, resample_labels

from .organ_tokens import crop_box, pool_stem_features


def scatter_visual(embeds: torch.Tensor, input_ids: torch.Tensor, placeholder_id: int,
                   features: torch.Tensor | None, what: str) -> torch.Tensor:
    """Put ``features`` (R, L, K) in place of the placeholder embeddings of ``embeds`` (B, T, K):
    run r fills the r-th group of L placeholders in sequence order. Out of place, differentiable
    with respect to ``features`` (training back-propagates into the projector and encoder)."""
    slots = input_ids == placeholder_id
    n = int(slots.sum())
    have = 0 if features is None else int(features.shape[0] * features.shape[1])
    if n != have:
        length = "?" if features is None else int(features.shape[1])
        raise ValueError(f"the sequence has {n} {what} placeholders but {have} {what} embeddings were given "
                         f"({0 if features is None else features.shape[0]} run(s) of {length})")
    if n == 0:
        return embeds
    source = features.reshape(-1, features.shape[-1]).to(embeds.dtype)
    return embeds.masked_scatter(slots[..., None].expand_as(embeds), source)


def sequential_positions(start: int, length: int, batch: int, mrope: bool, device) -> torch.Tensor:
    """Positions start..start+length-1 for every row: (B, T), or (3, B, T) with all three equal for
    M-RoPE LLMs (equal to 1D RoPE; see modeling_tumorchain's docstring)."""
    pos = torch.arange(start, start + length, device=device)[None].expand(batch, length)
    return pos[None].expand(3, batch, length).clone() if mrope else pos.clone()


def gamma_from_weights(tokens: torch.Tensor, weights: torch.Tensor, organ_case: torch.Tensor) -> torch.Tensor:
    """Gamma, modes tokens and crop: (C, N, Dv) encodings, (M, Ll, N) patch weights (organ_tokens
    select_patches) and the encoding row of each organ (M,) -> (M, Ll, Dv) projector inputs."""
    return torch.bmm(weights.to(device=tokens.device, dtype=tokens.dtype), tokens[organ_case.to(tokens.device)])


def gamma_masked(organ_pool, features: torch.Tensor, organ_label: torch.Tensor, rows: torch.Tensor,
                 cols: torch.Tensor, vals: torch.Tensor, n_organ_tokens: int) -> torch.Tensor:
    """Gamma, mode masked: (C, Cs, d, h, w) stem features -> (M, Ll, Dv) projector inputs.
    ``cols`` index the cases' stacked stem voxels (case row * V + voxel), ``rows`` the pooled rows
    m * (Ll + 1) + t (t = Ll is the whole organ, organ_tokens.masked_weights)."""
    ll = n_organ_tokens + 1
    n_organs = organ_label.shape[0]
    flat = features.flatten(2).transpose(1, 2).reshape(-1, features.shape[1])  # (C * V, Cs)
    dev = flat.device
    pooled = pool_stem_features(flat, rows.to(dev), cols.to(dev), vals.to(dev), n_organs * ll)
    return organ_pool(pooled.reshape(n_organs, ll, -1), organ_label.to(dev))


@dataclass(frozen=True)
class CropInput:
    """Crop mode's input for one organ: its box re-sampled onto a full model input, and the mask on it."""

    volume: torch.Tensor  # (1, 1, D, H, W)
    mask: torch.Tensor  # (D, H, W) bool
    box: tuple[tuple[float, float, float], tuple[float, float, float]]


def crop_input(mask: torch.Tensor, volume: torch.Tensor | ModelInput, img_size: tuple[int, int, int],
               margin: float, min_extent: tuple[int, int, int]) -> CropInput:
    """The organ's box (model-voxel edge coordinates, with margin) re-sampled onto the model grid:
    from the native CT when given a ModelInput that keeps it, else from the model-grid volume."""
    lo, hi = crop_box(mask, margin, min_extent)
    if isinstance(volume, ModelInput) and volume.keeps_source:
        crop = volume.crop(lo, hi)
    else:
        vol = volume.volume if isinstance(volume, ModelInput) else volume
        crop = resample_box(vol.reshape(vol.shape[-3:]), lo, hi, img_size)[None, None]
    crop_mask = torch.from_numpy(resample_labels(np.asarray(mask, dtype=np.uint8), lo, hi, img_size) > 0)
    return CropInput(crop, crop_mask, (lo, hi))
