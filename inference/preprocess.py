"""CTVolume (+ OrganMasks) -> the model's input: a 1x1x32x256x256 volume and masks on the same grid.

The steps (paper appendix 10.1), and why:

1. Reorient to one canonical voxel order via the affine: depth runs head -> feet, rows anterior ->
   posterior, columns patient right -> left (nibabel axcodes ("I", "P", "L")). These are axial
   slices as a radiologist views them, top slice first, which is also how M3D's training volumes
   were built (stacks of displayed 2D slices), so the published encoder sees familiar anatomy.
2. Soft-tissue window W 400 / L 40: HU -160..240 -> 0..1 (clipped).
3. Crop to the body (largest connected component above -500 HU, always including every organ
   mask), then pad in-plane to a square in millimetres, centred: the 256x256 in-plane grid then
   has square pixels and no organ is stretched. Depth is fitted to 32 slices (its mm scale differs
   from in-plane; with a fixed 32-slice input that cannot be avoided). Padding is 0 (the window's
   floor), as the paper's zero-padding.
4. Resize to 32x256x256: trilinear for CT (after a box average when a source axis is shrunk by
   2x or more, so thin slices are averaged rather than skipped), nearest for label maps.

All of it is one axis-aligned map per axis, returned as ModelGrid: model voxel (d, h, w) ->
CT voxel (i, j, k) and world RAS mm, so the GUI can show where any model voxel or patch lies.

scheme="m3d" follows M3D-LaMed's own data preparation instead (BAAI-DCAI/M3D Data/process/
m3d_seg_data_prepare.py: min-max over the whole volume, MONAI CropForeground (voxels above the
minimum), Resize to 32x256x256 trilinear): step 1 the same, then HU min..max -> 0..1 with no window,
the box of every voxel above the volume's minimum (the scanner's outside-field padding drops out),
no square padding, the same resize. An organ crop (Gamma "crop") uses the same HU -> [0, 1] map.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import cc3d
import nibabel.orientations as nio
import numpy as np
import torch
import torch.nn.functional as F

from inference.ct_volume import CTVolume
from inference.errors import InputError
from inference.segmentation.organ_masks import OrganMasks

MODEL_SHAPE = (32, 256, 256)  # (depth, height, width) = the paper's 256 x 256 x 32 (H x W x D)
MODEL_AXCODES = ("I", "P", "L")
SCHEME_DESCRIPTIONS = {
    "tumorchain": "soft-tissue window W400/L40 to [0, 1], body crop (> -500 HU), square in-plane, "
                  "trilinear resize; axial slices head->feet, anterior->posterior, right->left",
    "m3d": "M3D-LaMed's own: min-max of the whole volume to [0, 1] (no window), foreground crop (voxels above "
           "the minimum), trilinear resize; axial slices head->feet, anterior->posterior, right->left",
}
SOFT_TISSUE_LEVEL = 40.0
SOFT_TISSUE_WIDTH = 400.0
BODY_THRESHOLD_HU = -500


@dataclass(frozen=True)
class ModelGrid:
    """Geometry of the model grid.

    model_to_ct: 4x4, model voxel (d, h, w, 1) -> CT voxel (i, j, k, 1) of CTVolume.hu.
    ct_affine:   4x4, CT voxel -> world RAS mm (the CTVolume's affine).
    """

    shape: tuple[int, int, int]
    model_to_ct: np.ndarray
    ct_affine: np.ndarray

    @property
    def model_to_world(self) -> np.ndarray:
        """4x4: model voxel (d, h, w, 1) -> world RAS mm."""
        return self.ct_affine @ self.model_to_ct

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Size of one model voxel in mm along d, h, w."""
        return tuple(float(s) for s in np.linalg.norm(self.model_to_world[:3, :3], axis=0))  # type: ignore[return-value]

    def model_to_world_points(self, dhw: np.ndarray) -> np.ndarray:
        """(N, 3) model voxel coordinates -> (N, 3) RAS mm."""
        return _apply(self.model_to_world, dhw)

    def world_to_model(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) RAS mm -> (N, 3) fractional model voxel coordinates."""
        return _apply(np.linalg.inv(self.model_to_world), xyz)

    def model_to_ct_points(self, dhw: np.ndarray) -> np.ndarray:
        """(N, 3) model voxel coordinates -> (N, 3) fractional CT voxel indices."""
        return _apply(self.model_to_ct, dhw)

@dataclass(frozen=True, eq=False)
class ModelInput:
    """One case on the model grid; made once per case and cached by the caller.

    volume: (1, 1, 32, 256, 256) float32 in [0, 1] (soft-tissue window).
    organs: (32, 256, 256) uint8 merged ids, or None without masks.
    parts:  (32, 256, 256) uint8 substructure ids (>= 100), or None.
    """

    volume: torch.Tensor
    organs: np.ndarray | None
    parts: np.ndarray | None
    grid: ModelGrid
    warnings: tuple[str, ...] = ()
    scheme: str = "tumorchain"  # SCHEME_DESCRIPTIONS key: how the volume was made (run.json records it)
    # HU -> [0, 1] of this input (crop mode applies the same one); None = the soft-tissue window
    _intensity: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    # native-resolution source for crop mode: the CT's HU array with its axis maps, and the
    # canonical box (edge coordinates) the model grid covers
    _source: tuple[np.ndarray, tuple] | None = field(default=None, repr=False)
    _box: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def mask(self, label_id: int) -> torch.Tensor:
        """(32, 256, 256) bool mask of one organ (id < 100) or substructure (id >= 100)."""
        labels = self.parts if label_id >= 100 else self.organs
        if labels is None:
            return torch.zeros(self.grid.shape, dtype=torch.bool)
        return torch.from_numpy(labels == label_id)

    @property
    def keeps_source(self) -> bool:
        """Whether crop() can re-sample the native CT (a ModelInput rebuilt from a cache cannot)."""
        return self._source is not None and self._box is not None

    def crop(self, lo: tuple[float, float, float], hi: tuple[float, float, float]) -> torch.Tensor:
        """Re-sample the CT at native resolution over a model-voxel box (edge coordinates, may
        reach outside the grid) onto a full (1, 1, 32, 256, 256) model input (crop mode of Gamma)."""
        if self._source is None or self._box is None:
            raise ValueError("this ModelInput keeps no native CT; crop from its volume instead")
        box_lo, box_hi = self._box
        scale = (box_hi - box_lo) / np.asarray(self.grid.shape, dtype=np.float64)
        c_lo = box_lo + np.asarray(lo, dtype=np.float64) * scale
        c_hi = box_lo + np.asarray(hi, dtype=np.float64) * scale
        hu, maps = self._source
        out = resample_box(hu, c_lo, c_hi, self.grid.shape, transform=self._intensity or soft_tissue_window, maps=maps)
        return out[None, None]


def soft_tissue_window(hu: np.ndarray) -> np.ndarray:
    """HU -> [0, 1] float32 with the soft-tissue window (W 400, L 40)."""
    lo = SOFT_TISSUE_LEVEL - SOFT_TISSUE_WIDTH / 2.0
    out = hu.astype(np.float32, order="C")  # the only copy: the rest is in place (large CTs)
    out -= lo
    out /= SOFT_TISSUE_WIDTH
    return np.clip(out, 0.0, 1.0, out=out)


class MinMaxScale:
    """HU -> [0, 1] by the whole volume's minimum and maximum (M3D's normalisation), picklable."""

    def __init__(self, lo: float, hi: float):
        self.lo, self.span = float(lo), max(float(hi) - float(lo), 1e-8)

    def __call__(self, hu: np.ndarray) -> np.ndarray:
        out = hu.astype(np.float32, order="C")
        out -= self.lo
        out /= self.span
        return np.clip(out, 0.0, 1.0, out=out)


def preprocess(ct: CTVolume, masks: OrganMasks | None = None, shape: tuple[int, int, int] = MODEL_SHAPE,
               scheme: str = "tumorchain") -> ModelInput:
    """CTVolume (+ OrganMasks on its grid) -> ModelInput on the (32, 256, 256) model grid.
    scheme: "tumorchain" (the paper's, above) or "m3d" (M3D-LaMed's own data preparation).

    The CT is never copied into canonical order: boxes are worked out in canonical voxels and
    the sampling reads the CT in its own memory layout (a transposed copy of a 512x512x300 CT
    alone takes seconds)."""
    if masks is not None:
        if masks.shape != ct.shape or not np.allclose(masks.affine, ct.affine, atol=1e-3):
            raise InputError(
                ct.source_path,
                f"organ masks (shape {masks.shape}) are not on this CT's grid (shape {ct.shape}); "
                "segment this series again",
            )
    xform = nio.ornt_transform(nio.io_orientation(ct.affine), nio.axcodes2ornt(MODEL_AXCODES))
    canon_to_ct = nio.inv_ornt_aff(xform, ct.shape)
    maps = axis_maps(canon_to_ct, ct.shape)
    spacing = np.linalg.norm((ct.affine @ canon_to_ct)[:3, :3], axis=0)

    if scheme not in SCHEME_DESCRIPTIONS:
        raise ValueError(f"preprocessing scheme must be one of {tuple(SCHEME_DESCRIPTIONS)}, got {scheme!r}")
    warnings: list[str] = []
    intensity: Callable[[np.ndarray], np.ndarray] | None = None
    if scheme == "m3d":
        lo_hu, hi_hu = float(ct.hu.min()), float(ct.hu.max())
        intensity = MinMaxScale(lo_hu, hi_hu)
        lo, hi = _foreground_box(ct.hu, lo_hu, maps)
        if lo is None:
            warnings.append("the volume is constant: no foreground above its minimum; the whole field of view is used")
            lo, hi = np.zeros(3), np.array([m.size for m in maps], dtype=np.float64)
    else:
        lo, hi = _body_box(ct.hu, masks.organs if masks is not None else None, maps)
        if lo is None:
            warnings.append("no body found above -500 HU; the whole field of view is used")
            lo, hi = np.zeros(3), np.array([m.size for m in maps], dtype=np.float64)
        lo, hi = _square_in_plane(lo, hi, spacing)

    volume = resample_box(ct.hu, lo, hi, shape, transform=intensity or soft_tissue_window, maps=maps)[None, None]
    organs = parts = None
    if masks is not None:
        organs = resample_labels(masks.organs, lo, hi, shape, maps=maps)
        if masks.parts is not None:
            parts = resample_labels(masks.parts, lo, hi, shape, maps=maps)

    scale = (hi - lo) / np.asarray(shape, dtype=np.float64)
    model_to_canon = np.eye(4)
    model_to_canon[:3, :3] = np.diag(scale)
    model_to_canon[:3, 3] = lo + 0.5 * scale - 0.5  # voxel centres, edge coordinates -> indices
    grid = ModelGrid(shape=tuple(shape), model_to_ct=canon_to_ct @ model_to_canon,
                     ct_affine=np.asarray(ct.affine, dtype=np.float64))
    return ModelInput(volume=volume, organs=organs, parts=parts, grid=grid, warnings=tuple(warnings), scheme=scheme,
                      _intensity=intensity, _source=(ct.hu, maps), _box=(lo, hi))


@dataclass(frozen=True)
class AxisMap:
    """Where one canonical (output) axis lies in the source array: which axis, reversed or not."""

    source_axis: int
    flip: bool
    size: int  # source length along that axis


def axis_maps(canon_to_source: np.ndarray, source_shape: tuple[int, ...]) -> tuple[AxisMap, AxisMap, AxisMap]:
    """The signed axis permutation in a canonical-voxel -> source-voxel affine."""
    m = canon_to_source[:3, :3]
    out = []
    for c in range(3):
        p = int(np.argmax(np.abs(m[:, c])))
        out.append(AxisMap(source_axis=p, flip=bool(m[p, c] < 0), size=int(source_shape[p])))
    return tuple(out)  # type: ignore[return-value]


def _identity_maps(shape: tuple[int, ...]) -> tuple[AxisMap, AxisMap, AxisMap]:
    return tuple(AxisMap(c, False, int(shape[c])) for c in range(3))  # type: ignore[return-value]


def resample_box(
    source: np.ndarray | torch.Tensor,
    lo: np.ndarray | tuple,
    hi: np.ndarray | tuple,
    out_shape: tuple[int, int, int],
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    maps: tuple[AxisMap, AxisMap, AxisMap] | None = None,
) -> torch.Tensor:
    """Trilinear resampling of the canonical box [lo, hi) (edge coordinates: voxel i spans
    [i, i+1), may reach outside) onto out_shape; outside the array is 0.

    Output voxel m samples at canonical edge coordinate lo + (m + 0.5) * (hi - lo) / out.
    `source` is the array in its own layout, `maps` says where each canonical axis lies in it
    (default: source is already canonical). `transform` (e.g. the HU window) is applied to the
    covering region before sampling. Where an axis shrinks by k >= 2 the region is first
    box-averaged by k, with bins placed as in canonical order, so every source voxel counts.
    Returns a float32 tensor of out_shape.
    """
    maps = maps or _identity_maps(source.shape)
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    sizes = np.array([m.size for m in maps])
    step = (hi - lo) / np.asarray(out_shape, dtype=np.float64)
    a_c = np.clip(np.floor(lo).astype(int) - 1, 0, sizes)  # covering region, canonical
    b_c = np.clip(np.ceil(hi).astype(int) + 1, 0, sizes)
    start, stop, k = [0, 0, 0], [0, 0, 0], [1, 1, 1]
    for c, m in enumerate(maps):
        p = m.source_axis
        start[p], stop[p] = (m.size - b_c[c], m.size - a_c[c]) if m.flip else (a_c[c], b_c[c])
        k[p] = int(step[c]) if step[c] >= 2.0 else 1
    region = source[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]]
    if isinstance(region, torch.Tensor):
        region = region.detach().float().cpu().numpy()
    region = transform(region) if transform is not None else region.astype(np.float32, order="C")
    if region.size == 0:
        return torch.zeros(out_shape, dtype=torch.float32)
    x = torch.from_numpy(np.ascontiguousarray(region, dtype=np.float32))[None, None]
    pad_low = [0, 0, 0]
    if any(kk > 1 for kk in k):
        pads = [(-n) % kk for n, kk in zip(x.shape[2:], k)]
        flipped = {m.source_axis: m.flip for m in maps}
        pad_low = [pads[p] if flipped[p] else 0 for p in range(3)]  # canonical bins start at the far end
        pad_high = [pads[p] - pad_low[p] for p in range(3)]
        x = F.pad(x, (pad_low[2], pad_high[2], pad_low[1], pad_high[1], pad_low[0], pad_high[0]), mode="replicate")
        x = F.avg_pool3d(x, kernel_size=tuple(k), stride=tuple(k))
    grid = torch.empty(*out_shape, 3)
    for c, m in enumerate(maps):
        p = m.source_axis
        edge = lo[c] + (np.arange(out_shape[c]) + 0.5) * step[c]  # canonical edge coordinate
        if m.flip:
            edge = m.size - edge
        pooled = (edge - (start[p] - pad_low[p])) / k[p]
        coord = torch.from_numpy(2.0 * pooled / x.shape[2 + p] - 1.0).float()  # align_corners=False
        view = [1, 1, 1]
        view[c] = out_shape[c]
        grid[..., 2 - p] = coord.view(view).expand(out_shape)  # grid order is (x=axis 2, y=axis 1, z=axis 0)
    out = F.grid_sample(x, grid[None], mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0, 0]


def resample_labels(
    labels: np.ndarray,
    lo: np.ndarray | tuple,
    hi: np.ndarray | tuple,
    out_shape: tuple[int, int, int],
    maps: tuple[AxisMap, AxisMap, AxisMap] | None = None,
) -> np.ndarray:
    """Nearest-neighbour resampling of a label map over the canonical box [lo, hi) onto
    out_shape, at the sampling points of resample_box; outside is 0."""
    maps = maps or _identity_maps(labels.shape)
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    idx: list[np.ndarray] = [np.zeros(0, int)] * 3
    valid = []
    for c, m in enumerate(maps):
        i = np.floor(lo[c] + (np.arange(out_shape[c]) + 0.5) * (hi[c] - lo[c]) / out_shape[c]).astype(int)
        valid.append((i >= 0) & (i < m.size))
        i = np.clip(i, 0, m.size - 1)
        idx[m.source_axis] = m.size - 1 - i if m.flip else i
    out = labels[np.ix_(*idx)].transpose([m.source_axis for m in maps])  # source -> canonical order
    inside = valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]
    return np.where(inside, out, 0).astype(labels.dtype)


def _body_box(hu: np.ndarray, organs: np.ndarray | None, maps) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Canonical bounding box [lo, hi) of the largest connected body part (> -500 HU), found on a
    subsampled grid for speed, grown to include every organ voxel. Works in the source layout."""
    step = tuple(max(1, int(math.ceil(n / 128))) for n in hu.shape)
    body = hu[::step[0], ::step[1], ::step[2]] > BODY_THRESHOLD_HU
    boxes = []  # (lo, hi) in source voxels
    if body.any():
        largest = cc3d.largest_k(body, k=1, connectivity=26)
        s = np.asarray(step)
        b_lo, b_hi = _mask_box(largest)
        # a subsampled voxel q stands for source voxels q*s - (s-1) .. q*s + (s-1)
        boxes.append((np.maximum(b_lo * s - (s - 1), 0), np.minimum((b_hi - 1) * s + s, hu.shape)))
    if organs is not None and organs.any():
        boxes.append(_mask_box(organs))
    if not boxes:
        return None, None
    src_lo = np.min([bx[0] for bx in boxes], axis=0)
    src_hi = np.max([bx[1] for bx in boxes], axis=0)
    lo, hi = np.zeros(3), np.zeros(3)
    for c, m in enumerate(maps):
        p = m.source_axis
        lo[c], hi[c] = (m.size - src_hi[p], m.size - src_lo[p]) if m.flip else (src_lo[p], src_hi[p])
    return lo, hi


