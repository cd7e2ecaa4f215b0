"""A voxel keeps its world position whatever the file's orientation or format.

The same volume is written in many NIfTI orientations (data flipped/transposed, affine adjusted,
as nibabel's as_reoriented does) and as a DICOM series in LPS; after loading each, the world
point of every sampled voxel of the original holds the same HU.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from inference.ct_io import load_ct
from inference.ct_volume import CTVolume

from dicom_factory import phantom, write_series

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RAS_AFFINE = np.array([[0.7, 0, 0, -80.0], [0, 0.9, 0, -60.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])
MARK = (5, 11, 3)
MARK_HU = 1234


def _volume() -> np.ndarray:
    hu = phantom((18, 15, 7), seed=3)
    hu[MARK] = MARK_HU
    return hu


def _samples(shape, n=40, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = np.stack([rng.integers(0, s, n) for s in shape], axis=1)
    return np.vstack([pts, MARK])


def _hu_at_world(vol: CTVolume, xyz: np.ndarray) -> np.ndarray:
    ijk = vol.world_to_voxel(xyz)
    idx = np.rint(ijk).astype(int)
    np.testing.assert_allclose(ijk, idx, atol=1e-3)  # lands on a voxel centre
    assert np.all(idx >= 0) and np.all(idx < np.array(vol.shape))
    return vol.hu[tuple(idx.T)]


def _reoriented(hu: np.ndarray, affine: np.ndarray, codes: str) -> tuple[np.ndarray, np.ndarray]:
    transform = ornt_transform(io_orientation(affine), axcodes2ornt(tuple(codes)))
    data = apply_orientation(hu, transform)
    return np.ascontiguousarray(data), affine @ inv_ornt_aff(transform, hu.shape)


@pytest.mark.parametrize("codes", ["RAS", "LPS", "LAS", "PSR", "SLA", "IPL", "ARI"])
def test_nifti_orientations_keep_world_positions(tmp_path, codes):
    hu = _volume()
    data, affine = _reoriented(hu, RAS_AFFINE, codes)
    assert nib.aff2axcodes(affine) == tuple(codes)
    p = tmp_path / f"ct_{codes}.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), p)
    vol = load_ct(p)
    np.testing.assert_array_equal(vol.hu, data)  # never reoriented on load
    pts = _samples(hu.shape)
    world = pts @ RAS_AFFINE[:3, :3].T + RAS_AFFINE[:3, 3]
    np.testing.assert_array_equal(_hu_at_world(vol, world), hu[tuple(pts.T)])
    assert _hu_at_world(vol, world[-1:])[0] == MARK_HU


@pytest.mark.parametrize("codes", ["RAS", "LPS", "PSR"])
def test_dicom_series_keeps_world_positions(tmp_path, codes):
    hu = _volume()
    data, affine = _reoriented(hu, RAS_AFFINE, codes)
    # LPS positions/orientations in the files; file names in no particular slice order
    write_series(tmp_path / codes, data, affine, name=lambda k: f"f{(5 * k + 2) % data.shape[2]}")
    vol = load_ct(tmp_path / codes)
    pts = _samples(hu.shape)
    world = pts @ RAS_AFFINE[:3, :3].T + RAS_AFFINE[:3, 3]
    np.testing.assert_array_equal(_hu_at_world(vol, world), hu[tuple(pts.T)])
    assert _hu_at_world(vol, world[-1:])[0] == MARK_HU


def test_oblique_nifti_and_dicom_agree_everywhere(tmp_path):
    hu = _volume()
    angle = np.radians(20)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.7, 0.9, 2.5])
    affine[:3, 3] = [12.0, -40.0, 7.5]
    nib.save(nib.Nifti1Image(hu, affine), tmp_path / "oblique.nii.gz")
    write_series(tmp_path / "dcm", hu, affine)
    from_nifti, from_dicom = load_ct(tmp_path / "oblique.nii.gz"), load_ct(tmp_path / "dcm")
    np.testing.assert_allclose(from_dicom.affine, from_nifti.affine, atol=1e-5)
    all_voxels = np.argwhere(np.ones(hu.shape, bool))
    world = from_nifti.voxel_to_world(all_voxels)
    np.testing.assert_array_equal(_hu_at_world(from_dicom, world), _hu_at_world(from_nifti, world))


def test_real_ct_world_position_survives_reorientation(tmp_path):
    path = DATA / "example_ct_sm.nii.gz"
    if not path.exists():
        pytest.skip(f"real example CT not present at {path}")
    original = load_ct(path)
    assert original.shape == (122, 101, 30)
    data, affine = _reoriented(original.hu, original.affine, "LPI")
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "lpi.nii.gz")
    flipped = load_ct(tmp_path / "lpi.nii.gz")
    pts = _samples(original.shape, n=200)
    world = original.voxel_to_world(pts)
    np.testing.assert_array_equal(_hu_at_world(flipped, world), original.hu[tuple(pts.T)])
