"""A volume that does not look like CT opens for viewing with a red banner; Analyze refuses it with
the reason and offers "Analyze anyway"; the override runs and run.json records it."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from workstation_helpers import wait_idle


@pytest.fixture
def mr_case(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(0)
    shape = (48, 40, 24)
    i, j, _ = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    body = i**2 + j**2 < 0.8
    vol = np.where(body, rng.integers(100, 800, size=shape), rng.integers(0, 30, size=shape)).astype(np.int16)
    labels = np.zeros(shape, np.uint8)
    labels[8:20, 10:26, 6:18] = 5  # liver
    affine = np.diag([4.0, 4.0, 5.0, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "mr.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "mr_masks.nii.gz")
    return tmp_path / "mr.nii.gz", tmp_path / "mr_masks.nii.gz"


def test_non_ct_is_viewable_refused_then_analyzed_on_override(qapp, workstation_model, mr_case, tmp_path):
    from PySide6.QtTest import QTest

    from app.main import build_window, parse_args

    win = build_window(parse_args(["--model", str(workstation_model), "--max-new-tokens", "4", "--max-rounds", "1"]))
    win.resize(1400, 900)
    win.show()
    assert QTest.qWaitForWindowExposed(win, 10000)
    try:
        ct, masks = mr_case
        assert win.open_path(ct, masks)
        win.wait_for_load()
        wait_idle(win)
        c = win.controller
        assert c.ct is not None and c.masks is not None  # viewable
        assert "Does not look like CT" in win.banner.text() and "air" in win.banner.toolTip()
        assert win.width() <= 1400  # the long reason does not widen the window

        assert c.analyze("report") is False  # refused, with the reason in a dialog
        box = win.error_box
        assert isinstance(box, QMessageBox) and "does not look like a CT" in box.text()
        assert c.run is None and c.live_question is None
        anyway = next(b for b in box.buttons() if b.text() == "Analyze anyway")
        anyway.click()
        wait_idle(win)
        assert c.run is not None, win.last_error
        check = c.run.case.ct_check
        assert check["looks_like_ct"] is False and check["override"] is True and check["reasons"]
        assert any("does not look like CT" in w.lower() or "override" in w.lower() for w in c.run.warnings)
    finally:
        win.close()