def _foreground_box(hu: np.ndarray, minimum: float, maps) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Canonical box [lo, hi) of every voxel above the volume's minimum (MONAI CropForeground's
    default select_fn on the min-max scaled volume), or (None, None) for a constant volume."""
    above = hu > minimum
    if not above.any():
        return None, None
    src_lo, src_hi = _mask_box(above)
    lo, hi = np.zeros(3), np.zeros(3)
    for c, m in enumerate(maps):
        p = m.source_axis
        lo[c], hi[c] = (m.size - src_hi[p], m.size - src_lo[p]) if m.flip else (src_lo[p], src_hi[p])
    return lo, hi


def _mask_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) per axis of the nonzero voxels of a non-empty mask, from axis projections."""
    lo, hi = np.zeros(3, int), np.zeros(3, int)
    for ax in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        lo[ax], hi[ax] = hit[0], hit[-1] + 1
    return lo, hi


def _square_in_plane(lo: np.ndarray, hi: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grow the in-plane (h, w) extent of the box, centred, until it is square in mm."""
    lo, hi = lo.copy(), hi.copy()
    side_mm = max((hi[1] - lo[1]) * spacing[1], (hi[2] - lo[2]) * spacing[2])
    for ax in (1, 2):
        grow = side_mm / spacing[ax] - (hi[ax] - lo[ax])
        lo[ax] -= grow / 2.0
        hi[ax] += grow / 2.0
    return lo, hi


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    return pts @ matrix[:3, :3].T + matrix[:3, 3]
