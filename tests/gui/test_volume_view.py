"""3D view: lazy cached surfaces, anterior camera, ROI brought forward, volume rendering."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from gui_helpers import centroid, colour_mask
from viewer_cases import KIDNEY_R, LIVER, SPLEEN


@pytest.fixture
def case(viewer, synthetic):
    viewer.load(*synthetic("lps"))
    return viewer


def test_surfaces_build_lazily_only_for_visible_labels_and_are_cached(case, qtbot):
    st, vol = case.state, case.volume
    st.set_case(st.ct, st.masks)  # a fresh cache, and no event-loop turn before the next line
    st.set_visible_labels([LIVER, SPLEEN])
    assert vol.surfaces.cached_ids() == []
    with qtbot.waitSignal(vol.surfaces_ready, timeout=20000):
        pass  # built on idle event-loop turns
    assert vol.surfaces.cached_ids() == [SPLEEN, LIVER]  # nothing else was built
    first = vol.surfaces.get(LIVER)
    assert vol.surfaces.get(LIVER) is first  # cached
    st.set_label_visible(KIDNEY_R, True)
    assert KIDNEY_R not in vol.surfaces  # not built inside the event handler
    vol.build_visible_now()
    assert KIDNEY_R in vol.surfaces and vol.actors[KIDNEY_R].GetVisibility()
    # the surface lies where the mask is, in world millimetres
    b = first.GetBounds()
    truth = np.argwhere(st.masks.organs == LIVER)
    world = st.ct.voxel_to_world(truth)
    assert b[0] == pytest.approx(world[:, 0].min(), abs=2.5) and b[1] == pytest.approx(world[:, 0].max(), abs=2.5)
    assert b[4] == pytest.approx(world[:, 2].min(), abs=3.5) and b[5] == pytest.approx(world[:, 2].max(), abs=3.5)


def test_3d_shows_the_patient_from_the_front_and_brings_the_roi_forward(case):
    st, vol = case.state, case.volume
    st.set_visible_labels([LIVER, SPLEEN])
    st.set_label_colour(LIVER, (255, 0, 255))
    st.set_label_colour(SPLEEN, (0, 255, 0))
    vol.build_visible_now()
    img = case.grab("3d", save_as="volume_front")
    liver = colour_mask(img, (255, 0, 255), 90) & (img[..., 1] < 80)
    spleen = colour_mask(img, (0, 255, 0), 90) & (img[..., 0] < 80)
    cl, cs = centroid(liver), centroid(spleen)
    assert cl is not None and cs is not None
    assert cl[0] < cs[0]  # patient right (liver) on screen left, as in 3D Slicer's anterior view
    assert cl[1] < cs[1]  # liver is superior: higher on screen
    marker = vol.marker
    assert marker.GetEnabled()
    cam = vol.renderer.GetActiveCamera()
    before = cam.GetPosition(), cam.GetFocalPoint()
    st.set_highlight([LIVER])
    QApplication.processEvents()
    assert vol.actors[LIVER].GetProperty().GetOpacity() == 1.0
    assert vol.actors[SPLEEN].GetProperty().GetOpacity() < 0.2
    roi = st.roi
    focal = np.asarray(cam.GetFocalPoint())
    np.testing.assert_allclose(focal, (roi.world_min + roi.world_max) / 2, atol=1e-6)
    hl = case.grab("3d", save_as="volume_highlight")
    assert (colour_mask(hl, (255, 0, 255), 90) & (hl[..., 1] < 80)).sum() > liver.sum()  # zoomed onto it
    st.clear_highlight()
    assert vol.actors[SPLEEN].GetProperty().GetOpacity() == 1.0
    np.testing.assert_allclose(cam.GetPosition(), before[0])
    np.testing.assert_allclose(cam.GetFocalPoint(), before[1])


def test_volume_rendering_is_off_by_default_and_toggles(case):
    st, vol = case.state, case.volume
    st.set_visible_labels([])
    assert not st.volume_rendering and not vol.ct_volume.volume.GetVisibility()
    empty = case.grab("3d")
    st.set_volume_rendering(True)
    shown = case.grab("3d", save_as="volume_rendering")
    assert vol.ct_volume.volume.GetVisibility()
    assert np.mean(np.any(np.abs(shown.astype(int) - empty) > 30, axis=-1)) > 0.01  # bone appears
    st.set_volume_rendering(False)
    assert vol.ct_volume._image is None  # the shared CT buffer is released


def test_screenshots_are_native_resolution_png(case, tmp_path):
    from PIL import Image

    from viewer.screenshot import save_screenshot

    for name, view in (("axial", case.axial), ("3d", case.volume)):
        path = save_screenshot(view.GetRenderWindow(), tmp_path / f"{name}.png")
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.size == tuple(view.GetRenderWindow().GetSize())


def test_substructures_show_in_2d_and_3d_instead_of_their_organ(viewer, synthetic):
    import dataclasses

    ct, masks = synthetic("ras")
    x = ct.voxel_to_world(np.argwhere(np.ones(ct.shape, bool)))[:, 0].reshape(ct.shape)
    parts = np.where(masks.organs == LIVER, np.where(x > 45, 107, 108), 0).astype(np.uint8)  # two segments
    viewer.load(ct, dataclasses.replace(masks, parts=parts))
    st, vol = viewer.state, viewer.volume
    assert {107, 108} <= set(st.present_ids) and 107 not in st.visible  # parts start hidden
    st.set_visible_labels([LIVER, 107, 108])
    st.set_label_colour(107, (255, 0, 255))
    st.set_label_colour(108, (0, 255, 0))
    st.set_opacity(1.0)
    st.set_outline(False)
    st.set_cursor((45, 12, 18))
    vol.build_visible_now()
    assert 107 in vol.part_surfaces and 108 in vol.part_surfaces
    assert not vol.actors[LIVER].GetVisibility() and vol.actors[107].GetVisibility()
    img3d = viewer.grab("3d", save_as="parts")
    axial = viewer.grab("axial", save_as="parts")
    for img in (img3d, axial):
        seg7 = centroid(colour_mask(img, (255, 0, 255), 90 if img is img3d else 2) & (img[..., 1] < 80))
        seg8 = centroid(colour_mask(img, (0, 255, 0), 90 if img is img3d else 2) & (img[..., 0] < 80))
        assert seg7 is not None and seg8 is not None
        assert seg7[0] < seg8[0]  # segment with x > 45 (more to the patient's right) on screen left
