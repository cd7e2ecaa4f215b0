"""Organ masks made ready for the GUI thread, the same way whoever made them (a mask file the
loader read, or a segmentation expert): the whole-volume passes run here, on the worker thread,
so the GUI thread only swaps arrays in."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from inference.ct_volume import CTVolume
from inference.segmentation.organ_masks import OrganMasks
from viewer.label_boxes import LabelBoxes

Boxes = tuple[LabelBoxes, LabelBoxes | None]  # (organ boxes, part boxes)


@dataclass(frozen=True)
class PreparedMasks:
    masks: OrganMasks  # on the CT's grid and in its memory order; content hash computed
    boxes: Boxes
    source: str | None  # the mask file they were read from; None when a backend made them


def prepare_masks(masks: OrganMasks, ct: CTVolume, source: str | None = None,
                  progress: Callable[[float, str], None] | None = None) -> PreparedMasks:
    masks = _same_layout(masks, ct)
    if progress is not None:
        progress(0.0, "indexing organs")
    boxes = (LabelBoxes(masks.organs).precompute(),
             LabelBoxes(masks.parts).precompute() if masks.parts is not None else None)
    masks.content_hash()  # cached on the masks: the GUI thread, the run and the export read it for free
    return PreparedMasks(masks, boxes, source)


def _same_layout(masks: OrganMasks, ct: CTVolume) -> OrganMasks:
    """Label maps in the CT's memory order (loaders give F order: axial slices contiguous), so a
    slice of the labels is as cheap to cut as the same slice of the CT."""
    if not ct.hu.flags.f_contiguous or masks.organs.flags.f_contiguous:
        return masks
    parts = None if masks.parts is None else np.asfortranarray(masks.parts)
    return dataclasses.replace(masks, organs=np.asfortranarray(masks.organs), parts=parts)
