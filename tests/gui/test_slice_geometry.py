"""Slice geometry: radiological layout and orientation letters derived from the affine."""
from __future__ import annotations

import numpy as np
import pytest

from viewer_cases import affine_for
from viewer.slice_geometry import SliceGeometry, direction_letters, voxel_axis_of_world, world_to_letters

NEEDS_DISPLAY = False

LETTERS = {
    "axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
    "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
    "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"},
}
# screen direction (right, up) as world unit vectors, radiological convention
SCREEN = {"axial": ((-1, 0, 0), (0, 1, 0)), "coronal": ((-1, 0, 0), (0, 0, 1)),
          "sagittal": ((0, -1, 0), (0, 0, 1))}


@pytest.mark.parametrize("storage", ["ras", "lps", "kji"])
@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_letters_and_screen_directions_follow_the_affine(storage, plane):
    affine, shape = affine_for(storage, (20, 16, 12), (2.0, 2.5, 3.0))
    g = SliceGeometry.create(plane, shape, affine)
    assert g.letters == LETTERS[plane]
    # moving one pixel right / up on screen moves the world point along the expected direction
    k = g.n_slices // 2
    base = g.display_to_world(g.u0 + 3 * g.du, g.v0 + 3 * g.dv, k)
    right = g.display_to_world(g.u0 + 4 * g.du, g.v0 + 3 * g.dv, k) - base
    up = g.display_to_world(g.u0 + 3 * g.du, g.v0 + 4 * g.dv, k) - base
    np.testing.assert_allclose(right / np.linalg.norm(right), SCREEN[plane][0], atol=1e-9)
    np.testing.assert_allclose(up / np.linalg.norm(up), SCREEN[plane][1], atol=1e-9)


@pytest.mark.parametrize("storage", ["ras", "lps", "kji"])
def test_extracted_slice_puts_patient_right_on_screen_left(storage):
    affine, shape = affine_for(storage, (20, 16, 12), (2.0, 2.5, 3.0))
    vol = np.zeros(shape, dtype=np.int16)
    # mark the voxel furthest to the patient's right-anterior
    inv = np.linalg.inv(affine)
    target = np.array([19.0, 18.75, 1.5])  # voxel centre at the right-anterior edge
    ijk = np.rint(inv[:3, :3] @ target + inv[:3, 3]).astype(int)
    ijk = np.clip(ijk, 0, np.asarray(shape) - 1)
    vol[tuple(ijk)] = 1
    g = SliceGeometry.create("axial", shape, affine)
    sl = g.extract(vol, g.slice_index(affine[:3, :3] @ ijk + affine[:3, 3]))
    rows, cols = np.nonzero(sl)
    assert sl.shape == (g.n_rows, g.n_cols)
    assert cols[0] == 0  # leftmost column = patient right
    assert rows[0] == g.n_rows - 1  # row 0 is the screen bottom, so anterior = last row


def test_world_display_round_trip_and_stepping():
    affine, shape = affine_for("lps", (20, 16, 12), (2.0, 2.5, 3.0))
    for plane in ("axial", "coronal", "sagittal"):
        g = SliceGeometry.create(plane, shape, affine)
        p = np.array([4.0, -5.0, 6.0])
        u, v = g.world_to_display(p)
        back = g.display_to_world(u, v, g.world_to_voxel(p)[g.axis_n])
        np.testing.assert_allclose(back, p, atol=1e-9)
        axis = {"axial": 2, "coronal": 1, "sagittal": 0}[plane]
        step = g.stepped(p, +1) - g.stepped(p, 0)
        assert step[axis] > 0  # +1 always moves toward S, A or R, whatever the storage order
        assert g.stepped(p, 1000)[axis] == pytest.approx(g.stepped(p, 5000)[axis])  # clamped


def test_oblique_letters_name_the_secondary_direction():
    assert direction_letters(np.array([-1.0, 0.0, 0.0])) == "L"
    assert direction_letters(np.array([-1.0, 0.3, 0.0])) == "LA"
    assert direction_letters(np.array([-1.0, 0.05, 0.0])) == "L"
    rot = np.radians(20)
    affine = np.eye(4)
    affine[:3, :3] = [[np.cos(rot), -np.sin(rot), 0], [np.sin(rot), np.cos(rot), 0], [0, 0, 1]]
    g = SliceGeometry.create("axial", (10, 10, 10), affine)
    assert g.letters["right"] in ("LP", "LA") and g.letters["top"][0] == "A"
    assert voxel_axis_of_world(affine)[0] == [0, 1, 2]


def test_world_to_letters_reads_like_slicer():
    assert world_to_letters(np.array([12.34, -4.5, 100.0])) == "R 12.3  P 4.5  S 100.0"
