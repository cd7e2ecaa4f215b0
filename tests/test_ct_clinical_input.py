"""Real clinical CT input (issue 14): the file kinds a PACS or dcm2niix writes load with the right
geometry and HU, checked against nibabel's and pydicom's own reading; broken ones are refused with
an error that names the slice file and the problem; an MR is viewed but not analyzed unasked."""
from __future__ import annotations

import gzip
import resource
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from dicom_factory import phantom, write_nifti_raw, write_series
from inference.ct_io import load_ct
from inference.ct_volume import CTVolume
from inference.errors import InputError, NotCTError
from inference.pipeline import require_ct

AFFINE = np.array([[-0.8, 0, 0, 120.0], [0, -0.8, 0, 90.0], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])


def _nib_hu(path: Path) -> np.ndarray:
    """What nibabel reads, rounded and clipped to int16 HU the way the loader promises."""
    return np.clip(np.rint(nib.load(str(path)).get_fdata()), -32768, 32767).astype(np.int16)


def _body(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000.0)
    i, j = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    hu[(i / 0.9) ** 2 + (j / 0.7) ** 2 < 1] = 40.0
    return hu + rng.normal(0, 15, shape)


# -- NIfTI over the 4 MiB read chunk --------------------------------------------------------------

@pytest.mark.parametrize("kind", ["int32", "uint16", "float32", "scaled_int16", "scaled_uint16_gz"])
def test_nifti_over_one_chunk_loads_like_nibabel(tmp_path, kind):
    """Every voxel type over 4 MiB used to fail as 'truncated' (the first chunk was checked
    against the whole volume)."""
    shape = (122, 101, 112) if kind in ("int32", "float32") else (160, 140, 100)
    hu = _body(shape)
    name = "ct.nii.gz" if kind.endswith("_gz") else "ct.nii"
    if kind == "int32":
        raw, slope, inter = np.rint(hu).astype(np.int32), 1.0, 0.0
    elif kind == "uint16":
        raw, slope, inter = np.clip(np.rint(hu + 1024), 0, None).astype(np.uint16), 1.0, -1024.0
    elif kind == "float32":
        raw, slope, inter = hu.astype(np.float32), 1.0, 0.0
    elif kind == "scaled_int16":  # what dcm2niix writes for a CT with a fractional slope
        raw, slope, inter = np.rint((hu + 1024) / 0.5).astype(np.int16), 0.5, -1024.0
    else:
        raw, slope, inter = np.clip(np.rint(hu + 1024), 0, None).astype(np.uint16), 1.0, -1024.0
    path = write_nifti_raw(tmp_path / name, raw, AFFINE, slope=slope, inter=inter)
    assert raw.nbytes > 4 * 2**20
    ct = load_ct(path)
    assert ct.shape == shape and np.allclose(ct.affine, nib.load(str(path)).affine)
    assert np.array_equal(ct.hu, _nib_hu(path))
    assert ct.plausibility().looks_like_ct


def test_nifti_really_truncated_still_says_how_much(tmp_path):
    raw = np.zeros((160, 140, 100), np.int32)
    path = write_nifti_raw(tmp_path / "ct.nii", raw, AFFINE)
    path.write_bytes(path.read_bytes()[: 352 + 7 * 2**20])
    with pytest.raises(InputError, match=r"truncated: the header promises 8960000 bytes .* only 7340032"):
        load_ct(path)


@pytest.mark.parametrize("pixdim", [1e38, 0.0, float("nan")])
def test_nifti_absurd_or_singular_spacing_is_refused_at_load(tmp_path, pixdim):
    path = write_nifti_raw(tmp_path / "ct.nii", np.zeros((8, 8, 4), np.int16), AFFINE, codes=(0, 1))
    b = bytearray(path.read_bytes())
    b[312 + 8:312 + 12] = np.float32(pixdim).tobytes()  # srow_z[2]: the sform's slice step
    path.write_bytes(bytes(b))
    with pytest.raises(InputError) as err:
        load_ct(path)
    assert str(path) in str(err.value) and "cannot be placed in 3D" in str(err.value)


