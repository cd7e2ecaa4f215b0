"""The minimal workstation window: opening cases (CLI, menu paths, drag and drop), worker-thread
loading with progress, failed loads that keep the case, the label list, screenshots."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from gui_helpers import ARTIFACTS, colour_mask
from viewer_cases import LIVER, SPLEEN, write_case_folder


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    return {name: write_case_folder(root / name, storage, shift=shift)
            for name, storage, shift in (("a", "ras", (0, 0, 0)), ("b", "lps", (6, 0, 0)))}


@pytest.fixture(scope="module")
def window(qapp, cases):
    from PySide6.QtTest import QTest

    from app.main import build_window, parse_args

    win = build_window(parse_args([str(cases["a"])]))  # the command line's PATH argument
    assert win.loading and not win.progress.isHidden()  # loading runs on the loader thread
    win.show()
    assert QTest.qWaitForWindowExposed(win, 10000)
    win.wait_for_load()
    yield win
    win.close()


def wait_loaded(qtbot, win) -> None:
    qtbot.waitUntil(lambda: not win.loading, timeout=30000)
    QApplication.processEvents()


def test_command_line_case_folder_opens_ct_with_masks(window, cases):
    st = window.state
    assert st.ct is not None and st.masks is not None
    assert Path(st.ct.source_path).name == "ct.nii.gz"
    assert LIVER in st.present_ids and LIVER in window.labels.items
    assert st.masks.details["scheme"] == "merged"  # a case folder's organs file is read as ours
    assert window.labels.items[LIVER].text(0) == "liver"
    assert window.progress.isHidden()
    assert "ct.nii.gz" in window.windowTitle()
    window.render_all()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    window.save_window_png(ARTIFACTS / "main_window.png")
    saved = window.save_screenshots(ARTIFACTS, prefix="main_window_")
    assert sorted(saved) == ["3d", "axial", "coronal", "sagittal"]


def test_failed_loads_keep_the_case_and_say_why(window, qtbot, tmp_path):
    st = window.state
    ct_before, masks_before = st.ct, st.masks
    img_before = _grab(window.axial)
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b this is not a gzip stream")
    for path, words in ((tmp_path / "missing.nii.gz", "does not exist"), (bad, "broken.nii.gz")):
        assert window.open_path(path)
        wait_loaded(qtbot, window)
        assert window.last_error and str(path.name) in window.last_error, window.last_error
        assert words in window.last_error
        assert window.error_box is not None and window.error_box.isVisible()
        assert st.ct is ct_before and st.masks is masks_before
        window.error_box.close()
    assert np.array_equal(_grab(window.axial), img_before)  # the views still show the case
    # masks on the wrong grid are refused with the file named
    other = tmp_path / "wrong_grid.nii.gz"
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)), other)
    assert window.open_masks(other)
    wait_loaded(qtbot, window)
    assert "wrong_grid.nii.gz" in window.last_error and st.masks is masks_before
    window.error_box.close()


def _grab(view):
    from viewer.screenshot import grab

    return grab(view.GetRenderWindow())


def test_drag_and_drop_opens_a_case(window, cases, qtbot):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(cases["b"]))])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    wait_loaded(qtbot, window)
    assert Path(window.state.ct.source_path).parent.name == "b"
    assert window.state.masks is not None


def test_label_list_toggles_labels_and_highlights(window, qtbot):
    st = window.state
    st.set_cursor((45, 12, 18))
    st.set_opacity(1.0)
    st.set_outline(False)
    liver_rgb = st.table.by_id(LIVER).colour
    assert colour_mask(_grab(window.axial), liver_rgb, 1).sum() > 200
    item = window.labels.items[LIVER]
    item.setCheckState(0, Qt.CheckState.Unchecked)  # what a click on the check box does
    assert LIVER not in st.visible
    assert colour_mask(_grab(window.axial), liver_rgb, 1).sum() == 0
    item.setCheckState(0, Qt.CheckState.Checked)
    assert LIVER in st.visible
    window.labels.opacity.setValue(30)
    assert st.opacity == pytest.approx(0.3)
    window.labels.tree.scrollToItem(window.labels.items[SPLEEN])
    rect = window.labels.tree.visualItemRect(window.labels.items[SPLEEN])
    qtbot.mouseClick(window.labels.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(window.labels.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert st.highlight == (SPLEEN,)
    assert window.labels.items[SPLEEN].font(0).bold()
    QApplication.processEvents()
    window.save_window_png(ARTIFACTS / "main_window_highlight.png")
    window.labels.clear.click()
    assert st.highlight == () and not window.labels.items[SPLEEN].font(0).bold()


def test_masks_menu_path_loads_masks_for_the_shown_ct(window, cases, qtbot):
    from app.main_window import MainWindow  # noqa: F401  (the window under test)

    window.open_path(cases["a"] / "ct.nii.gz")  # a CT alone: no masks
    wait_loaded(qtbot, window)
    assert window.state.masks is None and window.labels.items == {}
    ct = window.state.ct
    window.open_masks(cases["a"] / "organs.nii.gz")
    wait_loaded(qtbot, window)
    assert window.state.ct is ct and window.state.masks is not None
    assert LIVER in window.labels.items
