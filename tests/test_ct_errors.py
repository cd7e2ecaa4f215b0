"""Bad input: every case gives InputError naming the file and the problem, never a traceback
from a library, never a hang."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pydicom
import pytest
from pydicom import uid as U
from pydicom.pixels import get_decoder

from inference.ct_io import load_ct
from inference.errors import InputError

from dicom_factory import phantom, write_nifti_raw, write_non_image, write_series

AFFINE = np.array([[0.8, 0, 0, -10.0], [0, 0.8, 0, 20.0], [0, 0, 3.0, -30.0], [0, 0, 0, 1]])
HU = phantom((16, 12, 16))

pytestmark = pytest.mark.timeout(60)


def _error(path, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        load_ct(path, **kw)
    return info.value


# ---- NIfTI ---------------------------------------------------------------------------------

def test_missing_path():
    err = _error("/nonexistent/ct.nii.gz")
    assert "ct.nii.gz" in str(err) and "does not exist" in str(err)


def test_truncated_gzip_nifti(tmp_path):
    p = write_nifti_raw(tmp_path / "ct.nii.gz", HU, AFFINE)
    blob = p.read_bytes()
    p.write_bytes(blob[: len(blob) // 2])
    err = _error(p)
    assert err.path == p and "truncated or corrupt" in err.problem


def test_corrupt_gzip_nifti(tmp_path):
    p = write_nifti_raw(tmp_path / "ct.nii.gz", HU, AFFINE)
    blob = bytearray(p.read_bytes())
    blob[-8:-4] = bytes(b ^ 0xFF for b in blob[-8:-4])  # break the gzip CRC
    p.write_bytes(bytes(blob))
    err = _error(p)
    assert str(p) in str(err) and "corrupt" in err.problem


def test_corruption_that_still_inflates_is_caught_by_the_crc(tmp_path):
    hu = phantom((64, 64, 20))
    p = write_nifti_raw(tmp_path / "ct.nii.gz", hu, AFFINE)
    blob = bytearray(p.read_bytes())
    blob[len(blob) // 3 : len(blob) // 3 + 50] = b"\xff" * 50  # (with zlib 1.2.13 this still inflates)
    p.write_bytes(bytes(blob))
    err = _error(p)
    assert err.path == p and "corrupt" in err.problem


def test_truncated_uncompressed_nifti_says_how_much(tmp_path):
    p = write_nifti_raw(tmp_path / "ct.nii", HU, AFFINE)
    p.write_bytes(p.read_bytes()[:-100])
    err = _error(p)
    assert f"promises {HU.size * 2} bytes" in err.problem and f"only {HU.size * 2 - 100}" in err.problem


def test_garbage_named_nifti(tmp_path):
    p = tmp_path / "ct.nii.gz"
    p.write_bytes(os.urandom(2000))
    err = _error(p)
    assert err.path == p and "NIfTI" in err.problem


@pytest.mark.parametrize("shape", [(16, 12), (16, 12, 1), (1, 12, 16)])
def test_2d_nifti(tmp_path, shape):
    p = write_nifti_raw(tmp_path / "slice.nii.gz", np.zeros(shape, np.int16), np.eye(4))
    err = _error(p)
    assert "2D image" in err.problem and str(shape) in err.problem


def test_4d_nifti_with_several_volumes(tmp_path):
    p = write_nifti_raw(tmp_path / "dyn.nii.gz", np.zeros((8, 8, 4, 3), np.int16), np.eye(4))
    err = _error(p)
    assert "4D image" in err.problem and "3 volumes" in err.problem


def test_nan_voxels_are_counted(tmp_path):
    raw = HU.astype(np.float32)
    raw.flat[[3, 70, 500, 901, 1500]] = np.nan
    raw.flat[7] = np.inf
    err = _error(write_nifti_raw(tmp_path / "nan.nii.gz", raw, AFFINE))
    assert "5 NaN" in err.problem and "1 infinite" in err.problem and str(HU.size) in err.problem


def test_nifti_too_large_for_memory_limit(tmp_path):
    p = write_nifti_raw(tmp_path / "ct.nii.gz", HU, AFFINE)
    err = _error(p, memory_limit_bytes=1000)
    assert "16x12x16 volume needs" in err.problem and "memory" in err.problem
    assert load_ct(p, memory_limit_bytes=HU.size * 2).shape == HU.shape  # exactly fits


def test_header_promising_a_huge_volume_is_refused_before_allocating(tmp_path):
    # 5000^3 int16 = 233 GiB: refused from the header dims with the real available memory
    p = write_nifti_raw(tmp_path / "huge.nii.gz", HU, AFFINE, shape=(5000, 5000, 5000))
    err = _error(p)
    assert "5000x5000x5000 volume needs" in err.problem and "available" in err.problem


# ---- DICOM ---------------------------------------------------------------------------------

def test_dicom_with_cut_pixel_data_names_the_file(tmp_path):
    paths = write_series(tmp_path, HU, AFFINE)
    victim = paths[5]
    victim.write_bytes(victim.read_bytes()[:-150])
    err = _error(tmp_path)
    assert err.path == victim and "cut short" in err.problem


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_compressed_dicom_with_cut_pixel_data(tmp_path):
    paths = write_series(tmp_path, HU, AFFINE, transfer_syntax=U.RLELossless)
    victim = paths[2]
    victim.write_bytes(victim.read_bytes()[:-40])  # inside the RLE segments
    err = _error(tmp_path)
    assert err.path == victim and "RLE Lossless" in err.problem


def test_folder_with_only_non_image_dicom(tmp_path):
    for kind in ("SR", "PR", "SEG", "DICOMDIR"):
        write_non_image(tmp_path, kind)
    err = _error(tmp_path)
    assert err.path == tmp_path and "no DICOM image series" in err.problem
    assert "non-image DICOM (SR)" in err.problem and "DICOMDIR" in err.problem


def test_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    write_nifti_raw(tmp_path / "ct.nii.gz", HU, AFFINE)
    err = _error(tmp_path)
    assert "contains no DICOM files" in err.problem and ".nii" in err.problem
    (tmp_path / "empty").mkdir()
    assert "is empty" in _error(tmp_path / "empty").problem


def test_folder_without_ct_lists_what_it_has(tmp_path):
    paths = write_series(tmp_path, HU, AFFINE, modality="MR", description="T2 axial", intercept=0.0)
    err = _error(tmp_path)
    uid = pydicom.dcmread(paths[0]).SeriesInstanceUID
    assert "no CT series" in err.problem and "MR 'T2 axial'" in err.problem and uid in err.problem
    assert "series_uid" in err.problem
    unknown = _error(tmp_path, series_uid="1.2.3.4")
    assert "no image series with uid 1.2.3.4" in unknown.problem


def test_single_non_dicom_file(tmp_path):
    p = tmp_path / "report.pdf"
    p.write_bytes(b"%PDF-1.4 not a CT")
    err = _error(p)
    assert err.path == p and "neither a NIfTI" in err.problem


def test_single_non_image_dicom_file(tmp_path):
    p = write_non_image(tmp_path, "SR")
    assert "non-image DICOM (SR)" in _error(p).problem


def test_single_slice_series_is_2d(tmp_path):
    write_series(tmp_path, HU[:, :, :1], AFFINE)
    assert "single slice" in _error(tmp_path).problem


def test_missing_slice_names_the_gap(tmp_path):
    write_series(tmp_path, HU, AFFINE, skip=(12,))
    err = _error(tmp_path)
    # z of slice k is -30 + 3k (LPS z = RAS z): slices 12 and 13 of the sorted stack are k=11, 13
    assert "slices are missing" in err.problem
    assert "gap of 6.00 mm between slice 12 (z=3.00 mm, IM0011) and slice 13 (z=9.00 mm, IM0013)" in err.problem
    assert "where spacing is 3.00 mm: 1 slice missing" in err.problem


def test_unequal_spacing(tmp_path):
    paths = write_series(tmp_path, HU, AFFINE, shuffle=False)
    ds = pydicom.dcmread(paths[4])
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], ds.ImagePositionPatient[2] + 1.0]
    ds.save_as(paths[4])
    err = _error(tmp_path)
    assert "slice spacing is not uniform" in err.problem
    assert "spacing of 4.00 mm between slice 4 (z=-21.00 mm, IM0003) and slice 5 (z=-17.00 mm, IM0004)" in err.problem


def test_two_slices_at_one_position(tmp_path):
    paths = write_series(tmp_path, HU, AFFINE, shuffle=False)
    ds = pydicom.dcmread(paths[6])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = U.generate_uid()
    ds.save_as(tmp_path / "IM0006_again")
    assert "lie at the same position" in _error(tmp_path).problem


def test_positions_off_a_line_are_refused(tmp_path):
    paths = write_series(tmp_path, HU, AFFINE, shuffle=False)
    ds = pydicom.dcmread(paths[7])
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0] + 5.0, ds.ImagePositionPatient[1], ds.ImagePositionPatient[2]]
    ds.save_as(paths[7])
    assert "do not lie on a straight line" in _error(tmp_path).problem


def test_dicom_too_large_is_refused_before_reading_pixels(tmp_path, monkeypatch):
    write_series(tmp_path, HU, AFFINE)

    def no_pixels(*args, **kwargs):
        raise AssertionError("pixels were read before the memory check")

    monkeypatch.setattr("inference.ct_io.dicom_reader.read_slice_into", no_pixels)
    err = _error(tmp_path, memory_limit_bytes=HU.size * 2 - 1)
    assert "16x12x16 series needs" in err.problem and "available" in err.problem


def test_missing_decoder_plugin_names_syntax_and_package(tmp_path, monkeypatch):
    write_series(tmp_path, HU, AFFINE, transfer_syntax=U.JPEGLSLossless)
    decoder = get_decoder(U.JPEGLSLossless)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", {"pyjpegls": ("pyjpegls>=1.2",)})
    err = _error(tmp_path)
    assert "JPEG-LS Lossless Image Compression" in err.problem and U.JPEGLSLossless in err.problem
    assert "pip install pyjpegls" in err.problem


def test_unknown_transfer_syntax(tmp_path):
    paths = write_series(tmp_path, HU, AFFINE, shuffle=False)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"  # private, unknown
        ds.save_as(p, enforce_file_format=True)
    err = _error(tmp_path)
    assert "1.2.3.4.5.6.7" in err.problem and "cannot be decoded" in err.problem


def test_multiframe_image_is_refused_clearly(tmp_path):
    paths = write_series(tmp_path, HU[:, :, :1], AFFINE)
    ds = pydicom.dcmread(paths[0])
    ds.NumberOfFrames = 3
    ds.PixelData = ds.PixelData * 3
    ds.save_as(paths[0])
    err = _error(tmp_path)
    assert "multi-frame" in err.problem and err.path == paths[0]


def test_fifo_in_folder_does_not_hang(tmp_path):
    write_series(tmp_path, HU, AFFINE)
    os.mkfifo(tmp_path / "a_pipe")
    np.testing.assert_array_equal(load_ct(tmp_path).hu, HU)


def test_unreadable_dicom_is_named_in_the_gap_error(tmp_path):
    paths = write_series(tmp_path, HU, AFFINE, shuffle=False)
    paths[9].write_bytes(paths[9].read_bytes()[:400])  # file meta + a torn header
    err = _error(tmp_path)
    assert "1 slice missing" in err.problem and "unreadable DICOM file(s): IM0009" in err.problem
    assert "CT Image Storage file without" in err.problem


def test_gzip_header_read_uses_clear_error(tmp_path):
    p = tmp_path / "ct.nii.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"\0" * 100)
    assert "NIfTI" in _error(p).problem
