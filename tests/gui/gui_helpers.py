"""Helpers for the GUI tests: pixel masks, artifacts, and the four views on one scene state."""
from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
ARTIFACTS = REPO / "artifacts" / "screenshots"


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
        places = ((0, 0), (0, 1), (1, 0), (1, 1))
        for view, (r, c) in zip((self.axial, self.volume, self.sagittal, self.coronal), places):
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
        """Render one view now and return what it shows (H, W, 3), crosshair included for slice
        views; optionally save it as an artifact."""
        from viewer.screenshot import grab

        if plane == "3d":
            img = grab(self.volume.GetRenderWindow())
        else:
            img = self.slices[plane].grab_composited()
        if save_as:
            save_artifact(img, f"{save_as}_{plane}")
        return img

    def close(self) -> None:
        for v in (*self.slices.values(), self.volume):
            v.detach()
        self.window.close()
