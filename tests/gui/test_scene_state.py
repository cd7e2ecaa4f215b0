"""The Qt-free scene state, overlay composition, probe and ROI maths (no display needed)."""
from __future__ import annotations

import numpy as np
import pytest

from viewer_cases import AORTA, LIVER, SPLEEN, make_case
from viewer.overlay import OverlayStyle, compose
from viewer.probe import probe
from viewer.scene_state import SceneState

NEEDS_DISPLAY = False


@pytest.fixture
def state():
    st = SceneState()
    st.set_case(*make_case("lps"))
    return st


def test_events_fire_once_per_change_and_only_on_change(state):
    fired = []
    for name in ("cursor", "window_level", "labels"):
        state.events.connect(name, lambda n=name: fired.append(n))
    state.set_window_level(150, 90)
    state.set_window_level(150, 90)
    state.set_label_visible(LIVER, False)
    state.set_label_visible(LIVER, False)
    state.set_cursor(state.cursor + 3)
    assert fired == ["window_level", "labels", "cursor"]
    with pytest.raises(ValueError):
        state.events.connect("nonsense", lambda: None)


def test_cursor_is_clamped_inside_the_volume(state):
    state.set_cursor([1e6, -1e6, 0])
    vox = state.ct.world_to_voxel(state.cursor)[0]
    assert np.all(vox >= -1e-6) and np.all(vox <= np.asarray(state.ct.shape) - 1 + 1e-6)


def test_highlight_centres_dims_and_clear_restores(state):
    state.set_label_visible(LIVER, False)  # a hidden ROI is shown while highlighted
    before_cursor, before_visible = state.cursor.copy(), state.visible
    roi = state.set_highlight(["liver"])
    assert roi is not None and roi.label_ids == (LIVER,)
    vox = np.rint(state.ct.world_to_voxel(state.cursor)[0]).astype(int)
    assert state.masks.organs[tuple(vox)] == LIVER  # the cursor sits inside the organ
    assert LIVER in state.visible
    truth = np.argwhere(state.masks.organs == LIVER)
    np.testing.assert_array_equal(roi.voxel_min, truth.min(0))
    np.testing.assert_array_equal(roi.voxel_max, truth.max(0))
    assert roi.n_voxels == len(truth)
    state.clear_highlight()
    np.testing.assert_allclose(state.cursor, before_cursor)
    assert state.visible == before_visible and state.roi is None and state.highlight == ()


def test_highlight_of_absent_label_changes_nothing(state):
    cursor = state.cursor.copy()
    assert state.set_highlight([17]) is None  # thyroid: not in this case
    np.testing.assert_allclose(state.cursor, cursor)
    with pytest.raises(KeyError):
        state.set_highlight(["no_such_organ"])


def test_overlay_fill_outline_and_roi_ring(state):
    lab = np.zeros((12, 12), dtype=np.uint8)
    lab[3:9, 3:9] = LIVER
    lab[0:2, 0:2] = SPLEEN
    state.set_opacity(0.5)
    state.set_label_visible(SPLEEN, False)
    rgba = compose(lab, None, OverlayStyle.from_state(state))
    liver_rgb = state.table.by_id(LIVER).colour
    assert tuple(rgba[5, 5, :3]) == liver_rgb and rgba[5, 5, 3] == 128  # fill at 50 %
    assert tuple(rgba[3, 5]) == (*liver_rgb, 255)  # outline opaque
    assert rgba[0, 0, 3] == 0  # hidden label: nothing drawn
    assert rgba[10, 10, 3] == 0  # background
    state.set_highlight([LIVER])
    rgba = compose(lab, None, OverlayStyle.from_state(state))
    hl = (*state.highlight_rgb, 255)
    assert tuple(rgba[3, 5]) == hl and tuple(rgba[2, 5]) == hl  # ring on both sides of the edge
    assert tuple(rgba[5, 5, :3]) == liver_rgb  # ROI fill keeps its colour
    state.set_fill(False)
    rgba = compose(lab, None, OverlayStyle.from_state(state))
    assert rgba[5, 5, 3] == 0


def test_overlay_upsampling_keeps_outline_thin(state):
    lab = np.zeros((6, 6), dtype=np.uint8)
    lab[1:5, 1:5] = AORTA
    rgba = compose(lab, None, OverlayStyle.from_state(state), factor=4)
    assert rgba.shape == (24, 24, 4)
    edge = rgba[:, :, 3] == 255
    assert edge[4, 8] and not edge[5, 8]  # one fine pixel thick, not one CT voxel (4 px)


def test_probe_reports_hu_and_organ(state):
    centre = state.set_highlight([LIVER]).centre_world
    res = probe(state, centre)
    vox = tuple(np.rint(state.ct.world_to_voxel(centre)[0]).astype(int))
    assert res.inside and res.organ == "liver" and res.hu == int(state.ct.hu[vox])
    assert "liver" in res.text() and "HU" in res.text()
    outside = probe(state, np.array([1e4, 0, 0]))
    assert not outside.inside and "outside" in outside.text()


def test_label_volume_ml_matches_voxel_count(state):
    voxel_ml = abs(np.linalg.det(state.ct.affine[:3, :3])) / 1000
    assert state.label_volume_ml(LIVER) == pytest.approx((state.masks.organs == LIVER).sum() * voxel_ml)
