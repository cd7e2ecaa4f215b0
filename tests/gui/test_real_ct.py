"""The real abdominal CT in ../shared/data with its TotalSegmentator mask: loads through the
product's readers and window, shows anatomy the right way round in every view."""
from __future__ import annotations

import numpy as np
import pytest

from gui_helpers import ARTIFACTS, SHARED_DATA, centroid, colour_mask

MAGENTA, GREEN = (255, 0, 255), (0, 255, 0)
LIVER, SPLEEN, KIDNEY_R, AORTA, LUMBAR, THORACIC = 5, 1, 2, 39, 25, 26


def best_slice(organs: np.ndarray, a: int, b: int, axis: int) -> int:
    """Voxel index along ``axis`` where both labels have the most area (the smaller of the two)."""
    other = tuple(x for x in range(3) if x != axis)
    return int(np.argmax(np.minimum((organs == a).sum(axis=other), (organs == b).sum(axis=other))))


def render_pair(viewer, plane: str, a: int, b: int):
    """Put the cursor on a slice holding both labels, paint a magenta and b green, render.
    Returns (screen centroid a, screen centroid b, world centroid a, world centroid b)."""
    st, view = viewer.state, viewer.slices[plane]
    g = view.geometry
    k = best_slice(st.masks.organs, a, b, g.axis_n)
    vox = (np.asarray(st.ct.shape) - 1) / 2
    vox[g.axis_n] = k
    st.set_cursor(st.ct.voxel_to_world(vox)[0])
    st.set_visible_labels([a, b])
    st.set_label_colour(a, MAGENTA)
    st.set_label_colour(b, GREEN)
    st.set_opacity(1.0)
    st.set_outline(False)
    img = viewer.grab(plane, save_as=f"real_ct_{plane}")
    sl = g.extract(st.masks.organs, view.slice_index)
    worlds = []
    for lab in (a, b):
        rows, cols = np.nonzero(sl == lab)
        pts = [g.display_to_world(g.u0 + c * g.du, g.v0 + r * g.dv, k) for r, c in zip(rows, cols)]
        worlds.append(np.mean(pts, axis=0))
    return centroid(colour_mask(img, MAGENTA, 2)), centroid(colour_mask(img, GREEN, 2)), worlds[0], worlds[1]


@pytest.fixture
def real(viewer, real_case):
    viewer.load(*real_case)
    return viewer


def test_real_ct_letters(real):
    expected = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}
    for plane, view in real.slices.items():
        assert tuple(view.letters[s].GetInput() for s in ("left", "right", "top", "bottom")) == expected[plane]


def test_real_ct_axial_liver_on_screen_left_and_anterior_up(real):
    sa, sb, wa, wb = render_pair(real, "axial", LIVER, SPLEEN)
    assert wa[0] > wb[0] + 50  # the mask agrees: liver is to the patient's right (+x) of the spleen
    assert sa[0] < sb[0] - 50  # patient right is on screen left
    sa, sb, wa, wb = render_pair(real, "axial", AORTA, LUMBAR)
    assert wa[1] > wb[1] + 10  # aorta lies anterior to the vertebral body
    assert sa[1] < sb[1] - 10  # anterior is up


def test_real_ct_coronal_right_left_and_head_up(real):
    sa, sb, wa, wb = render_pair(real, "coronal", LIVER, SPLEEN)
    assert sa[0] < sb[0] - 50
    sa, sb, wa, wb = render_pair(real, "coronal", LIVER, KIDNEY_R)
    assert wa[2] > wb[2] + 5  # liver above the right kidney in this slab
    assert sa[1] < sb[1] - 5  # superior is up


def test_real_ct_sagittal_anterior_left_and_head_up(real):
    sa, sb, wa, wb = render_pair(real, "sagittal", AORTA, LUMBAR)
    assert wa[1] > wb[1] + 10
    assert sa[0] < sb[0] - 10  # anterior (aorta) on screen left, spine on the right
    sa, sb, wa, wb = render_pair(real, "sagittal", THORACIC, LUMBAR)
    assert wa[2] > wb[2] + 10  # thoracic vertebrae above lumbar
    assert sa[1] < sb[1] - 10


def test_real_ct_opens_in_the_window_from_the_command_line(qtbot):
    from app.main import build_window, parse_args

    ct, seg = SHARED_DATA / "example_ct_sm.nii.gz", SHARED_DATA / "example_seg.nii.gz"
    if not ct.exists() or not seg.exists():
        pytest.skip(f"real test data absent: {SHARED_DATA}")
    win = build_window(parse_args([str(ct), "--masks", str(seg)]))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.wait_for_load()
    assert win.last_error is None
    st = win.state
    assert st.masks is not None and st.masks.backend.startswith("precomputed")
    assert {LIVER, SPLEEN, KIDNEY_R, AORTA} <= set(st.present_ids)
    st.set_highlight(["liver"])
    win.volume.build_visible_now()
    win.save_window_png(ARTIFACTS / "real_ct_window_liver.png")
    win.save_screenshots(ARTIFACTS, prefix="real_ct_liver_")
    win.close()
