"""Mouse and key bindings of a slice view, as a reading radiologist expects them.

    left click                 move the crosshair there (all views follow)
    left drag                  window/level: right = wider window, up = lower level (brighter)
    Ctrl + left drag           drag the crosshair continuously
    right drag                 zoom (up = in)
    middle drag, Shift + left  pan
    wheel, Up/Down, Left/Right one slice (PageUp/PageDown: ten; Home/End: first/last)
    Ctrl + wheel               zoom
    1..5                       window presets: soft tissue, liver, lung, bone, brain
    r                          reset zoom and pan
    Esc                        clear the ROI highlight
    mouse move                 probe: world position, HU and organ under the cursor
"""
from __future__ import annotations

import math

from PySide6.QtCore import Qt

from viewer.window_presets import preset_for_key

CLICK_SLOP = 3  # pixels a press may move and still count as a click
WL_RATE = 1 / 250  # window/level change per pixel, relative to the current window
ZOOM_RATE = 1.01  # zoom factor per pixel of right drag

_B = Qt.MouseButton
_K = Qt.Key
_M = Qt.KeyboardModifier


class SliceInteraction:
    """Turns Qt events of one ``SliceView`` into camera moves and scene state changes."""

    def __init__(self, view):
        self.view = view
        self.mode: str | None = None  # 'click', 'wl', 'navigate', 'zoom', 'pan'
        self._press = (0.0, 0.0)
        self._last = (0.0, 0.0)
        self._start_wl = (0.0, 0.0)
        self._wheel_rest = 0

    @property
    def state(self):
        return self.view.state

    # --- mouse ----------------------------------------------------------------------------
    def press(self, ev) -> None:
        pos = ev.position()
        self._press = self._last = (pos.x(), pos.y())
        button, mods = ev.button(), ev.modifiers()
        if button == _B.LeftButton and mods & _M.ShiftModifier or button == _B.MiddleButton:
            self.mode = "pan"
        elif button == _B.LeftButton and mods & _M.ControlModifier:
            self.mode = "navigate"
            self._navigate(pos.x(), pos.y())
        elif button == _B.LeftButton:
            self.mode = "click"  # becomes 'wl' once it moves beyond the slop
            self._start_wl = (self.state.window, self.state.level)
        elif button == _B.RightButton:
            self.mode = "zoom"
        else:
            self.mode = None

    def move(self, ev) -> None:
        pos = ev.position()
        x, y = pos.x(), pos.y()
        lx, ly = self._last
        self._last = (x, y)
        if self.mode == "click" and math.hypot(x - self._press[0], y - self._press[1]) > CLICK_SLOP:
            self.mode = "wl"
        if self.mode == "wl":
            w0, l0 = self._start_wl
            dx, dy = x - self._press[0], y - self._press[1]
            self.state.set_window_level(w0 + dx * max(w0, 10.0) * WL_RATE, l0 + dy * max(w0, 10.0) * WL_RATE)
        elif self.mode == "navigate":
            self._navigate(x, y)
        elif self.mode == "zoom":
            self.view.zoom(ZOOM_RATE ** (ly - y))
        elif self.mode == "pan":
            mm = self.view.mm_per_pixel()
            self.view.pan((x - lx) * mm, (ly - y) * mm)
        if self.mode is None:
            self.view.show_probe(self.view.probe_at(x, y))

    def release(self, ev) -> None:
        if self.mode == "click":
            pos = ev.position()
            self._navigate(pos.x(), pos.y())
        self.mode = None

    def _navigate(self, x: float, y: float) -> None:
        world = self.view.world_at(x, y)
        if world is not None:
            self.state.set_cursor(world)
            self.view.show_probe(self.view.probe_at(x, y))

    def wheel(self, ev) -> None:
        self._wheel_rest += ev.angleDelta().y()
        steps = int(self._wheel_rest / 120)
        if steps == 0:
            return
        self._wheel_rest -= steps * 120
        if ev.modifiers() & _M.ControlModifier:
            self.view.zoom(1.1 ** steps)
        else:
            self.step(steps)

    # --- keys -----------------------------------------------------------------------------
    def key(self, ev) -> bool:
        """Handle a key press; False when the key is not ours (the parent gets it)."""
        k = ev.key()
        steps = {_K.Key_Up: 1, _K.Key_Right: 1, _K.Key_Down: -1, _K.Key_Left: -1,
                 _K.Key_PageUp: 10, _K.Key_PageDown: -10}
        if k in steps:
            self.step(steps[k])
        elif k in (_K.Key_Home, _K.Key_End):
            g = self.view.geometry
            if g is not None:
                self.step((g.n_slices if k == _K.Key_End else -g.n_slices))
        elif k == _K.Key_R:
            self.view.reset_view()
        elif k == _K.Key_Escape:
            self.state.clear_highlight()
        elif (p := preset_for_key(ev.text())) is not None:
            self.state.set_window_level(p.window, p.level)
        else:
            return False
        return True

    def step(self, delta: int) -> None:
        """Move this view's slice by ``delta`` (positive toward S, A or R); other views follow."""
        g = self.view.geometry
        if g is None or self.state.ct is None:
            return
        self.state.set_cursor(g.stepped(self.state.cursor, delta))
