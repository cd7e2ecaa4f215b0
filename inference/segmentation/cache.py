"""Per-case cache of segmentation results, keyed by CT content hash + backend + options.

A second review of the same case costs a file read instead of a TotalSegmentator run.
Entries are compressed ``.npz`` files holding only plain arrays (uint8 labels, float64 affine,
a JSON string); they are read with ``np.load(allow_pickle=False)``, so a tampered or corrupt
entry can fail to load but can never run code. A bad entry is logged, deleted and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from inference.atomic_write import atomic_write
from inference.ct_volume import CTVolume
from inference.errors import StorageError
from inference.segmentation.expert import ProgressFn, SegmentationExpert, notify_progress
from inference.segmentation.organ_masks import OrganMasks

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
ENV_CACHE_DIR = "TUMORCHAIN_SEGMENTATION_CACHE"


def default_cache_dir() -> Path:
    """$TUMORCHAIN_SEGMENTATION_CACHE, else $XDG_CACHE_HOME/tumorchain/segmentation (~/.cache/...)."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tumorchain" / "segmentation"


class SegmentationCache:
    """Folder of ``<key[:2]>/<key>.npz`` entries."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    @staticmethod
    def key(ct: CTVolume, identity: dict[str, Any]) -> str:
        """sha256 over the CT's content hash and the backend identity (name + options)."""
        text = json.dumps({"format": CACHE_FORMAT, "ct": ct.content_hash(), "expert": identity},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, ct: CTVolume, identity: dict[str, Any]) -> OrganMasks | None:
        """The cached masks, or None when absent or unusable (then the bad file is removed)."""
        path = self.path_for(self.key(ct, identity))
        if not path.is_file():
            return None
        try:
            return self._read(path, ct)
        except Exception as exc:  # noqa: BLE001 - an entry is never trusted: any failure means rebuild
            log.warning("ignoring unusable segmentation cache file %s (%s); it will be rebuilt", path, exc)
            path.unlink(missing_ok=True)
            return None

    def store(self, ct: CTVolume, identity: dict[str, Any], masks: OrganMasks) -> Path:
        """Write atomically (inference/atomic_write) so a crash never leaves a half-written entry."""
        path = self.path_for(self.key(ct, identity))
        meta = json.dumps({"backend": masks.backend, "details": masks.details, "identity": identity},
                          default=str)
        arrays: dict[str, np.ndarray] = {
            "organs": masks.organs, "affine": np.asarray(masks.affine, dtype=np.float64),
            "meta": np.array(meta),  # unicode array: no object dtype, no pickle
        }
        if masks.parts is not None:
            arrays["parts"] = masks.parts
        return atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays), what="segmentation cache entry")

    @staticmethod
    def _read(path: Path, ct: CTVolume) -> OrganMasks:
        with np.load(path, allow_pickle=False) as data:
            organs = data["organs"]
            affine = data["affine"]
            meta = json.loads(str(data["meta"]))
            parts = data["parts"] if "parts" in data.files else None
        if organs.dtype != np.uint8 or (parts is not None and parts.dtype != np.uint8):
            raise ValueError("label arrays are not uint8")
        if organs.shape != ct.shape or affine.shape != (4, 4) or not np.allclose(affine, ct.affine, atol=1e-4):
            raise ValueError(f"entry grid {organs.shape} does not match the CT grid {ct.shape}")
        details = dict(meta.get("details") or {})
        details["cache"] = {"hit": True, "file": str(path)}
        return OrganMasks(organs=organs, affine=affine, backend=str(meta["backend"]), parts=parts,
                          details=details)


class CachedExpert:
    """Wraps a backend: returns the cached masks for a CT seen before, else runs and stores."""

    def __init__(self, inner: SegmentationExpert, cache: SegmentationCache):
        self.inner = inner
        self.cache = cache
        self.name = inner.name

    def cache_identity(self) -> dict[str, Any]:
        return self.inner.cache_identity()

    def segment(self, ct: CTVolume, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> OrganMasks:
        identity = self.inner.cache_identity()
        cached = self.cache.load(ct, identity)
        if cached is not None:
            notify_progress(progress, 1.0, "organ masks loaded from cache")
            return cached
        masks = self.inner.segment(ct, progress=progress, cancel=cancel)
        try:
            self.cache.store(ct, identity, masks)
        except (OSError, StorageError) as exc:  # a full or read-only cache disk must not lose the result
            log.warning("could not write segmentation cache under %s: %s", self.cache.root, exc)
        return masks
