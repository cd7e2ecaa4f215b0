"""The visual side of one case for IIRLoop: global tokens once, organ tokens per mask on demand."""
from __future__ import annotations

import numpy as np
import torch


class GridMasks:
    """Label maps on the model grid: organs uint8 [D, H, W] (merged ids 1..56) and optional parts
    uint8 [D, H, W] (substructure ids >= 100), as numpy arrays or tensors."""

    def __init__(self, organs, parts=None):
        self.organs = torch.as_tensor(np.asarray(organs) if not torch.is_tensor(organs) else organs)
        self.parts = None if parts is None else torch.as_tensor(np.asarray(parts) if not torch.is_tensor(parts) else parts)
        if self.parts is not None and self.parts.shape != self.organs.shape:
            raise ValueError(f"parts {tuple(self.parts.shape)} and organs {tuple(self.organs.shape)} differ in shape")
        counts = torch.bincount(self.organs.reshape(-1).long(), minlength=256)
        if self.parts is not None:
            counts = counts + torch.bincount(self.parts.reshape(-1).long(), minlength=256)
        counts[0] = 0  # background of either map is no label
        self._counts = counts

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.organs.shape)

    def voxels(self, label_id: int) -> int:
        return int(self._counts[label_id]) if 0 < label_id < 256 else 0

    def mask(self, label_id: int) -> torch.Tensor:
        """bool [D, H, W]."""
        src = self.parts if label_id >= 100 else self.organs
        if src is None:
            return torch.zeros(self.shape, dtype=torch.bool)
        return src == label_id


class ModelCaseFeatures:
    """CaseFeatures over a TumorChainModel and one case's encoding (encoded once, paper eq. 2)."""

    def __init__(self, model, encoding, masks: GridMasks, volume=None, organ_cache: dict | None = None):
        # volume: the ModelInput (crop mode then re-samples the original CT) or the model-grid tensor
        # organ_cache: mask label -> tokens, kept by the caller per case (a crop-mode organ costs an encoder pass)
        self.model = model
        self.encoding = encoding
        self.masks = masks
        self.volume = volume
        self.organ_cache = organ_cache
        self._global: torch.Tensor | None = None

    @torch.inference_mode()
    def global_tokens(self) -> torch.Tensor:
        if self._global is None:
            self._global = self.model.global_tokens(self.encoding)
        return self._global

    def mask_voxels(self, label_id: int) -> int:
        return self.masks.voxels(label_id)

    @torch.inference_mode()
    def organ_tokens(self, mask_label: int) -> torch.Tensor:
        if self.organ_cache is not None and mask_label in self.organ_cache:
            return self.organ_cache[mask_label]
        tokens = self.model.organ_tokens(self.encoding, self.masks.mask(mask_label), volume=self.volume, label=mask_label)
        if self.organ_cache is not None:
            self.organ_cache[mask_label] = tokens
        return tokens

    @torch.inference_mode()
    def abnormal_prob(self, organ_tokens: torch.Tensor) -> float | None:
        if not getattr(self.model, "has_organ_classifier", True):
            return None  # e.g. a converted M3D-LaMed: it has no organ classifier
        logits = self.model.organ_logits(organ_tokens)
        return float(torch.softmax(logits.float(), dim=-1)[0, 1])
