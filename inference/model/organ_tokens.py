"""Gamma: the local organ tokens tau_l of paper eq. 2, a fixed number Ll per organ.

What Gamma does, exactly (grid = patch grid of the encoder, (8, 16, 16) for M3D):

1. Coverage: the organ mask (D, H, W) on the model grid is average-pooled by the patch size, so each
   patch gets the fraction of its voxels inside the organ. "Covered" = coverage > 0 (a patch that
   touches the organ at all counts: lesions at organ borders are the paper's main failure).
   An empty mask is an error (ValueError), never a silent zero token.
2. n covered <= Ll ("picked"): every covered patch is taken as it is, plus the Ll - n uncovered
   patches nearest to the organ (Euclidean distance in patch-grid units to the closest covered
   patch; ties by raster index), i.e. a ring of context around a small organ. Output tokens are
   exactly the chosen patches' encoder outputs, in raster order (z, y, x) of the grid.
3. n covered > Ll ("pooled"): the covered patches are split into Ll spatially compact groups of
   near-equal size by recursive bisection along the axis of largest extent (a k-d split,
   ties by raster index); each output token is the plain mean of its group's encoder tokens
   (border patches weigh as much as interior ones, on purpose). Tokens come in k-d order.

Both cases are a (Ll, N) weight matrix W applied to the (N, Dv) tokens, so Gamma is differentiable
and the GUI can show which patches every organ token came from. The projector P is applied after
Gamma; for picked tokens P(Gamma(tau_v)) equals the paper's Gamma(P(tau_v)) exactly, because P acts
per token. Crop mode ("crop") runs the same selection on a fresh encoding of the organ's box.

Masked mode ("masked", our departure from the paper, for encoders with a conv stem): the same
selection decides which patches feed each token, but a token is then the mean and the variance of
the stem's features over the organ's own voxels inside those patches (all their voxels for a
context patch the organ does not touch), next to the same statistics over the whole organ. A patch
token mixes an organ's few lesion voxels with everything else in its patch; pooling on the mask
keeps them (measured in the README: held-out organ AUC 0.92 for demo model v0.2 against 0.61-0.67
for patch tokens on the demo cohort). The pooled statistics then go
through MaskedOrganPool (organ_pool.py), which also adds which organ they describe: a variance that
is normal for the stomach (air, contents) is a lesion in the liver.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class OrganSelection:
    """Which patches each of the Ll organ tokens came from.

    weights:  (Ll, N) float; row t averages the patches of token t (one-hot when picked).
    coverage: (N,) fraction of each patch inside the organ mask.
    mode:     "picked" (n covered <= Ll) or "pooled".
    grid:     (gd, gh, gw) the patch grid N is laid out on (raster order).
    box:      crop mode: the (lo, hi) model-voxel box (edge coordinates) that was re-encoded, so
              the grid covers that box; None when the grid covers the whole model volume.
    """

    weights: torch.Tensor
    coverage: torch.Tensor
    mode: str
    grid: tuple[int, int, int]
    box: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None

    @property
    def n_covered(self) -> int:
        return int((self.coverage > 0).sum())

    def patch_indices(self) -> list[list[int]]:
        """For each output token, the raster indices of the patches it is made of."""
        return [torch.nonzero(row > 0).flatten().tolist() for row in self.weights]

    def patch_boxes(self, img_size: tuple[int, int, int]) -> list[list[tuple[tuple[float, ...], tuple[float, ...]]]]:
        """For each output token, the (lo, hi) boxes of its patches on the case's model grid
        (edge coordinates)."""
        patch = [i / g for i, g in zip(img_size, self.grid)]
        offset, scale = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
        if self.box is not None:
            offset = list(self.box[0])
            scale = [(h - l) / i for l, h, i in zip(self.box[0], self.box[1], img_size)]
        gd, gh, gw = self.grid
        boxes = []
        for members in self.patch_indices():
            token_boxes = []
            for p in members:
                zyx = (p // (gh * gw), (p // gw) % gh, p % gw)
                lo = tuple(o + c * n * k for o, c, n, k in zip(offset, zyx, patch, scale))
                token_boxes.append((lo, tuple(a + n * k for a, n, k in zip(lo, patch, scale))))
            boxes.append(token_boxes)
        return boxes


def patch_coverage(mask: torch.Tensor, patch_size: tuple[int, int, int]) -> torch.Tensor:
    """(D, H, W) bool mask -> (gd*gh*gw,) fraction of each patch's voxels inside, raster order."""
    pooled = F.avg_pool3d(mask.float()[None, None], kernel_size=patch_size, stride=patch_size)
    return pooled.flatten()


