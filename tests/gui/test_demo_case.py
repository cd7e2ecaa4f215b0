"""The bundled demo case, opened the way the README's main command opens it, read like a
radiologist would: scroll, window, toggle labels, highlight the pancreatic head, screenshots."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from gui_helpers import ARTIFACTS, colour_mask

DEMO = ARTIFACTS.parents[1] / "resources" / "demo_case"
PANCREAS, PANCREAS_HEAD = 7, 111


@pytest.fixture(scope="module")
def demo(qapp):
    if not (DEMO / "ct.nii.gz").exists() or not (DEMO / "organs.nii.gz").exists():
        pytest.skip(f"demo case absent: {DEMO}")
    from PySide6.QtTest import QTest

    from app.main import build_window, parse_args

    win = build_window(parse_args(["--demo"]))
    win.show()
    assert QTest.qWaitForWindowExposed(win, 10000)
    win.wait_for_load()
    assert win.last_error is None, win.last_error
    # what the window showed on opening, before any test here toggles labels (tests run in any order)
    win.visible_at_open = win.state.visible
    yield win
    win.close()


def test_demo_opens_with_organs_and_parts(demo):
    st = demo.state
    assert st.masks.parts is not None and PANCREAS_HEAD in st.present_ids
    assert PANCREAS in demo.visible_at_open and PANCREAS_HEAD not in demo.visible_at_open  # parts start hidden
    assert demo.labels.items[PANCREAS_HEAD].parent() is demo.labels.items[PANCREAS]  # listed under it


def test_demo_scroll_window_toggle_highlight_and_screenshots(demo):
    st, axial = demo.state, demo.axial
    k0 = axial.slice_index
    pos = QPointF(axial.width() / 2, axial.height() / 2)
    for _ in range(3):
        QApplication.sendEvent(axial, QWheelEvent(pos, axial.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120),
                                                  Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                                                  Qt.ScrollPhase.NoScrollPhase, False))
    assert axial.slice_index == k0 + 3
    st.set_window_level(150, 90)  # liver window for a hypodense lesion
    st.set_label_visible(PANCREAS_HEAD, True)
    roi = st.set_highlight(["pancreas_head"])  # as an IIR round names it
    assert roi is not None
    vox = np.rint(st.ct.world_to_voxel(st.cursor)[0]).astype(int)
    assert st.masks.parts[tuple(vox)] == PANCREAS_HEAD
    demo.volume.build_visible_now()
    saved = demo.save_screenshots(ARTIFACTS, prefix="demo_pancreas_head_")
    demo.save_window_png(ARTIFACTS / "demo_window_pancreas_head.png")
    for plane in ("axial", "coronal", "sagittal"):
        from PIL import Image

        img = np.asarray(Image.open(saved[plane]).convert("RGB"))
        assert colour_mask(img, st.highlight_rgb, 2).sum() > 50, f"{plane}: no ROI ring in the key image"
    st.clear_highlight()
    assert st.highlight == ()
