"""NIfTI input: voxel order and affine kept, every integer/float type scaled to int16 HU."""
from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from inference.ct_io import load_ct
from inference.ct_volume import CTVolume
from inference.errors import InputError

from dicom_factory import phantom, write_nifti_raw

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OBLIQUE = np.array(
    [[0.0, -0.9, 0.1, 40.0], [0.8, 0.0, 0.0, -12.5], [0.0, 0.05, 2.5, 101.0], [0, 0, 0, 1]]
)


def test_int16_unscaled_keeps_voxels_order_and_affine(tmp_path):
    hu = phantom((17, 13, 7))
    p = write_nifti_raw(tmp_path / "ct.nii.gz", hu, OBLIQUE)
    vol = load_ct(p)
    assert isinstance(vol, CTVolume)
    assert vol.hu.dtype == np.int16 and vol.shape == (17, 13, 7)
    np.testing.assert_array_equal(vol.hu, hu)
    np.testing.assert_allclose(vol.affine, nib.load(p).affine)
    np.testing.assert_allclose(vol.affine, OBLIQUE, atol=1e-5)
    assert vol.source_path == p and vol.modality == "CT" and vol.warnings == ()
    assert vol.hu.flags.f_contiguous  # the file's own layout, no reordering copy


@pytest.mark.parametrize(
    "dtype, slope, inter",
    [
        (np.uint8, 8.0, -1024.0),
        (np.int16, 1.0, -1024.0),
        (np.int16, 0.5, 3.25),
        (np.uint16, 1.0, -1024.0),
        (np.int32, 1.0, 0.0),
        (np.float32, 1.0, 0.0),
        (np.float32, 2.0, -100.0),
        (np.float64, 0.1, 0.0),
    ],
)
def test_dtypes_are_scaled_rounded_and_clipped(tmp_path, dtype, slope, inter):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        lo, hi = max(info.min, -5000), min(info.max, 5000)
        raw = rng.integers(lo, hi, size=(9, 8, 5), endpoint=True).astype(dtype)
    else:
        raw = (rng.normal(0, 800, size=(9, 8, 5)) + 0.5).astype(dtype)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    p = write_nifti_raw(tmp_path / f"ct_{np.dtype(dtype).name}.nii", raw, affine, slope=slope, inter=inter)
    vol = load_ct(p)
    expected = np.clip(np.rint(raw.astype(np.float64) * slope + inter), -32768, 32767)
    np.testing.assert_array_equal(vol.hu, expected.astype(np.int16))
    # nibabel's own scaled read agrees (up to rounding to integers)
    np.testing.assert_allclose(vol.hu, np.asanyarray(nib.load(p).dataobj), atol=0.5 + 1e-3)


def test_out_of_range_values_are_clipped_with_a_warning(tmp_path, caplog):
    raw = np.zeros((4, 4, 3), dtype=np.float32)
    raw[0, 0, 0], raw[1, 1, 1], raw[2, 2, 2] = 40000.0, -40000.0, 2.5
    with caplog.at_level(logging.WARNING):
        vol = load_ct(write_nifti_raw(tmp_path / "big.nii.gz", raw, np.eye(4)))
    assert vol.hu[0, 0, 0] == 32767 and vol.hu[1, 1, 1] == -32768
    assert vol.hu[2, 2, 2] == 2  # rint: half to even
    assert any("2 voxel(s)" in w and "clipped" in w for w in vol.warnings)
    assert "clipped" in caplog.text


def test_singleton_4th_dimension_is_a_3d_volume(tmp_path):
    hu = phantom((6, 5, 4))
    p = write_nifti_raw(tmp_path / "t1.nii.gz", hu.reshape(6, 5, 4, 1), np.eye(4))
    vol = load_ct(p)
    assert vol.shape == (6, 5, 4)
    np.testing.assert_array_equal(vol.hu, hu)


def test_big_endian_file(tmp_path):
    hu = phantom((7, 6, 5))
    vol = load_ct(write_nifti_raw(tmp_path / "be.nii", hu, np.eye(4), endianness=">"))
    np.testing.assert_array_equal(vol.hu, hu)
    vol = load_ct(write_nifti_raw(tmp_path / "be_scaled.nii.gz", hu, np.eye(4), endianness=">", slope=2.0))
    np.testing.assert_array_equal(vol.hu, np.clip(hu.astype(np.int32) * 2, -32768, 32767))


def test_header_without_orientation_warns(tmp_path):
    p = write_nifti_raw(tmp_path / "noorient.nii.gz", phantom((5, 5, 3)), np.diag([2.0, 2.0, 3.0, 1.0]), codes=(0, 0))
    vol = load_ct(p)
    assert vol.spacing == pytest.approx((2.0, 2.0, 3.0))
    assert any("no orientation" in w for w in vol.warnings)


def test_nibabel_written_file_and_file_without_extension(tmp_path):
    hu = phantom((8, 8, 4))
    nib.save(nib.Nifti1Image(hu, OBLIQUE), tmp_path / "nib.nii.gz")
    vol = load_ct(tmp_path / "nib.nii.gz")
    np.testing.assert_array_equal(vol.hu, hu)
    np.testing.assert_allclose(vol.affine, OBLIQUE, atol=1e-5)
    (tmp_path / "nib.nii.gz").rename(tmp_path / "scan_without_suffix")
    with pytest.raises(InputError, match="scan_without_suffix: looks like a .*NIfTI.*rename"):
        load_ct(tmp_path / "scan_without_suffix")


def test_nifti2_file(tmp_path):
    hu = phantom((6, 7, 3))
    nib.save(nib.Nifti2Image(hu, OBLIQUE), tmp_path / "ct2.nii")
    vol = load_ct(tmp_path / "ct2.nii")
    np.testing.assert_array_equal(vol.hu, hu)


def test_real_example_ct_loads():
    path = DATA / "example_ct_sm.nii.gz"
    if not path.exists():
        pytest.skip(f"real example CT not present at {path}")
    vol = load_ct(path)
    ref = nib.load(path)
    assert vol.shape == (122, 101, 30)
    assert vol.spacing == pytest.approx((3.0, 3.0, 3.0), abs=0.2)
    np.testing.assert_array_equal(vol.hu, np.rint(np.asanyarray(ref.dataobj)).astype(np.int16))
    np.testing.assert_allclose(vol.affine, ref.affine)
    assert -1200 <= vol.hu.min() <= -900 and vol.hu.max() > 300  # air and bone/contrast
