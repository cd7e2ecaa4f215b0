"""DICOM input: series discovery and choice, slice order, rescale, LPS->RAS, StudyInfo,
compressed transfer syntaxes, tilt resampling, non-CT modality."""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pydicom
import pytest
from pydicom import uid as U

from inference.ct_io import list_dicom_series, load_ct

from dicom_factory import phantom, write_non_image, write_series

AFFINE = np.array([[0.8, 0, 0, -10.0], [0, 0.8, 0, 20.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1]])
HU = phantom((24, 20, 8))


def _pydicom_hu(paths) -> np.ndarray:
    """What plain pydicom decodes, rescaled: (I, J, K) in the given file order."""
    planes = []
    for p in paths:
        ds = pydicom.dcmread(p)
        planes.append(ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    return np.rint(np.stack(planes, axis=0)).transpose(2, 1, 0)


def _scrambled(k: int) -> str:
    """File names whose sorted order is not the slice order (7 is prime to the 8 slices)."""
    return f"img_{(7 * k + 3) % 8}"


def test_series_loads_sorted_by_position_with_study_info(tmp_path):
    paths = write_series(tmp_path / "s", HU, AFFINE, description="ABD 2.5mm", name=_scrambled)
    vol = load_ct(tmp_path / "s")
    assert vol.hu.dtype == np.int16 and vol.shape == HU.shape
    np.testing.assert_array_equal(vol.hu, HU)
    np.testing.assert_allclose(vol.affine, AFFINE, atol=1e-5)  # LPS in the files, RAS here
    assert vol.spacing == pytest.approx((0.8, 0.8, 2.5))
    first = pydicom.dcmread(paths[0])
    assert vol.series_uid == first.SeriesInstanceUID and vol.series_description == "ABD 2.5mm"
    assert vol.modality == "CT" and vol.warnings == ()
    st = vol.study
    assert st.patient_name == "Test^Patient" and st.patient_id == "TC0001"
    assert st.study_instance_uid == first.StudyInstanceUID and st.study_date == "20240102"
    assert st.frame_of_reference_uid == first.FrameOfReferenceUID
    assert st.sop_class_uid == U.CTImageStorage
    assert st.sop_instance_uids == tuple(pydicom.dcmread(p).SOPInstanceUID for p in paths)


def test_descending_slices_and_signed_storage_with_slope(tmp_path):
    # k column pointing down (feet): sorting by the normal reverses k, world stays the same
    affine = AFFINE.copy()
    affine[2, 2], affine[2, 3] = -2.5, 10.0
    write_series(tmp_path / "s", HU, affine, signed=True, slope=2.0, intercept=-1000.0, name=_scrambled)
    vol = load_ct(tmp_path / "s")
    expected = np.clip(np.rint((HU.astype(np.float64) + 1000) / 2) * 2 - 1000, -32768, 32767)[:, :, ::-1]
    np.testing.assert_array_equal(vol.hu, expected)
    assert vol.affine[2, 2] == pytest.approx(2.5)
    assert vol.affine[2, 3] == pytest.approx(10.0 - 2.5 * 7)


def test_unused_high_bits_are_ignored_like_pydicom(tmp_path):
    paths = write_series(tmp_path / "s", HU, AFFINE, bits_stored=12, shuffle=False)
    # Garbage in bits 12-15 of every stored value (allowed by PS3.5 8.1.1)
    for p in paths:
        ds = pydicom.dcmread(p)
        raw = np.frombuffer(ds.PixelData, dtype=np.uint16) | np.uint16(0xA000)
        ds.PixelData = raw.tobytes()
        ds.save_as(p)
    vol = load_ct(tmp_path / "s")
    np.testing.assert_array_equal(vol.hu, HU)
    np.testing.assert_array_equal(vol.hu, _pydicom_hu(paths))


def test_signed_12_bit_values_are_sign_extended(tmp_path):
    paths = write_series(tmp_path / "s", HU, AFFINE, signed=True, bits_stored=12, intercept=0.0, shuffle=False)
    for p in paths:  # keep the low 12 bits only: negative values need sign extension
        ds = pydicom.dcmread(p)
        raw = np.frombuffer(ds.PixelData, dtype=np.uint16) & np.uint16(0x0FFF)
        ds.PixelData = raw.tobytes()
        ds.save_as(p)
    vol = load_ct(tmp_path / "s")
    np.testing.assert_array_equal(vol.hu, HU)


_TS = [
    (U.ImplicitVRLittleEndian, {}, 0),
    (U.RLELossless, {}, 0),
    (U.JPEGLSLossless, {}, 0),
    (U.JPEG2000Lossless, {}, 0),
    (U.JPEGBaseline8Bit, {"slope": 8.0, "intercept": -1024.0}, 60),
    (U.JPEGExtended12Bit, {"bits_stored": 12}, 20),
    (U.JPEGLosslessSV1, {"bits_stored": 12}, 0),
    (U.JPEGLossless, {"bits_stored": 12, "jpeg_predictor": 6}, 0),
]


@pytest.mark.parametrize("ts, kwargs, tolerance", _TS, ids=[t[0].name for t in _TS])
def test_transfer_syntaxes(tmp_path, ts, kwargs, tolerance):
    if ts in (U.JPEGExtended12Bit, U.JPEGLosslessSV1, U.JPEGLossless):
        pytest.importorskip("imagecodecs", reason="imagecodecs encodes 12-bit and lossless JPEG")
    hu = phantom((32, 32, 4))  # J2K needs >= 32 px for its default decomposition levels
    paths = write_series(tmp_path / "s", hu, AFFINE, transfer_syntax=ts, shuffle=False, **kwargs)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == ts
    vol = load_ct(tmp_path / "s")
    np.testing.assert_array_equal(vol.hu, _pydicom_hu(paths))  # exactly what the codec decodes
    assert np.abs(vol.hu.astype(np.int32) - hu).max() <= tolerance  # and close to the truth
    np.testing.assert_allclose(vol.affine, AFFINE, atol=1e-5)


def test_rescale_is_applied_per_slice(tmp_path):
    paths = write_series(tmp_path / "s", HU, AFFINE, shuffle=False)
    ds = pydicom.dcmread(paths[3])  # same HU stored differently: +100 raw, intercept -1124
    ds.PixelData = (np.frombuffer(ds.PixelData, dtype=np.uint16) + np.uint16(100)).tobytes()
    ds.RescaleIntercept = -1124
    ds.save_as(paths[3])
    ds = pydicom.dcmread(paths[5])  # and with a slope: raw / 2 (rounded), slope 2
    raw = np.frombuffer(ds.PixelData, dtype=np.uint16)
    ds.PixelData = (raw // 2).astype(np.uint16).tobytes()
    ds.RescaleSlope = 2
    ds.save_as(paths[5])
    vol = load_ct(tmp_path / "s")
    np.testing.assert_array_equal(vol.hu[:, :, 3], HU[:, :, 3])
    np.testing.assert_array_equal(vol.hu[:, :, 5], ((HU[:, :, 5].astype(np.int32) + 1024) // 2) * 2 - 1024)


def _three_series(root):
    ct_big = write_series(root / "a" / "ct_big", HU, AFFINE, description="CT big")
    ct_small = write_series(root / "b" / "ct_small", HU[:, :, :5], AFFINE, description="CT small")
    mr = write_series(root / "c" / "mr", phantom((24, 20, 12)), AFFINE, modality="MR", description="T1", intercept=0.0)
    return ct_big, ct_small, mr


def test_largest_ct_series_is_chosen_and_recorded(tmp_path, caplog):
    ct_big, ct_small, mr = _three_series(tmp_path)
    with caplog.at_level(logging.WARNING):
        vol = load_ct(tmp_path)  # recursive
    big_uid = pydicom.dcmread(ct_big[0]).SeriesInstanceUID
    assert vol.series_uid == big_uid and vol.shape == HU.shape
    assert len(vol.warnings) == 1
    w = vol.warnings[0]
    assert "3 image series" in w and big_uid in w and "CT big" in w and "T1" in w
    assert "largest CT series" in caplog.text

    small_uid = pydicom.dcmread(ct_small[0]).SeriesInstanceUID
    vol = load_ct(tmp_path, series_uid=small_uid)
    assert vol.shape == (24, 20, 5) and vol.warnings == ()
    np.testing.assert_array_equal(vol.hu, HU[:, :, :5])


def test_list_dicom_series_largest_first(tmp_path):
    ct_big, ct_small, mr = _three_series(tmp_path)
    write_non_image(tmp_path / "a", "SR")
    series = list_dicom_series(tmp_path)
    assert [(s.modality, s.n_slices, s.description) for s in series] == [
        ("MR", 12, "T1"),
        ("CT", 8, "CT big"),
        ("CT", 5, "CT small"),
    ]
    s = series[1]
    assert (s.rows, s.cols) == (20, 24) and s.uid == pydicom.dcmread(ct_big[0]).SeriesInstanceUID
    assert s.study.patient_id == "TC0001" and s.study.study_description == "ABDOMEN"
    assert s.first_file in ct_big and s.transfer_syntax == "Explicit VR Little Endian"


def test_single_file_loads_its_series(tmp_path):
    ct_big, ct_small, mr = _three_series(tmp_path)
    for p in ct_small:  # a folder holding two series
        shutil.copy(p, tmp_path / "a" / "ct_big" / f"small_{p.name}")
    vol = load_ct(ct_big[3])  # the file's own series is loaded
    assert vol.series_uid == pydicom.dcmread(ct_big[0]).SeriesInstanceUID
    np.testing.assert_array_equal(vol.hu, HU)
    assert vol.source_path == ct_big[3]


def test_non_image_dicom_and_other_files_are_ignored(tmp_path):
    write_series(tmp_path, HU, AFFINE)
    for kind in ("SR", "PR", "SEG", "DICOMDIR"):
        write_non_image(tmp_path, kind)
    (tmp_path / "README.txt").write_text("not dicom")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thumb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    vol = load_ct(tmp_path)
    np.testing.assert_array_equal(vol.hu, HU)
    assert vol.warnings == ()
    assert len(list_dicom_series(tmp_path)) == 1


def test_duplicate_files_and_localizer_in_series(tmp_path):
    paths = write_series(tmp_path / "s", HU, AFFINE)
    uid = pydicom.dcmread(paths[0]).SeriesInstanceUID
    shutil.copy(paths[2], tmp_path / "s" / "copy_of_slice")
    loc_affine = np.array([[0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # sagittal
    write_series(tmp_path / "s", phantom((16, 16, 1)), loc_affine, series_uid=uid, name=lambda k: "localizer")
    vol = load_ct(tmp_path / "s")
    np.testing.assert_array_equal(vol.hu, HU)
    assert any("1 duplicate" in w for w in vol.warnings)
    assert any("left out 1 image" in w for w in vol.warnings)


def test_gantry_tilt_is_resampled_to_an_orthogonal_grid(tmp_path):
    # A rod along z, fixed in the world at y = 20 mm. The gantry tilt makes each slice step
    # dy = 1 mm in-plane per dz = 4 mm (14.0 deg), so in the files the rod moves across slices.
    shape, dy, dz = (40, 40, 10), 1.0, 4.0
    sheared = np.array([[1.0, 0, 0, 0], [0, 1.0, dy, 0], [0, 0, dz, 0], [0, 0, 0, 1]])
    hu = np.full(shape, -1000, dtype=np.int16)
    for k in range(shape[2]):
        j = int(20 - k * dy)  # voxel (i, j, k) lies at y = j + k * dy
        hu[19:22, j - 1 : j + 2, k] = 500
    write_series(tmp_path / "t", hu, sheared, extra={"GantryDetectorTilt": 14.0})
    vol = load_ct(tmp_path / "t")
    assert any("gantry tilt of 14.0 deg" in w for w in vol.warnings), vol.warnings
    m = vol.affine[:3, :3]
    np.testing.assert_allclose(m.T @ m, np.diag([1.0, 1.0, dz**2]), atol=1e-6)  # orthogonal now
    # On the orthogonal grid the rod sits at the same (i, j) on every slice: world y = 20 mm.
    for k in range(shape[2]):
        rod = np.argwhere(vol.hu[:, :, k] == 500)
        assert rod[:, 1].min() == 19 and rod[:, 1].max() == 21, k
        assert vol.voxel_to_world([20, 20, k])[0, 1] == pytest.approx(20.0)
    # Beyond the shifted-in edge the fill is the volume's lowest value.
    assert vol.hu[:, :, 9].min() == -1000


def test_header_tilt_without_sheared_positions_only_warns(tmp_path):
    write_series(tmp_path / "s", HU, AFFINE, extra={"GantryDetectorTilt": 12.0})
    vol = load_ct(tmp_path / "s")
    np.testing.assert_array_equal(vol.hu, HU)
    assert any("already form an orthogonal grid" in w for w in vol.warnings)


def test_non_ct_modality_loads_with_warning(tmp_path, caplog):
    paths = write_series(tmp_path / "mr", HU, AFFINE, modality="MR", intercept=0.0, signed=True)
    uid = pydicom.dcmread(paths[0]).SeriesInstanceUID
    with caplog.at_level(logging.WARNING):
        vol = load_ct(tmp_path / "mr", series_uid=uid)
    np.testing.assert_array_equal(vol.hu, HU)
    assert vol.modality == "MR"
    assert any("modality is MR, not CT" in w for w in vol.warnings)
    assert "modality is MR" in caplog.text
    vol = load_ct(paths[0])  # choosing a file also names the series
    assert vol.modality == "MR"


def test_two_acquisitions_in_one_series_load_one_and_name_the_other(tmp_path):
    """Phases or a repeated scan under one SeriesInstanceUID, told apart by AcquisitionNumber: the largest
    loads (the first on a tie) with a warning naming the other; opening one of its files loads that one."""
    uid = U.generate_uid()
    write_series(tmp_path, HU, AFFINE, series_uid=uid, extra={"AcquisitionNumber": 1}, name=lambda k: f"A{k:03d}")
    later = write_series(tmp_path, HU + 40, AFFINE, series_uid=uid, extra={"AcquisitionNumber": 2},
                         name=lambda k: f"B{k:03d}", seed=1)
    ct = load_ct(tmp_path)
    assert np.array_equal(ct.hu, HU)
    (warning,) = [w for w in ct.warnings if "acquisitions" in w]
    assert "loaded AcquisitionNumber 1 (8 images)" in warning and "2 (8 images, e.g. B" in warning
    chosen = load_ct(later[0])
    assert np.array_equal(chosen.hu, HU + 40) and np.allclose(chosen.affine, ct.affine)
