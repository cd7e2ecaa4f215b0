"""organ_tokens.masked_weights_sparse (the case cache's and inference's masked Gamma weights) gives
bit for bit what the original dense masked_weights gave, then torch.nonzero and indexing: same rows,
same columns in the same order, same float32 values (issue 19: the case cache's hot spot)."""
from __future__ import annotations

import pytest
import torch

from inference.model.organ_tokens import (_masked_weights_dense, masked_weights, masked_weights_sparse,
                                          patch_coverage, select_patches)


# the dense form organ_tokens keeps as its general path is the original masked_weights (commit 4f0c42b)
original_masked_weights = _masked_weights_dense


def blob(shape, centre, radii, g: torch.Generator, ragged: bool = True) -> torch.Tensor:
    """An ellipsoid with a ragged (random) border, like a resampled organ mask."""
    axes = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in shape), indexing="ij")
    r = sum(((a - c) / max(rr, 0.5)) ** 2 for a, c, rr in zip(axes, centre, radii))
    if ragged:
        r = r + 0.3 * torch.rand(shape, generator=g)
    return r < 1.0


def assert_same(mask, sel, stem_stride, embed_patch):
    dense = original_masked_weights(mask, sel, stem_stride, embed_patch)
    rows, cols = torch.nonzero(dense, as_tuple=True)
    r, c, v = masked_weights_sparse(mask, sel, stem_stride, embed_patch)
    assert torch.equal(r, rows) and torch.equal(c, cols)
    assert v.dtype == dense.dtype and torch.equal(v, dense[rows, cols])  # bitwise, not allclose
    assert torch.equal(masked_weights(mask, sel, stem_stride, embed_patch), dense)


# (model grid, stem stride, patch on the stem grid, patch grid): the demo recipe's geometry first
DEMO = ((32, 256, 256), (1, 4, 4), (4, 8, 8), (8, 8, 8))
SMALL = ((16, 64, 64), (1, 4, 4), (4, 4, 4), (4, 4, 4))


@pytest.mark.parametrize("geometry", [DEMO, SMALL], ids=["demo", "small"])
def test_sparse_weights_equal_the_original_on_random_organs(geometry):
    shape, stride, patch, grid = geometry
    g = torch.Generator().manual_seed(19)
    modes = set()
    for i in range(12):
        centre = [float(torch.rand((), generator=g)) * n for n in shape]
        # radii from a few voxels (picked: a ring of context patches) to most of the volume (pooled)
        scale = [0.02, 0.08, 0.2, 0.45][i % 4]
        radii = [scale * n * (0.5 + float(torch.rand((), generator=g))) for n in shape]
        mask = blob(shape, centre, radii, g)
        if not mask.any():
            mask[tuple(int(c) % n for c, n in zip(centre, shape))] = True
        sel = select_patches(patch_coverage(mask, tuple(p * s for p, s in zip(patch, stride))), grid, 16)
        modes.add(sel.mode)
        assert_same(mask, sel, stride, patch)
    assert modes == {"picked", "pooled"}


def test_sparse_weights_equal_the_original_on_edge_cases():
    shape, stride, patch, grid = DEMO
    g = torch.Generator().manual_seed(7)
    one = torch.zeros(shape, dtype=torch.bool)
    one[31, 255, 0] = True  # a single voxel in a corner: 15 context tokens
    corner = blob(shape, (0, 0, 0), (6, 40, 40), g)  # cut by the volume's border
    full = torch.ones(shape, dtype=torch.bool)  # every patch covered
    two = blob(shape, (8, 60, 60), (4, 20, 20), g) | blob(shape, (24, 200, 190), (4, 20, 20), g)  # two parts
    for mask in (one, corner, full, two):
        sel = select_patches(patch_coverage(mask, (4, 32, 32)), grid, 16)
        assert_same(mask, sel, stride, patch)


def test_geometries_outside_the_exact_case_take_the_dense_path_and_agree():
    g = torch.Generator().manual_seed(3)
    # a stem cell of 9 voxels (not a power of two): shares k/9 are inexact, so the dense path
    mask = blob((12, 36, 36), (6, 18, 12), (4, 10, 9), g)
    sel = select_patches(patch_coverage(mask, (4, 12, 12)), (3, 3, 3), 4)
    assert_same(mask, sel, (1, 3, 3), (4, 4, 4))
