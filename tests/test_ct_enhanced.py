"""Enhanced (multi-frame) CT: one file whose frames are the slices, geometry and rescale in functional
groups. Built here by highdicom's legacy converter from a classic single-frame series written by
dicom_factory, so every test compares against the classic series' own load."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid as U
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicom_factory import write_series
from inference.ct_io import list_dicom_series, load_ct
from inference.errors import InputError

AFFINE = np.array([[0.8, 0, 0, -10.0], [0, 0.8, 0, 20.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1.0]])


@pytest.fixture(scope="module")
def classic(tmp_path_factory) -> tuple[Path, np.ndarray]:
    hu = np.random.default_rng(0).integers(-1000, 1500, size=(40, 32, 12)).astype(np.int16)
    folder = tmp_path_factory.mktemp("classic")
    write_series(folder, hu, AFFINE)
    return folder, hu


def enhanced(classic_folder: Path) -> Dataset:
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    legacy = [pydicom.dcmread(p) for p in sorted(classic_folder.iterdir())]
    mf = LegacyConvertedEnhancedCTImage(legacy, series_instance_uid=U.generate_uid(), series_number=9,
                                        sop_instance_uid=U.generate_uid(), instance_number=1)
    return pydicom.dcmread(_save(mf, classic_folder.parent / f"mf-{U.generate_uid()}.dcm"))


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def test_enhanced_ct_loads_like_its_classic_series(classic, tmp_path):
    folder, hu = classic
    mf = enhanced(folder)
    assert mf.NumberOfFrames == 12 and "PerFrameFunctionalGroupsSequence" in mf
    (tmp_path / "enh").mkdir()
    path = _save(mf, tmp_path / "enh" / "ct.dcm")
    reference = load_ct(folder)
    for source in (path, path.parent):  # the file itself, or its folder
        ct = load_ct(source)
        assert np.array_equal(ct.hu, hu) and np.array_equal(ct.hu, reference.hu)
        assert np.allclose(ct.affine, reference.affine, atol=1e-4)
        assert ct.slice_thickness_mm == pytest.approx(2.5) and ct.series_uid == mf.SeriesInstanceUID
    # a SEG/SR references slices: they get UIDs of their own, written by the export (test_report_dicom)
    from inference.report.dicom_source import has_dicom_source

    assert has_dicom_source(ct) and ct.study.derived_slices and len(set(ct.study.sop_instance_uids)) == 12
    # the chooser counts its frames as slices
    assert list_dicom_series(path.parent)[0].n_slices == 12


def test_frames_in_any_order_with_their_own_rescale(classic, tmp_path):
    folder, hu = classic
    mf = enhanced(folder)
    frames = mf.pixel_array.astype(np.int32)  # stored values, in the converter's order
    shared = mf.SharedFunctionalGroupsSequence[0]
    intercept = float(shared.PixelValueTransformationSequence[0].RescaleIntercept)
    del shared.PixelValueTransformationSequence
    order = list(range(12))[::-1]  # frames stored from the last slice to the first
    items, data = [], []
    for n, i in enumerate(order):
        item = copy.deepcopy(mf.PerFrameFunctionalGroupsSequence[i])
        own = -1000.0 if n % 2 else intercept  # every other frame has its own intercept
        t = Dataset()
        t.RescaleIntercept, t.RescaleSlope, t.RescaleType = own, 1, "HU"
        item.PixelValueTransformationSequence = Sequence([t])
        items.append(item)
        data.append(frames[i] + int(intercept - own))
    mf.PerFrameFunctionalGroupsSequence = Sequence(items)
    mf.PixelData = np.stack(data).astype(np.uint16).tobytes()
    ct = load_ct(_save(mf, tmp_path / "reordered.dcm"))
    assert np.array_equal(ct.hu, hu)
    assert np.allclose(ct.affine, load_ct(folder).affine, atol=1e-4)


def test_compressed_enhanced_ct(classic, tmp_path):
    folder, hu = classic
    mf = enhanced(folder)
    mf.compress(U.RLELossless)  # pydicom's own encoder: every frame a fragment
    assert mf.file_meta.TransferSyntaxUID == U.RLELossless
    assert np.array_equal(load_ct(_save(mf, tmp_path / "rle.dcm")).hu, hu)


def test_a_localizer_frame_is_left_out_with_a_warning(classic, tmp_path):
    folder, hu = classic
    mf = enhanced(folder)
    extra = copy.deepcopy(mf.PerFrameFunctionalGroupsSequence[0])
    o = Dataset()
    o.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a coronal frame among axial ones
    extra.PlaneOrientationSequence = Sequence([o])
    mf.PerFrameFunctionalGroupsSequence.append(extra)
    mf.NumberOfFrames = 13
    mf.PixelData = mf.PixelData + np.full((32, 40), 7, dtype=np.uint16).tobytes()
    ct = load_ct(_save(mf, tmp_path / "with_localizer.dcm"))
    assert np.array_equal(ct.hu, hu)
    assert any("left out 1 image" in w for w in ct.warnings), ct.warnings


def test_a_frame_that_cannot_be_placed_is_named(classic, tmp_path):
    mf = enhanced(classic[0])
    del mf.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence
    path = _save(mf, tmp_path / "no_position.dcm")
    with pytest.raises(InputError) as err:
        load_ct(path)
    assert err.value.path == path and "frame 3 of 12" in str(err.value) and "ImagePositionPatient" in str(err.value)


def test_a_truncated_enhanced_file_is_refused_naming_it(classic, tmp_path):
    path = _save(enhanced(classic[0]), tmp_path / "whole.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size - 3000])
    with pytest.raises(InputError) as err:
        load_ct(cut)
    assert err.value.path == cut and ("truncated" in str(err.value) or "cut" in str(err.value)), err.value


def test_the_enhanced_series_is_chosen_over_a_small_classic_one(classic, tmp_path):
    folder, hu = classic
    _save(enhanced(folder), tmp_path / "enhanced.dcm")
    write_series(tmp_path / "scout", hu[:, :, :3], AFFINE, description="scout")
    ct = load_ct(tmp_path)
    assert ct.shape == hu.shape and any("2 image series" in w for w in ct.warnings)


def test_implicit_vr_enhanced_ct(classic, tmp_path):
    """The truncation check reads the pixel element's own header length (8 bytes implicit, 12 explicit)."""
    folder, hu = classic
    mf = enhanced(folder)
    mf.file_meta.TransferSyntaxUID = U.ImplicitVRLittleEndian
    path = tmp_path / "implicit.dcm"
    mf.save_as(path, implicit_vr=True, little_endian=True)
    assert np.array_equal(load_ct(path).hu, hu)


def test_one_frame_enhanced_files_make_a_series(classic, tmp_path):
    """Some exports write an enhanced image per slice: one frame each, its position in the functional groups."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    folder, hu = classic
    series = U.generate_uid()
    for n, p in enumerate(sorted(folder.iterdir()), start=1):
        one = LegacyConvertedEnhancedCTImage([pydicom.dcmread(p)], series_instance_uid=series, series_number=9,
                                             sop_instance_uid=U.generate_uid(), instance_number=n)
        assert one.NumberOfFrames == 1 and "ImagePositionPatient" not in one
        _save(one, tmp_path / f"f{n:03d}.dcm")
    ct = load_ct(tmp_path)
    assert np.array_equal(ct.hu, hu) and np.allclose(ct.affine, load_ct(folder).affine, atol=1e-4)
