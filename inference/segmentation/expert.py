"""The segmentation expert: one interface, several backends.

Every backend turns a CTVolume into OrganMasks on the CT's own grid:

- ``totalsegmentator``: the real TotalSegmentator, run in its own environment as a subprocess
  (totalseg_backend.py), cached per case by content hash;
- ``precomputed``: a label NIfTI computed earlier (TotalSegmentator multilabel or merged scheme);
- ``synthetic``: the synthetic cohort's own organs/parts files next to the case's ct.nii.gz.

Long work reports ``progress(fraction 0..1, message)`` and stops when ``cancel`` is set, raising
inference.errors.Cancelled (the GUI runs it on a worker thread, like 3D Slicer's module logic).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from inference.ct_volume import CTVolume
from inference.errors import raise_if_cancelled as check_cancel
from inference.segmentation.organ_masks import OrganMasks

ProgressFn = Callable[[float, str], None]

BACKENDS = ("totalsegmentator", "precomputed", "synthetic")
_ALIASES = {"totalseg": "totalsegmentator", "ts": "totalsegmentator", "file": "precomputed",
            "cohort": "synthetic"}


@runtime_checkable
class SegmentationExpert(Protocol):
    """What the app, the CLI and training call; backends differ only in where masks come from."""

    name: str

    def cache_identity(self) -> dict[str, Any]:
        """Backend name and every option that changes the result (the cache key uses it)."""
        ...

    def segment(self, ct: CTVolume, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> OrganMasks:
        """Organ masks for ``ct`` on its own grid (shape ct.shape, affine ct.affine)."""
        ...


def notify_progress(progress: ProgressFn | None, fraction: float, message: str) -> None:
    """Call ``progress`` if given, with fraction clamped to [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def raise_if_cancelled(cancel: threading.Event | None, what: str = "segmentation") -> None:
    check_cancel(cancel, what)


def make_expert(name: str, **options: Any) -> SegmentationExpert:
    """Build a backend by name.

    Common options: ``cache`` (bool; default True for totalsegmentator, whose runs take minutes,
    False for file backends that are as cheap as the cache) and ``cache_dir``.
    totalsegmentator: fast, roi_subset, liver_segments, device, python, weights_dir, timeout_s.
    precomputed: path (required), scheme ("auto" | "totalseg" | "merged"), parts_path.
    synthetic: case_dir (default: the folder of the CT's source file).
    """
    key = _ALIASES.get(name.lower(), name.lower())
    cache = options.pop("cache", None)
    cache_dir = options.pop("cache_dir", None)
    expert: SegmentationExpert
    if key == "totalsegmentator":
        from inference.segmentation.totalseg_backend import TotalSegmentatorExpert
        expert = TotalSegmentatorExpert(**options)
        cache = True if cache is None else cache
    elif key == "precomputed":
        from inference.segmentation.precomputed import PrecomputedExpert
        expert = PrecomputedExpert(**options)
    elif key == "synthetic":
        from inference.segmentation.synthetic import SyntheticCohortExpert
        expert = SyntheticCohortExpert(**options)
    else:
        raise ValueError(f"unknown segmentation backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if cache:
        from inference.segmentation.cache import CachedExpert, SegmentationCache
        expert = CachedExpert(expert, SegmentationCache(Path(cache_dir) if cache_dir else None))
    return expert
