"""Slice views on rendered pixels: orientation for every storage order, letters, crosshair."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from gui_helpers import centroid, colour_mask
from viewer_cases import KIDNEY_R, LIVER, SPLEEN
from viewer.vtk_props import PLANE_RGB

MAGENTA, GREEN = (255, 0, 255), (0, 255, 0)
LETTERS = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}
# (label on magenta, label on green, cursor): which pair each view shows on one slice
PAIRS = {"axial": (LIVER, SPLEEN, (0, 0, 0)), "coronal": (LIVER, SPLEEN, (0, -8, 0)),
         "sagittal": (LIVER, KIDNEY_R, (30, 0, 0))}


def isolate(state, a, b=None) -> None:
    """Show only labels a (magenta) and b (green), opaque fill, no outline."""
    state.set_visible_labels([a] + ([b] if b else []))
    state.set_label_colour(a, MAGENTA)
    if b:
        state.set_label_colour(b, GREEN)
    state.set_opacity(1.0)
    state.set_outline(False)


@pytest.mark.parametrize("storage", ["ras", "lps", "kji"])
def test_orientation_on_screen_for_every_storage_order(viewer, synthetic, storage):
    viewer.load(*synthetic(storage))
    st = viewer.state
    for plane, view in viewer.slices.items():
        a, b, cursor = PAIRS[plane]
        st.set_cursor(cursor)
        isolate(st, a, b)
        img = viewer.grab(plane, save_as=f"orientation_{storage}")
        ca, cb = centroid(colour_mask(img, MAGENTA, 2)), centroid(colour_mask(img, GREEN, 2))
        assert ca is not None and cb is not None, f"{plane}: organs not drawn"
        # axial/coronal: liver (patient right) left of spleen; sagittal: liver (anterior) left of kidney
        assert ca[0] < cb[0] - 20, f"{plane}: {ca} vs {cb}"
        # axial: liver is anterior (up); coronal/sagittal: liver is superior (up)
        assert ca[1] < cb[1] - 10, f"{plane}: {ca} vs {cb}"
        left, right, top, bottom = LETTERS[plane]
        assert [view.letters[s].GetInput() for s in ("left", "right", "top", "bottom")] == [left, right, top, bottom]


def test_orientation_letters_are_drawn(viewer, synthetic):
    viewer.load(*synthetic("ras"))
    view = viewer.axial
    with_letters = viewer.grab("axial")
    for t in view.letters.values():
        t.VisibilityOff()
    without = viewer.grab("axial")
    h, w, _ = with_letters.shape
    changed = np.any(with_letters != without, axis=-1)
    assert changed[h // 2 - 15:h // 2 + 15, :30].any()  # left edge: R
    assert changed[h // 2 - 15:h // 2 + 15, -30:].any()  # right edge: L
    assert changed[:30, w // 2 - 15:w // 2 + 15].any()  # top: A
    assert changed[-30:, w // 2 - 15:w // 2 + 15].any()  # bottom: P


def line_x(img: np.ndarray, rgb, band: slice) -> float | None:
    """Mean column of a vertical crosshair line of colour rgb within rows ``band``."""
    m = colour_mask(img[band], [round(c * 255) for c in rgb], 3)
    cols = np.nonzero(m.sum(axis=0) > 0.5 * m.shape[0])[0]
    return float(cols.mean()) if len(cols) else None


def line_y(img: np.ndarray, rgb, band: slice) -> float | None:
    m = colour_mask(img[:, band], [round(c * 255) for c in rgb], 3)
    rows = np.nonzero(m.sum(axis=1) > 0.5 * m.shape[1])[0]
    return float(rows.mean()) if len(rows) else None


def test_click_moves_crosshair_and_the_other_views(viewer, synthetic, qtbot):
    viewer.load(*synthetic("lps"))
    st = viewer.state
    before = {p: viewer.grab(p) for p in ("coronal", "sagittal")}
    target = np.array([41.0, 21.0, st.cursor[2]])  # right-anterior voxel centre, same axial slice
    x, y = viewer.axial.world_to_widget(target)
    qtbot.mouseClick(viewer.axial, Qt.MouseButton.LeftButton, pos=QPoint(round(x), round(y)))
    np.testing.assert_allclose(st.cursor[:2], target[:2], atol=2.5)  # within about a pixel
    assert viewer.coronal.slice_index == viewer.coronal.geometry.slice_index(target)
    assert viewer.sagittal.slice_index == viewer.sagittal.geometry.slice_index(target)
    after = {p: viewer.grab(p, save_as="click") for p in ("coronal", "sagittal")}
    for plane in ("coronal", "sagittal"):
        assert np.mean(np.any(after[plane] != before[plane], axis=-1)) > 0.02, f"{plane} did not change"
    # the coronal view's vertical line (sagittal plane, yellow) now sits where the cursor is
    h = after["coronal"].shape[0]
    xs = line_x(after["coronal"], PLANE_RGB["sagittal"], slice(h // 2 - 40, h // 2 - 10))
    expected = viewer.coronal.world_to_widget(st.cursor)[0]
    assert xs is not None and abs(xs - expected) <= 2.0
    xs_before = line_x(before["coronal"], PLANE_RGB["sagittal"], slice(h // 2 - 40, h // 2 - 10))
    assert xs_before is not None and abs(xs - xs_before) > 20  # it moved to patient right (screen left)


def test_ctrl_drag_navigates_continuously(viewer, synthetic, qtbot):
    viewer.load(*synthetic("ras"))
    st, view = viewer.state, viewer.coronal
    start = st.cursor.copy()
    x0, y0 = view.world_to_widget(st.cursor)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, QPoint(round(x0), round(y0)))
    qtbot.mouseMove(view, QPoint(round(x0) + 30, round(y0) - 20))
    mid = st.cursor.copy()
    qtbot.mouseMove(view, QPoint(round(x0) + 60, round(y0) - 40))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier,
                       QPoint(round(x0) + 60, round(y0) - 40))
    # coronal: screen right = patient left (-x), screen up = superior (+z)
    assert st.cursor[0] < mid[0] < start[0]
    assert st.cursor[2] > mid[2] > start[2]
    assert st.window == 400 and st.level == 40  # Ctrl+drag is not window/level
