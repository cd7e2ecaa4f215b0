"""Precomputed masks from a NIfTI file: scheme detection, grid check / reorientation, organ volumes."""
from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from inference.ct_volume import CTVolume
from inference.errors import InputError
from inference.labels import merged_labels, totalseg_names, totalseg_to_merged
from inference.segmentation import make_expert
from inference.segmentation.precomputed import PrecomputedExpert, detect_scheme

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CT_FILE, SEG_FILE = DATA / "example_ct_sm.nii.gz", DATA / "example_seg.nii.gz"
ID = {lab.name: lab.id for lab in merged_labels()}


@pytest.fixture(scope="module")
def real() -> tuple[CTVolume, np.ndarray, np.ndarray]:
    """The real CT, its TotalSegmentator mask as stored, and the mask's affine."""
    if not (CT_FILE.is_file() and SEG_FILE.is_file()):
        pytest.skip(f"real test data absent: {CT_FILE}, {SEG_FILE}")
    from inference.ct_io import load_ct
    seg = nib.load(str(SEG_FILE))
    return load_ct(CT_FILE), np.asarray(seg.dataobj), seg.affine


def synthetic_ct(tmp_path: Path, shape=(20, 16, 10)) -> CTVolume:
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    affine[:3, 3] = [-15.0, -12.0, 40.0]
    return CTVolume(hu=np.zeros(shape, np.int16), affine=affine, source_path=tmp_path / "ct.nii.gz")


def save(path: Path, data: np.ndarray, affine: np.ndarray, dtype=np.uint8) -> Path:
    nib.save(nib.Nifti1Image(data.astype(dtype), affine), str(path))
    return path


def test_real_totalsegmentator_mask_volumes(real):
    ct, raw, _ = real
    masks = PrecomputedExpert(SEG_FILE).segment(ct)
    assert masks.details["scheme"] == "totalseg" and not masks.details["warnings"]  # from the label header
    assert masks.shape == ct.shape and masks.parts is None
    voxel_ml = abs(np.linalg.det(ct.affine[:3, :3])) / 1000.0  # 3 x 3 x 3 mm = 0.027 ml
    names = {v: k for k, v in totalseg_names().items()}
    # merged organ volume == direct count of its TotalSegmentator classes in the file
    for organ, ts_classes in {"liver": ["liver"], "spleen": ["spleen"], "kidney_right": ["kidney_right"],
                              "kidney_left": ["kidney_left"], "gallbladder": ["gallbladder"],
                              "stomach": ["stomach"], "pancreas": ["pancreas"],
                              "lumbar_vertebrae": ["vertebrae_L1", "vertebrae_L2"],
                              "rib_left": [f"rib_left_{i}" for i in range(7, 13)]}.items():
        direct = sum(int((raw == names[c]).sum()) for c in ts_classes) * voxel_ml
        assert direct > 0, organ
        assert masks.volume_ml(ID[organ]) == pytest.approx(direct, rel=1e-9), organ
    # Plausibility. The scan is a 9 cm slab (30 x 3 mm): liver, spleen and kidneys are cut by its
    # first/last slice, so only the gallbladder lies wholly inside; whole-organ ranges bound the rest.
    assert 10 < masks.volume_ml(ID["gallbladder"]) < 100
    assert 500 < masks.volume_ml(ID["liver"]) < 2500  # measured 1043 ml of a partly covered liver
    assert 50 < masks.volume_ml(ID["spleen"]) < 500
    for kidney in ("kidney_right", "kidney_left"):
        assert 40 < masks.volume_ml(ID[kidney]) < 300
    assert masks.volume_ml(ID["liver"]) > masks.volume_ml(ID["spleen"]) > masks.volume_ml(ID["gallbladder"])


def test_mask_stored_in_another_axis_order_is_reoriented(real, tmp_path):
    ct, raw, affine = real
    direct = PrecomputedExpert(SEG_FILE).segment(ct).organs
    # LPS storage (i and j flipped) and a transposed file: the same voxels, other orders
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [raw.shape[0] - 1, raw.shape[1] - 1]
    lps = save(tmp_path / "lps.nii.gz", raw[::-1, ::-1, :], affine @ flip)
    swap = np.eye(4)[[1, 0, 2, 3]]
    transposed = save(tmp_path / "jik.nii.gz", raw.transpose(1, 0, 2), affine @ swap)
    for path, codes in ((lps, "LPS"), (transposed, "ARS")):
        masks = PrecomputedExpert(path, scheme="totalseg").segment(ct)
        assert np.array_equal(masks.organs, direct), path
        assert any(f"stored as {codes}" in w and "reoriented" in w for w in masks.details["warnings"])


@pytest.mark.parametrize("change", ["shape", "origin", "spacing"])
def test_mask_on_another_grid_is_refused(tmp_path, change):
    ct = synthetic_ct(tmp_path)
    data, affine = np.zeros(ct.shape, np.uint8), ct.affine.copy()
    if change == "shape":
        data = data[:, :, :-1]
    elif change == "origin":
        affine[0, 3] += 4.0
    else:
        affine[2, 2] = 2.5
    path = save(tmp_path / "other.nii.gz", data, affine)
    with pytest.raises(InputError) as err:
        PrecomputedExpert(path).segment(ct)
    text = str(err.value)
    assert str(path) in text and str(ct.source_path) in text and "not on the grid of the CT" in text
    if change == "shape":  # refused from the header, before the voxels are read
        assert "header declares 20x16x9 voxels, the CT has 20x16x10" in text
    else:
        assert "mask has shape" in text and "CT has shape" in text


