"""Preprocessed cases on disk: what training needs of one CT, computed once, by inference's own code.

For each case the cache holds (safetensors, never pickle):

    volume      uint16 (D, H, W)  the model input of inference.preprocess, quantised as
                                  round(v * 65535): v in [0, 1], error < 8e-6 (CT noise is ~1e-2)
    counts      int64 (256,)      voxels of every label id on the model grid (organs 1..56, parts >= 100)
    sel_<id>_rows/_cols/_vals     Gamma's (Ll, N) patch weights of every label present, sparse, from
                                  inference.model.organ_tokens.select_patches: training takes organ
                                  tokens exactly as inference does
    msk_<id>_rows/_cols/_vals     masked Gamma only: the (Ll + 1, V) weights over the conv stem's voxels
                                  (organ_tokens.masked_weights), sparse
    crop_<id>   uint16 (D, H, W)  crop Gamma only: the organ's box re-sampled from the native CT onto the
                                  model grid by inference's own crop_input (quantised like volume); the
                                  organ's sel_<id> weights then refer to this crop's patch grid

The file name carries a key over the source files' contents and the model grid (image size, patch
size, Ll), so a changed CT, mask or model geometry never reuses a stale entry. Writes go to a
temporary name and are renamed (inference.atomic_write), so several ranks (or nodes on shared
storage) may build at once.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from inference.atomic_write import atomic_write
from inference.errors import InputError

CACHE_VERSION = 3  # 2: masked weights by each stem voxel's share of the organ; 3: + a whole-organ row
Q_SCALE = 65535.0


@dataclass(frozen=True)
class Geometry:
    """The model grid the cache is built for (from TumorChainConfig)."""

    img_size: tuple[int, int, int]
    patch_size: tuple[int, int, int]
    n_organ_tokens: int
    masked: bool = False  # masked Gamma: also keep the organs' weights over the stem's voxels
    stem_stride: tuple[int, int, int] = (1, 1, 1)
    embed_patch: tuple[int, int, int] | None = None
    crop: bool = False  # crop Gamma: keep each organ's re-sampled box and its weights on that box
    crop_margin: float = 0.15
    crop_min_extent: tuple[int, int, int] = (4, 32, 32)
    organ_pool: tuple[int, int, int] | None = None  # organ_pooling: Gamma picks cells of the pooled crop grid
    scheme: str = "tumorchain"  # preprocessing (inference.preprocess schemes)

    @classmethod
    def from_model_config(cls, config) -> "Geometry":
        v = config.vision
        return cls(tuple(v.img_size), tuple(v.patch_size), int(config.n_organ_tokens), config.gamma_mode == "masked",
                   tuple(v.stem_stride), tuple(v.embed_patch_size), config.gamma_mode == "crop",
                   float(config.crop_margin), tuple(config.crop_min_extent),
                   tuple(config.pool_size) if config.organ_pooling else None, str(config.preprocessing))

    @property
    def stem_voxels(self) -> int:
        """V: voxels of the stem's output grid."""
        return int(np.prod([i // s for i, s in zip(self.img_size, self.stem_stride)]))

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(i // p for i, p in zip(self.img_size, self.patch_size))  # type: ignore[return-value]

    @property
    def organ_grid(self) -> tuple[int, int, int]:
        """The grid Gamma's weights refer to: the patch grid, or the pooled one with organ pooling."""
        pool = self.organ_pool or (1, 1, 1)
        return tuple(g // k for g, k in zip(self.grid, pool))  # type: ignore[return-value]

    @property
    def n_patches(self) -> int:
        """N, the columns of Gamma's weights: patches, or pooled cells with organ pooling."""
        g = self.organ_grid
        return g[0] * g[1] * g[2]


@dataclass
class CaseTensors:
    """One cached case. volume: (1, D, H, W) float32; counts: label id -> voxels on the model grid."""

    volume: torch.Tensor
    counts: dict[int, int]
    selections: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]
    n_patches: int
    n_organ_tokens: int
    masked: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None  # (rows, stem voxel, weight)
    stem_voxels: int = 0
    crops: dict[int, torch.Tensor] | None = None  # crop Gamma: label -> (1, D, H, W) float32 crop volume

    def organ_weights(self, label_id: int) -> torch.Tensor:
        """Gamma's (Ll, N) weight matrix of one label (KeyError if the label has no voxels)."""
        rows, cols, vals = self.selections[label_id]
        w = torch.zeros(self.n_organ_tokens, self.n_patches, dtype=torch.float32)
        w[torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(cols.astype(np.int64))] = torch.from_numpy(vals)
        return w


def file_digest(path: Path | None) -> str:
    if path is None:
        return "none"
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def case_key(ct: Path, masks: Path | None, parts: Path | None, geometry: Geometry, segmentation: str) -> str:
    """Key over the files' bytes and the model grid."""
    from inference.preprocess import SOFT_TISSUE_LEVEL, SOFT_TISSUE_WIDTH

    parts_of_key = [str(CACHE_VERSION), file_digest(ct), file_digest(masks) if masks else f"seg:{segmentation}",
                    file_digest(parts), json.dumps([geometry.img_size, geometry.patch_size, geometry.n_organ_tokens]),
                    f"{SOFT_TISSUE_LEVEL}/{SOFT_TISSUE_WIDTH}"]
    if geometry.masked:  # appended only then, so existing caches keep their keys
        parts_of_key.append(json.dumps(["masked", geometry.stem_stride, geometry.embed_patch]))
    if geometry.crop:
        parts_of_key.append(json.dumps(["crop", geometry.crop_margin, geometry.crop_min_extent]))
    if geometry.organ_pool is not None:
        parts_of_key.append(json.dumps(["organ_pool", geometry.organ_pool]))
    if geometry.scheme != "tumorchain":
        parts_of_key.append(json.dumps(["scheme", geometry.scheme]))
    return hashlib.sha1("|".join(parts_of_key).encode()).hexdigest()[:20]


def patch_label_histogram(labels: np.ndarray, patch_size: tuple[int, int, int]) -> np.ndarray:
    """(D, H, W) uint8 labels -> (N, 256) voxel counts of each label in each patch (raster order)."""
    d, h, w = labels.shape
    pd, ph, pw = patch_size
    blocks = labels.reshape(d // pd, pd, h // ph, ph, w // pw, pw).transpose(0, 2, 4, 1, 3, 5)
    n = (d // pd) * (h // ph) * (w // pw)
    flat = blocks.reshape(n, -1).astype(np.int64)
    idx = flat + (np.arange(n, dtype=np.int64) * 256)[:, None]
    return np.bincount(idx.ravel(), minlength=n * 256).reshape(n, 256)


def _quantise(volume: np.ndarray) -> np.ndarray:
    return np.round(np.clip(volume, 0.0, 1.0) * Q_SCALE).astype(np.uint16)


def _dequantise(volume: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(volume.astype(np.float32) / Q_SCALE)[None]


def compute_case(model_input, geometry: Geometry) -> dict[str, np.ndarray]:
    """Arrays of one case from an inference ModelInput (see the module docstring)."""
    from inference.model.organ_tokens import masked_weights_sparse, patch_coverage, select_patches
    from inference.model.visual_inputs import crop_input

    vol = model_input.volume.reshape(geometry.img_size).numpy()
    arrays: dict[str, np.ndarray] = {"volume": _quantise(vol)}
    counts = np.zeros(256, dtype=np.int64)
    patch_vox = float(np.prod(geometry.patch_size))
    for labels in (model_input.organs, model_input.parts):
        if labels is None:
            continue
        hist = patch_label_histogram(np.asarray(labels, dtype=np.uint8), geometry.patch_size)  # (N, 256)
        totals = hist.sum(axis=0)
        for lid in np.flatnonzero(totals):
            if lid == 0:
                continue
            counts[lid] += totals[lid]
            # the same coverage as organ_tokens.patch_coverage (avg_pool3d of the mask); Gamma uses > 0
            coverage = torch.from_numpy((hist[:, lid] / patch_vox).astype(np.float32))
            if geometry.crop:  # tokens come from the organ's re-encoded box: weights on the box's grid
                crop = crop_input(torch.from_numpy(np.asarray(labels) == lid), model_input, geometry.img_size,
                                  geometry.crop_margin, geometry.crop_min_extent)
                arrays[f"crop_{lid}"] = _quantise(crop.volume.reshape(geometry.img_size).numpy())
                coverage = patch_coverage(crop.mask, geometry.patch_size)
                if geometry.organ_pool is not None:  # the same cells as TumorChainModel.organ_source
                    coverage = patch_coverage(crop.mask, tuple(p * k for p, k in zip(geometry.patch_size,
                                                                                    geometry.organ_pool)))
            sel = select_patches(coverage, geometry.organ_grid, geometry.n_organ_tokens)
            rows, cols = torch.nonzero(sel.weights, as_tuple=True)
            arrays[f"sel_{lid}_rows"] = rows.numpy().astype(np.int32)
            arrays[f"sel_{lid}_cols"] = cols.numpy().astype(np.int32)
            arrays[f"sel_{lid}_vals"] = sel.weights[rows, cols].numpy().astype(np.float32)
            if geometry.masked:
                mask = torch.from_numpy(np.asarray(labels) == lid)
                rows, cols, vals = masked_weights_sparse(mask, sel, geometry.stem_stride, geometry.embed_patch)
                arrays[f"msk_{lid}_rows"] = rows.numpy().astype(np.int32)
                arrays[f"msk_{lid}_cols"] = cols.numpy().astype(np.int32)
                arrays[f"msk_{lid}_vals"] = vals.numpy().astype(np.float32)
    arrays["counts"] = counts
    return arrays


class CaseCache:
    """Builds and reads cached cases under ``root``; thread-safe in-memory LRU of recent cases."""

    def __init__(self, root: str | Path, geometry: Geometry, segmentation: str = "totalsegmentator",
                 keep_in_memory: int = 8):
        self.root = Path(root)
        self.geometry = geometry
        self.segmentation = segmentation
        self.keep = keep_in_memory
        self._memory: dict[Path, CaseTensors] = {}
        self._lock = threading.Lock()

    def path_for(self, case_id: str, ct: Path, masks: Path | None, parts: Path | None) -> Path:
        key = case_key(ct, masks, parts, self.geometry, self.segmentation)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in case_id)
        return self.root / f"{safe}-{key}.safetensors"

    def ensure(self, case_id: str, ct: Path, masks: Path | None, parts: Path | None) -> Path:
        """The cache file of a case, building it when missing."""
        path = self.path_for(case_id, ct, masks, parts)
        if path.is_file():
            return path
        model_input = self._preprocess(ct, masks, parts)
        arrays = compute_case(model_input, self.geometry)
        meta = {"case_id": case_id, "ct": str(ct), "masks": str(masks), "parts": str(parts),
                "img_size": json.dumps(self.geometry.img_size), "patch_size": json.dumps(self.geometry.patch_size),
                "n_organ_tokens": str(self.geometry.n_organ_tokens), "version": str(CACHE_VERSION),
                "warnings": json.dumps(list(model_input.warnings))}
        return atomic_write(path, save(arrays, metadata=meta), what="case cache entry")

    def _preprocess(self, ct_path: Path, masks: Path | None, parts: Path | None):
        from inference.ct_io import load_ct
        from inference.preprocess import preprocess
        from inference.segmentation.expert import make_expert

        ct = load_ct(ct_path)
        if masks is not None:
            expert = make_expert("precomputed", path=masks, parts_path=parts)
        else:  # segmentation on the fly; the expert caches its result by CT content hash
            expert = make_expert(self.segmentation)
        organ_masks = expert.segment(ct)
        return preprocess(ct, organ_masks, shape=self.geometry.img_size, scheme=self.geometry.scheme)

    def load(self, path: Path) -> CaseTensors:
        with self._lock:
            hit = self._memory.get(path)
        if hit is not None:
            return hit
        try:
            arrays = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise InputError(path, f"unreadable case cache entry ({exc}); delete it to rebuild") from None
        vol = _dequantise(arrays.pop("volume"))
        counts_arr = arrays.pop("counts")
        counts = {int(i): int(counts_arr[i]) for i in np.flatnonzero(counts_arr)}
        sels, masked, crops = {}, {}, {}
        for lid in counts:
            if f"crop_{lid}" in arrays:
                crops[lid] = _dequantise(arrays[f"crop_{lid}"])
            if f"sel_{lid}_rows" in arrays:
                sels[lid] = (arrays[f"sel_{lid}_rows"], arrays[f"sel_{lid}_cols"], arrays[f"sel_{lid}_vals"])
            if f"msk_{lid}_rows" in arrays:
                masked[lid] = (arrays[f"msk_{lid}_rows"], arrays[f"msk_{lid}_cols"], arrays[f"msk_{lid}_vals"])
        case = CaseTensors(vol, counts, sels, self.geometry.n_patches, self.geometry.n_organ_tokens,
                           masked if self.geometry.masked else None, self.geometry.stem_voxels,
                           crops if self.geometry.crop else None)
        with self._lock:
            self._memory[path] = case
            while len(self._memory) > self.keep:
                self._memory.pop(next(iter(self._memory)))
        return case