def test_ctvolume_refuses_a_singular_affine_itself():
    with pytest.raises(InputError, match="voxel size"):
        CTVolume(hu=np.zeros((4, 4, 4), np.int16), affine=np.diag([1.0, 1.0, 0.0, 1.0]), source_path=Path("x.nii"))
    with pytest.raises(InputError, match="parallel"):
        CTVolume(hu=np.zeros((4, 4, 4), np.int16), affine=np.array(
            [[1.0, 1.0, 0, 0], [0, 0.001, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), source_path=Path("x.nii"))


# -- DICOM headers with one defect ---------------------------------------------------------------

def _series(tmp_path, **kw) -> list[Path]:
    return write_series(tmp_path / "series", phantom(), np.diag([-0.8, -0.8, 2.5, 1.0]), **kw)


def _edit(path: Path, **tags) -> None:
    ds = pydicom.dcmread(path)
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(path)


def _raw_edit(path: Path, tag: bytes, vr: bytes, value: bytes) -> None:
    """Replace an explicit-VR short element's value with bytes pydicom would not write itself."""
    b = bytearray(path.read_bytes())
    i = b.find(tag + vr)
    assert i > 0
    n = int.from_bytes(b[i + 6:i + 8], "little")
    value = value + b" " * (len(value) % 2)
    b[i + 6:i + 8 + n] = len(value).to_bytes(2, "little") + value
    path.write_bytes(bytes(b))


def test_dicom_loads_like_pydicom(tmp_path):
    paths = _series(tmp_path)
    ct = load_ct(paths[0].parent)
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        want = np.rint(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)).astype(np.int16)
        assert np.array_equal(ct.hu[:, :, k].T, want)


def test_negative_pixel_spacing_is_refused_not_mirrored(tmp_path):
    paths = _series(tmp_path)
    for p in paths:
        _edit(p, PixelSpacing=[-0.8, -0.8])
    with pytest.raises(InputError) as err:
        load_ct(paths[0].parent)
    assert err.value.path.parent == paths[0].parent and err.value.path.name.startswith("IM")
    assert "PixelSpacing -0.8" in err.value.problem


@pytest.mark.parametrize("tag,value,words", [
    ("RescaleIntercept", b"abc", "RescaleIntercept 'abc' is not a number"),
    ("RescaleIntercept", b"1e300", "far outside any CT's range"),
    ("RescaleSlope", b"NaN", "RescaleSlope is 'NaN'"),
    ("RescaleSlope", b"inf", "RescaleSlope is 'inf'"),
    ("RescaleSlope", b"0", "RescaleSlope is 0; it must be positive"),
    ("RescaleSlope", b"-1", "RescaleSlope is -1; it must be positive"),
])
def test_unusable_rescale_in_one_slice_names_that_slice(tmp_path, tag, value, words):
    paths = _series(tmp_path)
    bad = paths[4]
    code = {"RescaleIntercept": b"\x28\x00\x52\x10", "RescaleSlope": b"\x28\x00\x53\x10"}[tag]
    _raw_edit(bad, code, b"DS", value)
    with pytest.raises(InputError) as err:
        load_ct(paths[0].parent)
    assert err.value.path == bad and words in err.value.problem


def test_rows_that_disagree_with_the_pixel_data_are_refused(tmp_path):
    paths = _series(tmp_path)
    _edit(paths[2], Rows=19)  # the pixel data holds 20 rows; the others say 20
    with pytest.raises(InputError) as err:
        load_ct(paths[0].parent)
    assert err.value.path == paths[2] and "left out: its size 24x19 differs" in err.value.problem
    for p in paths:  # every slice says 19: each one's pixels disagree
        _edit(p, Rows=19)
    with pytest.raises(InputError) as err:
        load_ct(paths[0].parent)
    assert err.value.path in paths and "does not match its pixels" in err.value.problem


@pytest.mark.parametrize("tags,words", [
    ({"PixelSpacing": [0, 0]}, "PixelSpacing 0"),
    ({"PixelSpacing": [1e300, 1e300]}, "PixelSpacing 1e+300"),
    ({"ImageOrientationPatient": [0, 0, 0, 0, 0, 0]}, "not unit vectors"),
])
def test_broken_geometry_is_refused_at_load_naming_the_file(tmp_path, tags, words):
    paths = _series(tmp_path)
    for p in paths:
        _edit(p, **tags)
    with pytest.raises(InputError) as err:
        load_ct(paths[0].parent)
    assert err.value.path in paths and words in err.value.problem


def test_nan_orientation_names_the_file(tmp_path):
    paths = _series(tmp_path)
    _raw_edit(paths[0], b"\x20\x00\x37\x00", b"DS", b"NaN\\0\\0\\0\\1\\0")
    with pytest.raises(InputError) as err:
        load_ct(paths[0].parent)
    assert err.value.path == paths[0] and "no valid ImageOrientationPatient" in err.value.problem


def test_an_unknown_vr_in_one_header_loses_only_that_field(tmp_path):
    paths = _series(tmp_path)
    first = sorted(paths)[0]  # the file the series' description is read from
    b = bytearray(first.read_bytes())
    i = b.find(b"\x08\x00\x3e\x10LO")
    b[i + 4:i + 6] = b"ZZ"
    first.write_bytes(bytes(b))
    ct = load_ct(paths[0].parent)
    assert ct.shape == (24, 20, 10)
    assert any(first.name in w and "SeriesDescription could not be read" in w for w in ct.warnings)


def test_a_slice_left_out_for_its_orientation_is_named_in_the_gap(tmp_path):
    paths = _series(tmp_path)
    odd = paths[5]
    _edit(odd, ImageOrientationPatient=[1, 0, 0, 0, 0.9998477, 0.0174524])  # 1 degree off
    with pytest.raises(InputError) as err:
        load_ct(paths[0].parent)
    assert err.value.path == odd
    assert "belongs there but was left out: its ImageOrientationPatient" in err.value.problem


# -- not CT -------------------------------------------------------------------------------------

def test_mr_series_is_viewable_but_not_analyzed_unasked(tmp_path):
    mr = np.clip(_body((24, 20, 10)) + 1000, -47, 833).astype(np.int16)  # MR-like values -47..833
    paths = write_series(tmp_path / "mr", mr, np.diag([-0.8, -0.8, 2.5, 1.0]), modality="MR", intercept=-47)
    vol = load_ct(paths[0].parent, series_uid=pydicom.dcmread(paths[0]).SeriesInstanceUID)
    check = vol.plausibility()
    assert not check.looks_like_ct
    assert any("modality is MR" in r for r in check.reasons) and any("holds no air" in r for r in check.reasons)
    with pytest.raises(NotCTError) as err:
        require_ct(vol, allow_non_ct=False)
    assert err.value.path == vol.source_path and "--allow-non-ct" in err.value.problem
    require_ct(vol, allow_non_ct=True)  # the user's override


def test_mr_like_nifti_and_raw_stored_values_are_not_ct(tmp_path):
    mr = np.rint(np.clip(_body((40, 30, 12)) + 1000, -47, 833)).astype(np.int16)
    check = load_ct(write_nifti_raw(tmp_path / "mr.nii.gz", mr, AFFINE)).plausibility()
    assert not check.looks_like_ct and "holds no air" in check.reasons[0]
    raw = np.rint(_body((40, 30, 12)) + 1000).astype(np.int16)  # a CT saved without its -1024 intercept
    raw = np.clip(raw, 0, None)
    check = load_ct(write_nifti_raw(tmp_path / "raw.nii.gz", raw, AFFINE)).plausibility()
    assert not check.looks_like_ct and "without their RescaleIntercept" in check.reasons[0]


def test_the_real_example_ct_looks_like_ct():
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "example_ct_sm.nii.gz"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared real CT lives beside the checkout)")
    assert load_ct(path).plausibility().looks_like_ct


