"""The CPU side of a slice picture: window/level, overlay blend table, upsampling, slab cache,
and how the loader reads a case folder (no display needed)."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.overlay import HIGHLIGHT, OUTLINE, OverlayStyle, compose_codes
from viewer.slab_cache import SlabCache
from viewer.slice_image import blend_codes, upsample_linear, window_grey

NEEDS_DISPLAY = False


def test_window_grey_follows_the_window_level_formula():
    hu = np.array([[-1000, -160, 40, 240, 3000, -32768, 32767]], dtype=np.int16)
    grey = window_grey(hu, 400, 40)
    expected = np.clip((hu.astype(float) - (40 - 200)) / 400 * 255, 0, 255)
    np.testing.assert_allclose(grey, np.rint(expected), atol=0.51)
    assert grey.dtype == np.uint8


def test_blend_table_is_alpha_blending_of_each_code(state_like):
    style = OverlayStyle.from_state(state_like)
    table = style.blend_table()
    grey = np.array([[0, 100, 200, 255]], dtype=np.uint8)
    codes = np.array([[0, 5, OUTLINE + 5, HIGHLIGHT]], dtype=np.uint16)
    out = np.zeros((1, 4, 4), dtype=np.uint8)
    blend_codes(grey, codes, table, out)
    colour = np.asarray(state_like.colour(5), dtype=float)
    a = style.fill[5, 3] / 255
    assert tuple(out[0, 0]) == (0, 0, 0, 255)  # code 0: the CT alone
    np.testing.assert_allclose(out[0, 1, :3], np.rint(100 * (1 - a) + colour * a), atol=1)
    assert tuple(out[0, 2, :3]) == tuple(int(c) for c in colour)  # outline: opaque label colour
    assert tuple(out[0, 3, :3]) == tuple(state_like.highlight_rgb)
    assert np.all(out[..., 3] == 255)


def test_codes_mark_fill_outline_and_ring(state_like):
    state_like.set_highlight([5])
    lab = np.zeros((10, 10), dtype=np.uint8)
    lab[2:8, 2:8] = 5
    codes = compose_codes(lab, None, OverlayStyle.from_state(state_like))
    assert codes[5, 5] == 5 and codes[2, 5] == HIGHLIGHT and codes[1, 5] == HIGHLIGHT and codes[0, 0] == 0


def test_upsample_linear_keeps_pixel_centres():
    img = np.array([[0, 100], [200, 250]], dtype=np.uint8)
    up = upsample_linear(img, 4)
    assert up.shape == (8, 8)
    assert up[0, 0] == 0 and up[7, 7] == 250  # edges clamp to the outer pixels
    # fine column c sits at coarse position (c + 0.5) / 4 - 0.5: c = 3 -> 0.375, c = 4 -> 0.625
    assert int(up[0, 3]) in (37, 38) and int(up[0, 4]) in (62, 63)
    assert up[0, 1] == 0  # before the first pixel centre: clamped


@pytest.mark.parametrize("order", ["C", "F"])
def test_slab_cache_returns_the_same_slices_as_numpy(order):
    vol = np.asarray(np.random.default_rng(0).integers(0, 1000, (20, 16, 12)), dtype=np.int16, order=order)
    for axis in range(3):
        cache = SlabCache(vol, axis, depth=4)
        for k in list(range(vol.shape[axis])) + list(range(vol.shape[axis] - 1, -1, -1)):
            np.testing.assert_array_equal(cache.get(k), np.take(vol, k, axis=axis))
    assert SlabCache(vol, 0 if order == "F" else 2).strided


def test_case_folder_opens_with_its_own_masks(tmp_path):
    from app.load_worker import resolve_request

    (tmp_path / "ct.nii.gz").write_bytes(b"")
    (tmp_path / "organs.nii.gz").write_bytes(b"")
    (tmp_path / "parts.nii.gz").write_bytes(b"")
    req = resolve_request(tmp_path)
    assert (req.ct.name, req.masks.name, req.parts.name, req.scheme) == ("ct.nii.gz", "organs.nii.gz",
                                                                         "parts.nii.gz", "merged")
    other = resolve_request(tmp_path, tmp_path / "seg.nii.gz")  # --masks wins, scheme detected
    assert other.masks.name == "seg.nii.gz" and other.parts is None and other.scheme == "auto"
    dicom = resolve_request(tmp_path / "nothing_here")
    assert dicom.ct == tmp_path / "nothing_here" and dicom.masks is None


@pytest.fixture
def state_like():
    from viewer.scene_state import SceneState
    from viewer_cases import make_case

    st = SceneState()
    st.set_case(*make_case("ras", shape_ras=(24, 20, 12)))
    return st