def select_patches(coverage: torch.Tensor, grid: tuple[int, int, int], n_tokens: int) -> OrganSelection:
    """Gamma's choice of patches for one organ (see the module docstring)."""
    n = coverage.numel()
    if n != grid[0] * grid[1] * grid[2]:
        raise ValueError(f"coverage has {n} entries, the patch grid {grid} has {grid[0] * grid[1] * grid[2]}")
    if n_tokens > n:
        raise ValueError(f"cannot take {n_tokens} organ tokens from a grid of {n} patches")
    coverage = coverage.detach().float().cpu()
    covered = torch.nonzero(coverage > 0).flatten()
    if covered.numel() == 0:
        raise ValueError("the organ mask is empty on the model grid: no organ tokens can be taken")
    coords = _grid_coords(grid)
    weights = torch.zeros(n_tokens, n)
    if covered.numel() <= n_tokens:
        chosen = covered
        if covered.numel() < n_tokens:
            chosen = torch.cat([covered, _nearest_context(coords, covered, n_tokens - covered.numel())])
        chosen = torch.sort(chosen).values  # raster order
        weights[torch.arange(n_tokens), chosen] = 1.0
        mode = "picked"
    else:
        for t, group in enumerate(_kd_groups(coords, covered, n_tokens)):
            weights[t, group] = 1.0 / group.numel()
        mode = "pooled"
    return OrganSelection(weights=weights, coverage=coverage, mode=mode, grid=tuple(grid))


