"""The region of interest an IIR round names: one or more organ labels, as a box and a centre.

Qt-free. The scene state computes a Roi when the application highlights labels; slice views centre
on ``centre_world`` and frame ``world_min``..``world_max``, the 3D view frames the same box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.label_boxes import LabelBoxes

HIGHLIGHT_RGB = (255, 230, 0)  # strong yellow: unused by the label table, visible on grey CT


@dataclass(frozen=True, eq=False)
class Roi:
    """Union of the highlighted labels.

    voxel_min, voxel_max: (3,) int inclusive voxel box; world_min, world_max: (3,) RAS mm of the
    box's outer voxel edges; centre_world: (3,) a voxel centre inside the mask, nearest the mask's
    centroid (a bent organ's centroid may lie outside it).
    """

    label_ids: tuple[int, ...]
    voxel_min: np.ndarray
    voxel_max: np.ndarray
    world_min: np.ndarray
    world_max: np.ndarray
    centre_voxel: np.ndarray
    centre_world: np.ndarray
    n_voxels: int


def compute_roi(label_ids: list[int] | tuple[int, ...], affine: np.ndarray,
                organ_boxes: LabelBoxes, part_boxes: LabelBoxes | None) -> Roi | None:
    """The Roi of some labels (organ ids < 100 from organs, >= 100 from parts); None when empty."""
    ids = tuple(int(i) for i in label_ids)
    organ_ids = [i for i in ids if i < 100]
    part_ids = [i for i in ids if i >= 100]
    found = []
    if organ_ids:
        found.append(organ_boxes.mask_in_box(organ_ids))
    if part_ids and part_boxes is not None:
        found.append(part_boxes.mask_in_box(part_ids))
    found = [f for f in found if f is not None]
    if not found:
        return None
    vmins, vmaxs, sums, counts, candidates = [], [], [], [], []
    for mask, origin in found:
        o = np.asarray(origin)
        proj = [np.flatnonzero(mask.any(axis=_others(ax))) for ax in range(3)]
        vmins.append(o + [p[0] for p in proj])
        vmaxs.append(o + [p[-1] for p in proj])
        n = int(mask.sum())
        counts.append(n)
        # centroid from the per-axis projections: no (N, 3) index array for a big organ
        sums.append([float((mask.sum(axis=_others(ax)) * (np.arange(mask.shape[ax]) + o[ax])).sum())
                     for ax in range(3)])
        step = max(1, int(np.ceil((n / 2e5) ** (1 / 3))))  # enough candidates, bounded memory
        cand = np.argwhere(mask[::step, ::step, ::step]) * step
        candidates.append((cand if len(cand) else np.argwhere(mask)) + o)
    vmin, vmax = np.min(vmins, axis=0), np.max(vmaxs, axis=0)
    n_total = int(sum(counts))
    centroid = np.sum(sums, axis=0) / n_total
    cand = np.concatenate(candidates)
    centre = cand[int(np.argmin(((cand - centroid) ** 2).sum(axis=1)))]
    affine = np.asarray(affine, dtype=float)
    corners = np.array([[vmin[0] - .5 if a == 0 else vmax[0] + .5,
                         vmin[1] - .5 if b == 0 else vmax[1] + .5,
                         vmin[2] - .5 if c == 0 else vmax[2] + .5]
                        for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    return Roi(ids, vmin, vmax, world.min(axis=0), world.max(axis=0), centre,
               affine[:3, :3] @ centre + affine[:3, 3], n_total)


def _others(axis: int) -> tuple[int, int]:
    return tuple(a for a in range(3) if a != axis)  # type: ignore[return-value]
