"""Mouse and keys in the slice views, checked on state and on rendered pixels."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from gui_helpers import centroid, colour_mask
from viewer_cases import LIVER

MAGENTA = (255, 0, 255)


def wheel(view, notches: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    pos = QPointF(view.width() / 2, view.height() / 2)
    ev = QWheelEvent(pos, view.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * notches),
                     Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view, ev)
    QApplication.processEvents()


def drag(qtbot, view, button, start, delta, modifiers=Qt.KeyboardModifier.NoModifier, steps=5) -> None:
    x0, y0 = start
    qtbot.mousePress(view, button, modifiers, QPoint(x0, y0))
    for s in range(1, steps + 1):
        qtbot.mouseMove(view, QPoint(x0 + delta[0] * s // steps, y0 + delta[1] * s // steps))
    qtbot.mouseRelease(view, button, modifiers, QPoint(x0 + delta[0], y0 + delta[1]))
    QApplication.processEvents()


def liver_centre(st) -> np.ndarray:
    from viewer.roi_highlight import compute_roi

    return compute_roi([LIVER], st.ct.affine, st.organ_boxes, None).centre_world


@pytest.fixture
def case(viewer, synthetic):
    viewer.load(*synthetic("lps"))
    return viewer


def test_wheel_and_arrows_change_one_slice_and_the_picture(case):
    st, view = case.state, case.axial
    k0, img0 = view.slice_index, case.grab("axial")
    z0 = st.cursor[2]
    wheel(view, +1)
    assert view.slice_index != k0
    assert st.cursor[2] == pytest.approx(z0 + 3.0)  # one 3 mm slice toward superior
    assert np.mean(np.any(case.grab("axial") != img0, axis=-1)) > 0.01
    wheel(view, -2)
    assert st.cursor[2] == pytest.approx(z0 - 3.0)
    view.setFocus()
    for key, dz in ((Qt.Key.Key_Up, 3.0), (Qt.Key.Key_Down, -3.0), (Qt.Key.Key_PageUp, 30.0)):
        before = st.cursor[2]
        QApplication.sendEvent(view, _key(key))
        assert st.cursor[2] == pytest.approx(before + dz)
    QApplication.sendEvent(view, _key(Qt.Key.Key_End))
    assert view.slice_index in (0, view.geometry.n_slices - 1)
    assert st.cursor[2] == pytest.approx(st.ct.voxel_to_world([[0, 0, st.ct.shape[2] - 1]])[0][2])


def test_wheel_in_one_view_moves_the_crosshair_in_the_others(case):
    st = case.state
    k_cor, k_sag = case.coronal.slice_index, case.sagittal.slice_index
    y_before = case.coronal.world_to_widget(st.cursor)[1]
    wheel(case.axial, +3)
    assert (case.coronal.slice_index, case.sagittal.slice_index) == (k_cor, k_sag)  # their slices stay
    y_after = case.coronal.world_to_widget(st.cursor)[1]
    assert y_after < y_before - 5  # 9 mm superior: the red line moved up on screen


def _key(key, text=""):
    from PySide6.QtGui import QKeyEvent

    return QKeyEvent(QKeyEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier, text)


def test_number_keys_select_presets(case):
    st = case.state
    expected = {"1": (400, 40), "2": (150, 90), "3": (1500, -600), "4": (2500, 480), "5": (80, 40)}
    for text, wl in expected.items():
        QApplication.sendEvent(case.coronal, _key(getattr(Qt.Key, f"Key_{text}"), text))
        assert (st.window, st.level) == wl


def grey_at(img, xy) -> float:
    x, y = (int(round(c)) for c in xy)
    return float(img[y - 2:y + 3, x - 2:x + 3].mean())


def test_window_level_drag_changes_grey_values(case, qtbot):
    st, view = case.state, case.axial
    centre = liver_centre(st)
    st.set_visible_labels([])  # look at the CT itself
    st.set_cursor(centre)
    liver_xy = view.world_to_widget(centre)
    g0 = grey_at(case.grab("axial"), liver_xy)
    drag(qtbot, view, Qt.MouseButton.LeftButton, (40, 40), (50, -25))
    assert st.window == pytest.approx(400 + 50 * 400 / 250)  # right: wider
    assert st.level == pytest.approx(40 - 25 * 400 / 250)  # up: lower level, brighter
    g1 = grey_at(case.grab("axial", save_as="wl_drag"), liver_xy)
    hu = 60  # synthetic liver (+-8 noise)
    expect = lambda w, lv: np.clip((hu - (lv - w / 2)) / w * 255, 0, 255)  # noqa: E731
    assert g0 == pytest.approx(expect(400, 40), abs=8)
    assert g1 == pytest.approx(expect(st.window, st.level), abs=8)
    assert st.cursor == pytest.approx(centre)  # a drag is not a click


def test_right_drag_zooms_shift_and_middle_drag_pan_r_resets(case, qtbot):
    st, view = case.state, case.axial
    st.set_cursor(liver_centre(st))
    st.set_visible_labels([LIVER])
    st.set_label_colour(LIVER, MAGENTA)
    st.set_opacity(1.0)
    st.set_outline(False)
    fitted = view.renderer.GetActiveCamera().GetParallelScale()
    area0 = colour_mask(case.grab("axial"), MAGENTA, 2).sum()
    c0 = centroid(colour_mask(case.grab("axial"), MAGENTA, 2))
    drag(qtbot, view, Qt.MouseButton.RightButton, (200, 200), (0, -40))
    assert view.renderer.GetActiveCamera().GetParallelScale() == pytest.approx(fitted / 1.01 ** 40, rel=1e-3)
    area1 = colour_mask(case.grab("axial", save_as="zoomed"), MAGENTA, 2).sum()
    assert area1 > area0 * 1.8  # 1.49x linear zoom -> ~2.2x area (minus what leaves the view)
    drag(qtbot, view, Qt.MouseButton.LeftButton, (100, 100), (60, 0), Qt.KeyboardModifier.ShiftModifier)
    drag(qtbot, view, Qt.MouseButton.MiddleButton, (100, 100), (0, 30))
    assert st.window == 400  # Shift+left is pan, not window/level
    QApplication.sendEvent(view, _key(Qt.Key.Key_R, "r"))
    assert view.renderer.GetActiveCamera().GetParallelScale() == pytest.approx(fitted)
    c_reset = centroid(colour_mask(case.grab("axial"), MAGENTA, 2))
    assert c_reset == pytest.approx(c0, abs=1.0)


def test_pan_moves_the_picture_with_the_mouse(case, qtbot):
    st, view = case.state, case.axial
    st.set_visible_labels([LIVER])
    st.set_label_colour(LIVER, MAGENTA)
    st.set_opacity(1.0)
    st.set_cursor(liver_centre(st))
    view.reset_view()
    c0 = centroid(colour_mask(case.grab("axial"), MAGENTA, 2))
    drag(qtbot, view, Qt.MouseButton.MiddleButton, (150, 150), (40, 25))
    c1 = centroid(colour_mask(case.grab("axial"), MAGENTA, 2))
    assert c1[0] - c0[0] == pytest.approx(40, abs=2) and c1[1] - c0[1] == pytest.approx(25, abs=2)


def test_probe_shows_position_hu_and_organ(case, qtbot):
    st, view = case.state, case.coronal
    centre = liver_centre(st)
    st.set_cursor(centre)
    results = []
    view.probed.connect(results.append)
    x, y = view.world_to_widget(centre)
    qtbot.mouseMove(view, QPoint(round(x), round(y)))
    QApplication.processEvents()
    res = results[-1]
    assert res is not None and res.organ == "liver" and res.inside
    vox = tuple(np.rint(st.ct.world_to_voxel(res.world)[0]).astype(int))
    assert res.hu == st.ct.hu[vox]
    assert "liver" in view.annotation.GetText(1) and "HU" in view.annotation.GetText(1)
    view.probed.disconnect(results.append)
