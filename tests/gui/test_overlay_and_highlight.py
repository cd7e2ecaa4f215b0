"""Organ overlay and ROI highlight, on rendered pixels of all three slice views."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from gui_helpers import colour_mask
from viewer_cases import LIVER, SPLEEN
from viewer.overlay import DIM_FACTOR


@pytest.fixture
def case(viewer, synthetic):
    viewer.load(*synthetic("lps"))
    viewer.state.set_cursor((0, -8, 0))  # a slice through liver and spleen in every view... almost
    return viewer


def mask_pixels(viewer, plane: str, label: int) -> np.ndarray:
    """(H, W) bool: screen pixels whose centre falls on ``label`` in the current slice."""
    view = viewer.slices[plane]
    g, st = view.geometry, viewer.state
    (u0, v0), (u1, _), (_, v1) = (view.widget_to_display(x, y) for x, y in ((0, 0), (1, 0), (0, 1)))
    ys, xs = np.mgrid[0:view.height(), 0:view.width()]
    u, v = u0 + xs * (u1 - u0), v0 + ys * (v1 - v0)  # the mapping is linear (parallel camera)
    col, row = np.rint((u - g.u0) / g.du).astype(int), np.rint((v - g.v0) / g.dv).astype(int)
    organs = g.extract(st.masks.organs, view.slice_index)
    ok = (row >= 0) & (row < organs.shape[0]) & (col >= 0) & (col < organs.shape[1])
    out = np.zeros(ok.shape, dtype=bool)
    out[ok] = organs[row[ok], col[ok]] == label
    return out


def test_fill_uses_table_colours_and_toggling_hides_a_label(case):
    st = case.state
    st.set_opacity(1.0)
    st.set_outline(False)
    liver_rgb = st.table.by_id(LIVER).colour
    img = case.grab("axial", save_as="overlay_fill")
    on_screen = colour_mask(img, liver_rgb, 1)
    truth = mask_pixels(case, "axial", LIVER)
    sampled = truth[::2, ::2]
    assert sampled.sum() > 100
    assert on_screen[::2, ::2][sampled].mean() > 0.95  # the table colour covers the mask
    assert on_screen[::2, ::2][~sampled].mean() < 0.01  # and nothing else
    st.set_label_visible(LIVER, False)
    assert colour_mask(case.grab("axial"), liver_rgb, 1).sum() == 0
    st.set_label_visible(LIVER, True)
    st.set_label_colour(LIVER, (10, 200, 250))
    assert colour_mask(case.grab("axial"), (10, 200, 250), 1)[::2, ::2][sampled].mean() > 0.95


def test_opacity_blends_with_the_ct(case):
    st = case.state
    st.set_outline(False)
    truth = mask_pixels(case, "coronal", LIVER)[::2, ::2]
    st.set_visible_labels([])
    ct_only = case.grab("coronal").astype(float)[::2, ::2][truth]
    st.set_visible_labels([LIVER])
    st.set_opacity(0.4)
    blended = case.grab("coronal", save_as="overlay_opacity").astype(float)[::2, ::2][truth]
    expected = 0.6 * ct_only + 0.4 * np.asarray(st.table.by_id(LIVER).colour, dtype=float)
    assert np.median(np.abs(blended - expected)) <= 3


def test_outline_only_draws_the_boundary(case):
    st = case.state
    st.set_cursor((45, 12, 18))  # liver centre
    st.set_fill(False)
    st.set_outline(True)
    rgb = st.table.by_id(LIVER).colour
    img = case.grab("sagittal", save_as="overlay_outline")
    drawn = colour_mask(img, rgb, 1)
    truth = mask_pixels(case, "sagittal", LIVER)
    assert drawn.sum() > 50
    inner = ndimage.binary_erosion(truth, iterations=6)  # well inside the organ
    near_edge = truth & ~ndimage.binary_erosion(truth, iterations=3)
    assert inner.sum() > 200 and drawn[inner].mean() < 0.01
    assert drawn[near_edge].mean() > 0.2


def test_highlight_outlines_the_roi_in_every_view(case):
    st = case.state
    roi = st.set_highlight(["liver"])
    assert roi is not None
    for plane, view in case.slices.items():
        img = case.grab(plane, save_as="highlight_liver")
        ring = colour_mask(img, st.highlight_rgb, 2)
        truth = mask_pixels(case, plane, LIVER)
        assert truth.sum() > 50, plane
        edge = truth & ~(np.roll(truth, 2, 0) & np.roll(truth, -2, 0) & np.roll(truth, 2, 1) & np.roll(truth, -2, 1))
        ey, ex = np.nonzero(edge)
        ry, rx = np.nonzero(ring)
        assert len(rx) > 100, plane
        sample = np.linspace(0, len(rx) - 1, 300).astype(int)
        d = np.min(np.hypot(rx[sample, None] - ex[None], ry[sample, None] - ey[None]), axis=1)
        # ring pixels hug the mask's edge; the rest are the ROI box, which shares the colour
        assert np.mean(d <= 4) > 0.5, plane
        ring_at_edge = np.min(np.hypot(ex[::5, None] - rx[None], ey[::5, None] - ry[None]), axis=1)
        assert np.mean(ring_at_edge <= 3) > 0.95, f"{plane}: parts of the organ edge have no outline"
        # the box: its corners are the ROI's voxel box corners on screen
        lo, hi = roi.voxel_min - 0.5, roi.voxel_max + 0.5
        (xa, ya), (xb, yb) = (view.world_to_widget(st.ct.voxel_to_world(c)[0]) for c in (lo, hi))
        for x, y in ((xa, ya), (xb, yb), (xa, yb), (xb, ya)):
            x, y = int(round(x)), int(round(y))
            assert ring[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3].any(), f"{plane}: no box corner at {(x, y)}"
        cx, cy = view.world_to_widget(st.cursor)  # centred on the ROI
        assert abs(cx - view.width() / 2) < view.width() * 0.3 and abs(cy - view.height() / 2) < view.height() * 0.3
        assert "liver" in view.annotation.GetText(3)
    st.clear_highlight()


def test_highlight_dims_other_labels_and_clear_restores_everything(case):
    st = case.state
    st.set_cursor((-48, -18, -14))  # spleen centre: the axial slice shows the spleen
    spleen = np.asarray(st.table.by_id(SPLEEN).colour, dtype=float)

    def spleen_mean():
        return case.grab("axial").astype(float)[mask_pixels(case, "axial", SPLEEN)].mean(axis=0)

    visible = st.visible
    st.set_visible_labels([])
    ct_mean = spleen_mean()
    st.set_visible_labels(visible)
    normal = spleen_mean()
    before = {p: case.grab(p) for p in case.slices}
    cameras = {p: v.renderer.GetActiveCamera().GetParallelScale() for p, v in case.slices.items()}
    cursor = st.cursor.copy()
    st.set_highlight([LIVER])
    st.set_cursor(cursor)  # back to the spleen slice; the highlight stays
    case.axial.reset_view()  # the highlight zoomed onto the liver; show the whole slice
    dimmed = spleen_mean()
    case.grab("axial", save_as="highlight_dimmed")
    weight = lambda m: np.mean((m - ct_mean)[[0, 2]] / (spleen - ct_mean)[[0, 2]])  # noqa: E731
    assert weight(normal) == pytest.approx(st.opacity, abs=0.08)
    assert weight(dimmed) == pytest.approx(st.opacity * DIM_FACTOR, abs=0.06)
    st.clear_highlight()
    np.testing.assert_allclose(st.cursor, cursor)
    for plane, view in case.slices.items():
        assert view.renderer.GetActiveCamera().GetParallelScale() == pytest.approx(cameras[plane])
        assert not view.roi_box.actor.GetVisibility()
        changed = np.mean(np.any(case.grab(plane) != before[plane], axis=-1))
        assert changed < 0.001, f"{plane} not restored ({changed:.3%} of pixels differ)"