# -- masks -------------------------------------------------------------------------------------

def _ct(tmp_path, shape=(20, 16, 10)) -> CTVolume:
    hu = np.where(np.arange(np.prod(shape)).reshape(shape) % 3 == 0, -1000, 40).astype(np.int16)
    return CTVolume(hu=hu, affine=np.diag([1.5, 1.5, 3.0, 1.0]), source_path=tmp_path / "ct.nii.gz")


def test_mask_declaring_a_huge_grid_is_refused_before_reading_voxels(tmp_path):
    from inference.segmentation.precomputed import PrecomputedExpert

    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.uint8)
    hdr.set_data_shape((1700, 1700, 1700))
    hdr["vox_offset"] = 352
    path = tmp_path / "bomb.nii.gz"
    with gzip.open(path, "wb") as f:  # the header alone: reading the voxels would need 4.9 GB
        f.write(hdr.binaryblock + b"\x00" * 4 + b"\x00" * 2**20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InputError) as err:
        PrecomputedExpert(path).segment(_ct(tmp_path))
    assert err.value.path == path and "1700x1700x1700" in err.value.problem
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB


def test_one_stray_id_does_not_switch_the_label_scheme(tmp_path):
    from inference.segmentation.precomputed import PrecomputedExpert

    ct = _ct(tmp_path)
    data = np.zeros(ct.shape, np.uint8)
    data[:5] = 5  # liver
    data[5:10] = 28  # merged sacrum (TotalSegmentator 28 is vertebrae L4)
    data[10:14] = 40  # merged id 40
    data[0, 0, :4] = 60  # a stray id, 4 voxels, that only TotalSegmentator defines
    path = tmp_path / "organs.nii.gz"
    nib.save(nib.Nifti1Image(data, ct.affine), str(path))
    masks = PrecomputedExpert(path).segment(ct)
    assert masks.details["scheme"] == "merged"
    assert set(masks.present_ids()) == {5, 28, 40}
    text = " ".join(masks.details["warnings"])
    assert "60 (4 voxels)" in text and "left out" in text