def crop_box(
    mask: torch.Tensor,
    margin: float,
    min_extent: tuple[int, int, int],
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Box around the organ, in model-voxel edge coordinates (voxel i spans [i, i+1)).

    The box is the organ's bounding box plus `margin` x its extent on each side, grown so that its
    shape is proportional to the model grid (same zoom on every axis: no distortion), at least
    `min_extent`, and moved inside the volume when it fits. Returns (lo, hi) per axis (d, h, w).
    """
    shape = tuple(mask.shape)
    nz = torch.nonzero(mask)
    if nz.numel() == 0:
        raise ValueError("the organ mask is empty on the model grid: nothing to crop")
    lo = nz.min(dim=0).values.double()
    hi = nz.max(dim=0).values.double() + 1.0
    extent = (hi - lo) * (1.0 + 2.0 * margin)
    ref = torch.tensor(shape, dtype=torch.float64)
    # fraction of the volume the box spans, the same on every axis
    fraction = torch.max(torch.max(extent / ref), torch.max(torch.tensor(min_extent, dtype=torch.float64) / ref))
    extent = ref * fraction
    centre = (lo + hi) / 2.0
    new_lo = centre - extent / 2.0
    # keep the box inside the volume where it fits, so no pixels are spent on padding
    fits = extent <= ref
    new_lo = torch.where(fits, new_lo.clamp(min=0.0), new_lo)
    new_lo = torch.where(fits, torch.minimum(new_lo, ref - extent), new_lo)
    new_hi = new_lo + extent
    return tuple(new_lo.tolist()), tuple(new_hi.tolist())  # type: ignore[return-value]


def _grid_coords(grid: tuple[int, int, int]) -> torch.Tensor:
    """(N, 3) integer (z, y, x) of every patch, raster order."""
    zz, yy, xx = torch.meshgrid(*(torch.arange(g) for g in grid), indexing="ij")
    return torch.stack([zz.flatten(), yy.flatten(), xx.flatten()], dim=1)


def _nearest_context(coords: torch.Tensor, covered: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` uncovered patches closest to any covered patch (ties: raster index)."""
    others = torch.ones(coords.shape[0], dtype=torch.bool)
    others[covered] = False
    candidates = torch.nonzero(others).flatten()
    dist = torch.cdist(coords[candidates].double(), coords[covered].double()).min(dim=1).values
    order = torch.sort(dist, stable=True).indices  # candidates are in raster order already
    return candidates[order[:count]]


def _kd_groups(coords: torch.Tensor, members: torch.Tensor, k: int) -> list[torch.Tensor]:
    """Split `members` (raster indices) into k compact groups of near-equal size."""
    if k == 1:
        return [members]
    pts = coords[members]
    axis = int(torch.argmax(pts.max(dim=0).values - pts.min(dim=0).values))
    # stable sort on the axis keeps raster order among equal coordinates
    order = torch.sort(pts[:, axis], stable=True).indices
    members = members[order]
    k1 = k // 2
    n1 = members.numel() * k1 // k
    return _kd_groups(coords, members[:n1], k1) + _kd_groups(coords, members[n1:], k - k1)


def masked_weights(mask: torch.Tensor, selection: OrganSelection, stem_stride: tuple[int, int, int],
                   embed_patch: tuple[int, int, int]) -> torch.Tensor:
    """(Ll + 1, V) weights over the stem grid's voxels (raster order). Row t < Ll averages the
    organ's stem voxels inside token t's patches, each weighted by the fraction of its model voxels
    inside the organ (so the mean is the organ's own, not one diluted by a ring of border tissue),
    or all voxels of those patches equally when the organ has none there (context patches). The last
    row averages the whole organ the same way: every token also carries the organ-wide statistics
    (see MaskedOrganPool), which a lesion in one sub-region shifts for all of them.

    mask: (D, H, W) bool on the model grid. The dense form of masked_weights_sparse."""
    rows, cols, vals = masked_weights_sparse(mask, selection, stem_stride, embed_patch)
    d, h, w = (n // s for n, s in zip(mask.shape, stem_stride))
    out = torch.zeros(selection.weights.shape[0] + 1, d * h * w)
    out[rows, cols] = vals
    return out


def masked_weights_sparse(mask: torch.Tensor, selection: OrganSelection, stem_stride: tuple[int, int, int],
                          embed_patch: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """masked_weights' non-zero entries as (rows, cols, vals), in torch.nonzero's order (row, then
    column), bit for bit what torch.nonzero and indexing give on the dense matrix.

    Why not the dense matrix: an organ touches a few thousand of the stem grid's 131,072 voxels, and
    the dense (Ll + 1, V) rows cost ~60% of a case cache entry's CPU time (52 labels a case). Only the
    organ's bounding box is pooled, and only its voxels and its context patches' voxels are listed.
    The values equal the dense form's exactly because every sum is exact in float32: the voxel
    shares are counts over a power-of-two stem cell (k / 2^m), and a row sums at most D*H*W <= 2^24 of
    them, so any summation order gives the same float. Geometries outside that (or a stem grid the
    patch grid does not tile) take the dense path."""
    sd, sh, sw = stem_stride
    cell = sd * sh * sw
    D, H, W = mask.shape
    d, h, w = D // sd, H // sh, W // sw
    gd, gh, gw = selection.grid
    pd, ph, pw = embed_patch
    exact = (cell & (cell - 1)) == 0 and D * H * W <= 2 ** 24 and mask.dtype == torch.bool
    if not exact or (d, h, w) != (gd * pd, gh * ph, gw * pw) or (D, H, W) != (d * sd, h * sh, w * sw):
        return _dense_entries(mask, selection, stem_stride, embed_patch)
    # the organ's bounding box in stem cells; the pooled shares of the cells inside it
    u8 = mask.contiguous().view(torch.uint8)  # max over uint8 is ~15x faster than any() over bool here
    plane = u8.amax(dim=0)  # (H, W)
    lo, hi = [], []
    for s, hits in zip(stem_stride, (u8.view(D, -1).amax(dim=1), plane.amax(dim=1), plane.amax(dim=0))):
        hit = torch.nonzero(hits).flatten()
        if hit.numel() == 0:  # an empty mask: the dense path says what that gives (division by zero)
            return _dense_entries(mask, selection, stem_stride, embed_patch)
        lo.append(int(hit[0]) // s)
        hi.append(int(hit[-1]) // s + 1)
    box = mask[lo[0] * sd:hi[0] * sd, lo[1] * sh:hi[1] * sh, lo[2] * sw:hi[2] * sw]
    nd, nh, nw = (b - a for a, b in zip(lo, hi))
    counts = box.reshape(nd, sd, nh, sh, nw, sw).sum(dim=(1, 3, 5), dtype=torch.int32)
    cz, cy, cx = torch.nonzero(counts, as_tuple=True)  # raster order in the box = raster order overall
    share = counts[cz, cy, cx].float() / cell  # = avg_pool3d's mean over the cell, exactly (power of two)
    cz, cy, cx = cz + lo[0], cy + lo[1], cx + lo[2]
    organ_cols = (cz * h + cy) * w + cx
    organ_patch = ((cz // pd) * gh + cy // ph) * gw + cx // pw
    in_token = (selection.weights > 0)[:, organ_patch]  # (Ll, organ voxels)
    n_in = in_token.sum(dim=1).tolist()
    offsets = ((torch.arange(pd)[:, None, None] * h + torch.arange(ph)[None, :, None]) * w
               + torch.arange(pw)[None, None, :]).reshape(-1)  # a patch's voxels, from its first one
    rows, cols, vals = [], [], []
    for t in range(selection.weights.shape[0]):
        pick = in_token[t]
        if n_in[t] > 0:
            c, v = organ_cols[pick], share[pick]
            v = v / v.sum()
        else:  # a context patch the organ does not touch: all its voxels, equally
            patches = torch.nonzero(selection.weights[t] > 0).flatten()
            first = ((patches // (gh * gw)) * pd * h + ((patches // gw) % gh) * ph) * w + (patches % gw) * pw
            c = torch.sort((first[:, None] + offsets[None]).flatten()).values
            v = torch.ones(c.numel()) / float(c.numel())
        rows.append(torch.full((c.numel(),), t, dtype=torch.long))
        cols.append(c)
        vals.append(v)
    rows.append(torch.full((organ_cols.numel(),), selection.weights.shape[0], dtype=torch.long))
    cols.append(organ_cols)
    vals.append(share / share.sum())
    return torch.cat(rows), torch.cat(cols).long(), torch.cat(vals)


def _dense_entries(mask, selection, stem_stride, embed_patch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dense = _masked_weights_dense(mask, selection, stem_stride, embed_patch)
    rows, cols = torch.nonzero(dense, as_tuple=True)
    return rows, cols, dense[rows, cols]


def _masked_weights_dense(mask: torch.Tensor, selection: OrganSelection, stem_stride: tuple[int, int, int],
                          embed_patch: tuple[int, int, int]) -> torch.Tensor:
    """masked_weights computed densely over every stem voxel (the original form; the general path)."""
    share = F.avg_pool3d(mask.float()[None, None], kernel_size=stem_stride, stride=stem_stride)[0, 0]
    d, h, w = share.shape
    gd, gh, gw = selection.grid
    pd, ph, pw = embed_patch
    z = torch.arange(d)[:, None, None] // pd
    y = torch.arange(h)[None, :, None] // ph
    x = torch.arange(w)[None, None, :] // pw
    patch_of = ((z * gh + y) * gw + x).expand(d, h, w).reshape(-1)  # (V,) patch index of every stem voxel
    in_patches = (selection.weights > 0).float()[:, patch_of]  # (Ll, V): voxels of each token's patches
    share = share.reshape(-1)
    members = torch.cat([in_patches * share[None], share[None]])
    empty = members[:-1].sum(dim=1) <= 0
    members[:-1][empty] = in_patches[empty]  # context patches: all their voxels
    return members / members.sum(dim=1, keepdim=True)


def pool_stem_features(flat: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor,
                       n_rows: int) -> torch.Tensor:
    """Masked Gamma's pooling, for inference (one case) and training (a batch) alike: flat (V', C)
    stem features, sparse weights (row, column into flat, value) -> (n_rows, 2C), per row the
    weighted mean of each channel, then its variance (heterogeneity inside the organ)."""
    w = vals.to(device=flat.device, dtype=flat.dtype)[:, None]
    picked = flat[cols.to(flat.device)]
    rows = rows.to(flat.device)
    mean = flat.new_zeros(n_rows, flat.shape[1]).index_add(0, rows, picked * w)
    sq = flat.new_zeros(n_rows, flat.shape[1]).index_add(0, rows, picked * picked * w)
    return torch.cat([mean, (sq - mean * mean).clamp_min(0.0)], dim=-1)
