"""The segmentation expert: CTVolume -> OrganMasks on the CT grid.

Backends: ``totalsegmentator`` (real TotalSegmentator in its own env, cached per case),
``precomputed`` (a label NIfTI), ``synthetic`` (the cohort's own masks). Build one with
``make_expert(name, **options)``; each has ``segment(ct, progress=None, cancel=None)``.
"""
from __future__ import annotations

from inference.segmentation.expert import BACKENDS, ProgressFn, SegmentationExpert, make_expert
from inference.segmentation.organ_masks import OrganMasks

__all__ = ["BACKENDS", "OrganMasks", "ProgressFn", "SegmentationExpert", "make_expert"]