def test_totalsegmentator_output_without_header_names_is_still_recognised(tmp_path):
    from inference.segmentation.precomputed import PrecomputedExpert

    ct = _ct(tmp_path)
    data = np.zeros(ct.shape, np.uint8)
    data[:5], data[5:8], data[8:10] = 5, 86, 92  # liver, autochthon, a rib
    path = tmp_path / "seg.nii.gz"
    nib.save(nib.Nifti1Image(data, ct.affine), str(path))
    masks = PrecomputedExpert(path).segment(ct)
    assert masks.details["scheme"] == "totalseg" and "only TotalSegmentator has" in masks.details["scheme_reason"]


@pytest.mark.parametrize("fill,words", [(0, "the mask is empty"), (200, "maps to an organ")])
def test_empty_or_unmappable_masks_are_warned(tmp_path, fill, words):
    from inference.segmentation.precomputed import PrecomputedExpert

    ct = _ct(tmp_path)
    path = tmp_path / "m.nii.gz"
    nib.save(nib.Nifti1Image(np.full(ct.shape, fill, np.uint8), ct.affine), str(path))
    masks = PrecomputedExpert(path, scheme="totalseg").segment(ct)
    text = " ".join(masks.details["warnings"])
    assert words in text and not masks.organs.any()
    if fill:
        assert "200 (3200 voxels)" in text and "is this the right label scheme" in text


# -- case folders and the export of a folder's run -----------------------------------------------

def test_one_resolver_for_a_case_folder(tmp_path):
    from app.load_worker import resolve_request
    from inference.case_folder import resolve_case
    from inference.pipeline import AnalysisRequest
    from training.cohort.case import CASE_FILES

    folder = tmp_path / "case"
    folder.mkdir()
    for name in CASE_FILES[:3]:
        (folder / name).write_bytes(b"")
    case = resolve_case(folder)
    assert (case.ct.name, case.organs.name, case.parts.name, case.scheme) == (
        "ct.nii.gz", "organs.nii.gz", "parts.nii.gz", "merged")
    req = AnalysisRequest.from_path(folder, question="q")
    gui = resolve_request(folder)
    assert (req.ct_path, req.masks_path, req.parts_path, req.mask_scheme) == (gui.ct, gui.masks, gui.parts, gui.scheme)
    other = resolve_case(folder, masks=tmp_path / "mine.nii.gz")
    assert other.organs == tmp_path / "mine.nii.gz" and other.parts is None and other.scheme == "auto"
    assert resolve_case(folder, own_masks=False).organs is None
    assert resolve_case(tmp_path / "dicom").ct == tmp_path / "dicom"  # any other folder: a DICOM series
