"""Bounding boxes of every label in a label map, found in one pass and reused.

Highlighting an organ, centring on it and building its surface all start from its box, so that
the work afterwards touches only that crop instead of the whole (I, J, K) volume.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


class LabelBoxes:
    """Per-label voxel bounding boxes of one uint8 label map (I, J, K), computed lazily once."""

    def __init__(self, labels: np.ndarray):
        self._labels = labels
        self._boxes: dict[int, tuple[slice, slice, slice]] | None = None
        self._counts: np.ndarray | None = None

    def precompute(self) -> "LabelBoxes":
        """Do the whole-volume passes now (a loader thread calls this, not the GUI thread)."""
        self._compute()
        self.counts()
        return self

    def counts(self) -> np.ndarray:
        """(256,) int64 voxel count per label id."""
        if self._counts is None:
            self._counts = np.bincount(self._labels.ravel(order="K"), minlength=256)  # no copy for F order
        return self._counts

    def _compute(self) -> dict[int, tuple[slice, slice, slice]]:
        if self._boxes is None:
            found = ndimage.find_objects(self._labels)  # index i -> box of label i + 1
            self._boxes = {i + 1: box for i, box in enumerate(found) if box is not None}
        return self._boxes

    def ids(self) -> list[int]:
        """Label ids present (non-zero), ascending."""
        return sorted(self._compute())

    def box(self, label_id: int) -> tuple[slice, slice, slice] | None:
        """Voxel slices (half-open) enclosing the label, or None when absent."""
        return self._compute().get(int(label_id))

    def mask_in_box(self, label_ids: list[int], pad: int = 0) -> tuple[np.ndarray, tuple[int, int, int]] | None:
        """Boolean mask of the union of labels inside their joint box (padded), and the box origin.

        Returns (mask (a, b, c) bool, (i0, j0, k0)) or None when none of the labels is present.
        """
        boxes = [b for b in (self.box(i) for i in label_ids) if b is not None]
        if not boxes:
            return None
        shape = self._labels.shape
        lo = [max(min(b[ax].start for b in boxes) - pad, 0) for ax in range(3)]
        hi = [min(max(b[ax].stop for b in boxes) + pad, shape[ax]) for ax in range(3)]
        crop = self._labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        if len(label_ids) == 1:
            mask = crop == label_ids[0]
        else:
            mask = np.isin(crop, np.asarray(label_ids, dtype=crop.dtype))
        return mask, (lo[0], lo[1], lo[2])
