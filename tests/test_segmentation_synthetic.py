"""Synthetic cohort backend: a case folder's own organs/parts masks, checked against its CT."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from inference.ct_io import load_ct
from inference.errors import InputError
from inference.segmentation import make_expert
from inference.segmentation.synthetic import SyntheticCohortExpert


def write_case(folder: Path, parts: bool = True, organs_affine_shift: float = 0.0) -> Path:
    """A cohort case as training/cohort writes it: ct, organs, parts on one RAS grid."""
    folder.mkdir(parents=True)
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    affine[:3, 3] = [-20.0, -16.0, -10.0]
    hu = np.full((20, 16, 6), -1000, np.int16)
    hu[4:16, 3:13, 1:5] = 50
    organs = np.zeros(hu.shape, np.uint8)
    organs[4:10, 3:13, 1:5] = 5    # liver
    organs[10:16, 3:13, 1:5] = 1   # spleen
    nib.save(nib.Nifti1Image(hu, affine), str(folder / "ct.nii.gz"))
    shifted = affine.copy()
    shifted[0, 3] += organs_affine_shift
    nib.save(nib.Nifti1Image(organs, shifted), str(folder / "organs.nii.gz"))
    if parts:
        p = np.zeros(hu.shape, np.uint8)
        p[4:7, 3:13, 1:5] = 105
        p[7:10, 3:13, 1:5] = 108
        nib.save(nib.Nifti1Image(p, affine), str(folder / "parts.nii.gz"))
    return folder / "ct.nii.gz"


def test_reads_the_case_masks(tmp_path):
    ct = load_ct(write_case(tmp_path / "cases" / "case_0001"))
    progress = []
    masks = make_expert("synthetic").segment(ct, progress=lambda f, m: progress.append(f))
    assert masks.backend == "synthetic" and masks.shape == ct.shape
    voxel_ml = 2 * 2 * 5 / 1000
    assert masks.volume_ml(5) == pytest.approx(6 * 10 * 4 * voxel_ml)
    assert masks.volume_ml(1) == pytest.approx(6 * 10 * 4 * voxel_ml)
    assert masks.present_ids() == [1, 5, 105, 108]
    assert masks.volume_ml(105) + masks.volume_ml(108) == pytest.approx(masks.volume_ml(5))
    assert progress[-1] == 1.0


def test_parts_are_optional_and_case_dir_can_be_given(tmp_path):
    ct_file = write_case(tmp_path / "c", parts=False)
    ct = load_ct(ct_file)
    masks = SyntheticCohortExpert(case_dir=tmp_path / "c").segment(ct)
    assert masks.parts is None and masks.volume_ml(5) > 0


def test_not_a_case_folder(tmp_path):
    ct = load_ct(write_case(tmp_path / "c"))
    (tmp_path / "c" / "organs.nii.gz").unlink()
    with pytest.raises(InputError) as err:
        SyntheticCohortExpert().segment(ct)
    assert str(tmp_path / "c") in str(err.value) and "organs.nii.gz" in str(err.value)


def test_masks_off_the_ct_grid_are_refused(tmp_path):
    ct = load_ct(write_case(tmp_path / "c", organs_affine_shift=6.0))
    with pytest.raises(InputError, match="not on the grid of the CT"):
        SyntheticCohortExpert().segment(ct)


def test_wrong_ids_are_refused(tmp_path):
    ct_file = write_case(tmp_path / "c")
    img = nib.load(str(tmp_path / "c" / "parts.nii.gz"))
    nib.save(nib.Nifti1Image(np.where(np.asarray(img.dataobj) > 0, 5, 0).astype(np.uint8), img.affine),
             str(tmp_path / "c" / "parts.nii.gz"))
    with pytest.raises(InputError, match="not substructure ids"):
        SyntheticCohortExpert().segment(load_ct(ct_file))
