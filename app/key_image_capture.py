"""Key images from the viewer: for each round, its ROI highlighted, the axial and coronal views
cut through the ROI's largest axial cross-section (the slice the report cites), side by side.
GUI thread only (VTK). The highlight and cursor on screen are put back afterwards."""
from __future__ import annotations

import io
from contextlib import contextmanager

import numpy as np
from PIL import Image

from viewer.screenshot import grab

GAP = 4


@contextmanager
def _paused(view, state):
    """The 3D view stops following the scene while the slices are captured: the scene ends as it
    began, and a software-rendered 3D frame (over a second on llvmpipe) is not worth drawing twice.
    (Uses the view's handler table; VolumeView has detach() but no attach().)"""
    handlers = dict(getattr(view, "_handlers", {}) or {})
    if handlers:
        view.detach()
    try:
        yield
    finally:
        for name, fn in handlers.items():
            state.events.connect(name, fn)


def capture_key_images(window, controller, run) -> dict[int, object]:
    """{round index: inference.report.KeyImage} for every round whose ROI has a mask on screen."""
    from inference.report.key_images import choose_slice, screenshot_key_image
    from inference.report.traceable_report import round_provenance

    st = controller.state
    ct, masks = controller.ct, controller.masks
    before = (tuple(st.highlight), st.cursor.copy())
    images: dict[int, object] = {}
    with _paused(window.volume, st):
        try:
            for rnd in run.rounds:
                labels = controller.round_labels(rnd)
                if not labels or st.set_highlight(labels) is None:
                    continue
                # through the flagged organ (roi_labels puts the highest P(abnormal) first)
                st.set_cursor(choose_slice(ct, masks, labels, labels[0]).world_mm)
                png = _side_by_side([grab(v.GetRenderWindow()) for v in (window.axial, window.coronal)])
                what = round_provenance(rnd, [st.label_name(lid) for lid in labels])
                images[rnd.index] = screenshot_key_image(
                    png, ct, masks, labels, round_index=rnd.index, focus=labels[0],
                    caption=f"Round {rnd.index}: {what} (axial | coronal, workstation view)")
        finally:
            st.clear_highlight()
            if before[0]:
                st.set_highlight(list(before[0]))
            st.set_cursor(before[1])
    return images


def _side_by_side(panels: list[np.ndarray]) -> bytes:
    h = max(p.shape[0] for p in panels)
    w = sum(p.shape[1] for p in panels) + GAP * (len(panels) - 1)
    canvas = np.full((h, w, 3), 24, dtype=np.uint8)
    x = 0
    for p in panels:
        canvas[: p.shape[0], x: x + p.shape[1]] = p[..., :3]
        x += p.shape[1] + GAP
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
