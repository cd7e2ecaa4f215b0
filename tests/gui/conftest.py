"""GUI test fixtures: a real X server, the four views on a scene state, cases and pixel helpers.

Run under Xvfb (``xvfb-run -a -s "-screen 0 1600x1000x24" pytest tests/gui``); without a
DISPLAY this conftest starts an Xvfb itself when one is installed, else the tests skip.
Screenshots go to <repo>/artifacts/screenshots/ (git-ignored) for people to look at.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
DEMO_CASE = REPO / "resources" / "demo_case"
ARTIFACTS = REPO / "artifacts" / "screenshots"
sys.path.insert(0, str(Path(__file__).resolve().parent))

_xvfb: subprocess.Popen | None = None


def _start_xvfb() -> None:
    """Start a private Xvfb when no display is set (the CI uses xvfb-run instead)."""
    global _xvfb
    if os.environ.get("DISPLAY") or not shutil.which("Xvfb"):
        return
    for num in range(90, 130):
        if Path(f"/tmp/.X{num}-lock").exists():
            continue
        proc = subprocess.Popen(["Xvfb", f":{num}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            if Path(f"/tmp/.X11-unix/X{num}").exists():
                break
            time.sleep(0.1)
        if proc.poll() is None:
            _xvfb = proc
            os.environ["DISPLAY"] = f":{num}"
            return


def pytest_configure(config):
    _start_xvfb()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")


def pytest_unconfigure(config):
    if _xvfb is not None:
        _xvfb.terminate()
        _xvfb.wait(timeout=10)


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        # modules that set NEEDS_DISPLAY = False (geometry, state) run anywhere
        if here in Path(str(item.fspath)).resolve().parents and getattr(item.module, "NEEDS_DISPLAY", True):
            item.add_marker(pytest.mark.gui)
            if not os.environ.get("DISPLAY"):
                item.add_marker(pytest.mark.skip(reason="no X display and no Xvfb to start one"))


# --- pixel helpers -------------------------------------------------------------------------
def colour_mask(img: np.ndarray, rgb, tol: int = 10) -> np.ndarray:
    """(H, W) bool: pixels within ``tol`` of ``rgb`` on every channel."""
    return np.all(np.abs(img.astype(int) - np.asarray(rgb, dtype=int)) <= tol, axis=-1)


def centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """(x, y) pixel centroid (x right, y down) of a mask, None if empty."""
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean())) if len(xs) else None


def save_artifact(img: np.ndarray, name: str) -> Path:
    from viewer.screenshot import save_png

    return save_png(img, ARTIFACTS / f"{name}.png")


# --- views -----------------------------------------------------------------------------------
class Viewer:
    """Scene state + axial/coronal/sagittal/3D views in one shown window (no app chrome)."""

    def __init__(self):
        from PySide6.QtTest import QTest
        from PySide6.QtWidgets import QGridLayout, QWidget

        from viewer.scene_state import SceneState
        from viewer.slice_view import SliceView
        from viewer.volume_view import VolumeView

        self.state = SceneState()
        self.axial = SliceView(self.state, "axial")
        self.coronal = SliceView(self.state, "coronal")
        self.sagittal = SliceView(self.state, "sagittal")
        self.volume = VolumeView(self.state)
        self.slices = {"axial": self.axial, "coronal": self.coronal, "sagittal": self.sagittal}
        self.window = QWidget()
        grid = QGridLayout(self.window)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(0)
        for view, (r, c) in zip((self.axial, self.volume, self.sagittal, self.coronal), ((0, 0), (0, 1), (1, 0), (1, 1))):
            grid.addWidget(view, r, c)
        self.window.resize(960, 800)
        self.window.show()
        assert QTest.qWaitForWindowExposed(self.window, 10000)

    def load(self, ct, masks=None) -> None:
        """Show a case with default display settings (the views are shared by a module's tests)."""
        from PySide6.QtWidgets import QApplication

        from viewer.window_presets import DEFAULT_PRESET

        st = self.state
        st.clear_highlight()
        st.set_window_level(DEFAULT_PRESET.window, DEFAULT_PRESET.level)
        st.set_opacity(0.45)
        st.set_fill(True)
        st.set_outline(True)
        st.set_volume_rendering(False)
        for view in self.slices.values():
            for t in view.letters.values():
                t.VisibilityOn()
        st.set_case(ct, masks)
        QApplication.processEvents()

    def grab(self, plane: str, save_as: str | None = None) -> np.ndarray:
        """Render one view now and return its pixels (H, W, 3); optionally save as an artifact."""
        from viewer.screenshot import grab

        view = self.volume if plane == "3d" else self.slices[plane]
        img = grab(view.GetRenderWindow())
        if save_as:
            save_artifact(img, f"{save_as}_{plane}")
        return img

    def close(self) -> None:
        for v in (*self.slices.values(), self.volume):
            v.detach()
        self.window.close()


@pytest.fixture(scope="module")
def viewer(qapp):
    """Four views shared by one test module (creating GL windows is the slow part)."""
    v = Viewer()
    yield v
    v.close()


@pytest.fixture
def synthetic():
    from synthetic import make_case

    return make_case


@pytest.fixture(scope="session")
def real_case():
    """The real CT in ../shared/data with its TotalSegmentator mask, read by the product's loaders."""
    ct_path, seg_path = SHARED_DATA / "example_ct_sm.nii.gz", SHARED_DATA / "example_seg.nii.gz"
    if not (ct_path.exists() and seg_path.exists()):
        pytest.skip(f"real test data absent: {SHARED_DATA} (expected beside the repository)")
    from inference.ct_io import load_ct
    from inference.segmentation.precomputed import PrecomputedExpert

    ct = load_ct(ct_path)
    masks = PrecomputedExpert(seg_path).segment(ct)
    return ct, masks