def test_small_float_rounding_is_accepted(tmp_path):
    ct = synthetic_ct(tmp_path)
    affine = ct.affine.copy()
    affine[:3, 3] += 1e-3  # float32 storage and tool rounding
    data = np.zeros(ct.shape, np.uint8)
    data[2:5, 2:5, 2:5] = 5
    masks = PrecomputedExpert(save(tmp_path / "m.nii.gz", data, affine)).segment(ct)
    assert masks.volume_ml(ID["liver"]) == pytest.approx(27 * 1.5 * 1.5 * 3.0 / 1000)


def test_merged_scheme_file_and_scheme_detection(tmp_path):
    ct = synthetic_ct(tmp_path)
    data = np.zeros(ct.shape, np.uint8)
    data[:4] = ID["liver"]
    data[4:8] = ID["sacrum"]  # merged 28 (TotalSegmentator 25); 28 is vertebrae_L4 in TotalSegmentator
    path = save(tmp_path / "merged.nii.gz", data, ct.affine)
    auto = PrecomputedExpert(path).segment(ct)
    assert auto.details["scheme"] == "merged" and "--mask-scheme totalseg" in auto.details["warnings"][0]
    assert auto.volume_ml(ID["sacrum"]) > 0 and auto.volume_ml(ID["lumbar_vertebrae"]) == 0
    as_ts = PrecomputedExpert(path, scheme="totalseg").segment(ct)
    assert as_ts.volume_ml(ID["lumbar_vertebrae"]) == auto.volume_ml(ID["sacrum"])  # TS 28 = L4

    def decide(counts, names=None):
        d = detect_scheme(counts, names or {})
        return d.scheme, d.warning

    assert decide({0: 9, 1: 5, 5: 5, 20: 5}) == ("merged", None)  # ids 1..22 mean the same in both
    assert decide({5: 100, 86: 50})[0] == "totalseg"  # autochthon exists only in TotalSegmentator
    assert decide({5: 1, 25: 1}, {5: "liver", 25: "lumbar_vertebrae"}) == ("merged", None)
    assert decide({5: 1, 25: 1}, {5: "liver", 25: "sacrum"}) == ("totalseg", None)


def test_merged_file_with_substructures_and_separate_parts(tmp_path):
    ct = synthetic_ct(tmp_path)
    data = np.zeros(ct.shape, np.uint8)
    data[:10] = ID["liver"]
    data[:5, :8] = 101  # Couinaud segment 1 stored in the same file
    masks = PrecomputedExpert(save(tmp_path / "m.nii.gz", data, ct.affine), scheme="merged").segment(ct)
    assert masks.volume_ml(ID["liver"]) == pytest.approx(10 * 16 * 10 * 0.00675)  # segment voxels count as liver
    assert masks.volume_ml(101) == pytest.approx(5 * 8 * 10 * 0.00675)

    organs = save(tmp_path / "organs.nii.gz", np.where(data > 0, ID["liver"], 0), ct.affine)
    parts = np.where(data == 101, 101, 0)
    parts_file = save(tmp_path / "parts.nii.gz", parts[::-1], ct.affine @ np.array(
        [[-1, 0, 0, ct.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float))
    both = PrecomputedExpert(organs, parts_path=parts_file).segment(ct)
    assert np.array_equal(both.parts, parts) and both.volume_ml(101) == masks.volume_ml(101)
    bad_parts = save(tmp_path / "bad_parts.nii.gz", np.where(data == 101, 7, 0), ct.affine)
    kept = PrecomputedExpert(organs, parts_path=bad_parts).segment(ct)  # stray ids: left out, said
    assert not kept.parts.any() and "ids 7 (400 voxels) are not substructure ids" in " ".join(kept.details["warnings"])


@pytest.mark.parametrize("problem", ["garbage", "float", "negative", "missing", "4d"])
def test_bad_mask_files_name_the_file(tmp_path, problem):
    ct = synthetic_ct(tmp_path)
    path = tmp_path / f"{problem}.nii.gz"
    data = np.zeros(ct.shape, np.float32)
    if problem == "garbage":
        path.write_bytes(b"this is not a NIfTI file at all" * 20)
    elif problem == "float":
        data[0, 0, 0] = 2.5
        save(path, data, ct.affine, dtype=np.float32)
    elif problem == "negative":
        data[0, 0, 0] = -3
        save(path, data, ct.affine, dtype=np.int16)
    elif problem == "4d":
        save(path, np.zeros(ct.shape + (2,)), ct.affine)
    with pytest.raises(InputError) as err:
        PrecomputedExpert(path, scheme="totalseg").segment(ct)
    assert str(path) in str(err.value)
    assert {"garbage": "cannot read as NIfTI", "float": "whole numbers", "negative": "0..255",
            "missing": "not found", "4d": "must be 3D"}[problem] in str(err.value)


def test_factory_and_identity(tmp_path):
    ct = synthetic_ct(tmp_path)
    path = save(tmp_path / "m.nii.gz", np.ones(ct.shape), ct.affine)
    expert = make_expert("precomputed", path=path)
    assert isinstance(expert, PrecomputedExpert)
    assert expert.segment(ct).backend == "precomputed:m.nii.gz"
    before = expert.cache_identity()
    save(path, np.full(ct.shape, 2), ct.affine)  # a rewritten file is another result
    os.utime(path, ns=(before["file"][2] + 10**9, before["file"][2] + 10**9))
    assert expert.cache_identity() != before and expert.cache_identity()["file"][0] == str(path.resolve())
    with pytest.raises(ValueError, match="scheme"):
        PrecomputedExpert(path, scheme="nnunet")
    assert np.array_equal(totalseg_to_merged(np.array([86], np.uint8)), [ID["autochthon"]])
