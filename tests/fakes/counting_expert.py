"""A segmentation backend for cache tests: deterministic masks from HU, and a call counter."""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from inference.ct_volume import CTVolume
from inference.segmentation.organ_masks import OrganMasks


class CountingExpert:
    """organs = liver (5) where HU > threshold; parts = segment 101 in the first half of the liver."""

    name = "counting"

    def __init__(self, threshold: int = 0, with_parts: bool = True):
        self.threshold = threshold
        self.with_parts = with_parts
        self.calls = 0

    def cache_identity(self) -> dict[str, Any]:
        return {"backend": self.name, "threshold": self.threshold, "with_parts": self.with_parts}

    def segment(self, ct: CTVolume, progress=None, cancel: threading.Event | None = None) -> OrganMasks:
        self.calls += 1
        organs = np.where(ct.hu > self.threshold, 5, 0).astype(np.uint8)
        parts = None
        if self.with_parts:
            parts = np.zeros_like(organs)
            half = organs.shape[0] // 2
            parts[:half][organs[:half] == 5] = 101
        if progress:
            progress(1.0, "counted")
        return OrganMasks(organs=organs, affine=ct.affine.copy(), backend=self.name, parts=parts,
                          details={"threshold": self.threshold})
