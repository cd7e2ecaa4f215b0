"""CT preprocessing: orientation, window, crop/pad without distortion, resize, and the mapping back."""
from __future__ import annotations

from pathlib import Path

import nibabel.orientations as nio
import numpy as np
import pytest
import torch

from inference.ct_volume import CTVolume
from inference.errors import InputError
from inference.preprocess import MODEL_SHAPE, preprocess
from inference.segmentation.organ_masks import OrganMasks

from tiny_models import one_torch_thread

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

SPACING = (0.8, 1.0, 2.5)  # i (x), j (y), k (z) in mm
ORIGIN = np.array([-48.0, -45.0, -50.0])
BODY_SEMI_AXES = (40.0, 25.0)  # mm along x (left-right) and y (anterior-posterior): not a circle
MARKER_IJK = (80, 55, 30)  # a 3x3x3 bright block centred here (voxel indices in the RAS storage)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_torch_thread():
        yield


def phantom(marker_ijk=MARKER_IJK) -> tuple[CTVolume, OrganMasks]:
    """A RAS-stored abdomen: an elliptic body cylinder (40 HU) in air, a bright marker (1000 HU),
    a spherical 'liver' (id 5, radius 10 mm) and one 'part' (id 101) inside it."""
    shape = (120, 90, 40)
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = ORIGIN
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(np.float64)
    xyz = ijk * np.array(SPACING) + ORIGIN
    body = (xyz[..., 0] / BODY_SEMI_AXES[0]) ** 2 + (xyz[..., 1] / BODY_SEMI_AXES[1]) ** 2 <= 1.0
    hu = np.where(body, 40, -1000).astype(np.int16)
    i, j, k = marker_ijk
    hu[i - 1:i + 2, j - 1:j + 2, k - 1:k + 2] = 1000
    organ = np.linalg.norm(xyz - np.array([-10.0, 5.0, 0.0]), axis=-1) <= 10.0
    organs = np.where(organ, 5, 0).astype(np.uint8)
    parts = np.where(organ & (xyz[..., 2] > 0), 101, 0).astype(np.uint8)
    ct = CTVolume(hu=hu, affine=affine, source_path=Path("phantom.nii.gz"))
    return ct, OrganMasks(organs=organs, affine=affine, backend="synthetic", parts=parts)


def restored(ct: CTVolume, masks: OrganMasks, codes: tuple[str, str, str]) -> tuple[CTVolume, OrganMasks]:
    """The same phantom stored in another voxel order (e.g. LPS with permuted axes)."""
    ornt = nio.ornt_transform(nio.io_orientation(ct.affine), nio.axcodes2ornt(codes))
    affine = ct.affine @ nio.inv_ornt_aff(ornt, ct.shape)
    move = lambda a: np.ascontiguousarray(nio.apply_orientation(a, ornt))  # noqa: E731
    ct2 = CTVolume(hu=move(ct.hu), affine=affine, source_path=Path("phantom_lps.nii.gz"))
    return ct2, OrganMasks(organs=move(masks.organs), affine=affine, backend="synthetic", parts=move(masks.parts))


def bright_centre(volume: torch.Tensor) -> np.ndarray:
    """Centre of mass (d, h, w) of the intensity above the body's 0.5 (the marker), sub-voxel."""
    excess = np.clip(volume[0, 0].numpy() - 0.5, 0.0, None)
    idx = np.argwhere(excess > 0)
    weights = excess[excess > 0]
    return (idx * weights[:, None]).sum(axis=0) / weights.sum()


@pytest.fixture(scope="module")
def case():
    ct, masks = phantom()
    return ct, masks, preprocess(ct, masks)


def test_output_shape_window_and_dtype(case):
    _, _, mi = case
    assert tuple(mi.volume.shape) == (1, 1, *MODEL_SHAPE) and mi.volume.dtype == torch.float32
    values = mi.volume.numpy()
    assert values.min() == 0.0 and values.max() == pytest.approx(1.0)
    body = values[0, 0, 16, 128, 128]
    assert body == pytest.approx((40 - (40 - 200)) / 400.0, abs=1e-5)  # 40 HU in W400/L40 -> 0.5
    assert mi.organs.shape == MODEL_SHAPE and mi.organs.dtype == np.uint8 and mi.parts.dtype == np.uint8


def test_marked_world_point_lands_at_the_expected_model_voxel(case):
    ct, _, mi = case
    world = ct.voxel_to_world(np.array(MARKER_IJK))
    expected = mi.grid.world_to_model(world)[0]
    assert np.all(np.abs(bright_centre(mi.volume) - expected) <= 0.1)  # a half-voxel slip would fail
    # and back: model voxel -> CT voxel and world
    assert np.allclose(mi.grid.model_to_ct_points(expected)[0], MARKER_IJK, atol=1e-6)
    assert np.allclose(mi.grid.model_to_world_points(expected)[0], world, atol=1e-6)


def test_canonical_orientation_head_first_anterior_up_patient_right_on_the_left():
    # marker superior (+z), anterior (+y) and to the patient's right (+x) of the body centre
    ct, masks = phantom(marker_ijk=(int((25 - ORIGIN[0]) / 0.8), int((12 - ORIGIN[1]) / 1.0), int((30 - ORIGIN[2]) / 2.5)))
    d, h, w = bright_centre(preprocess(ct, masks).volume)
    assert d < MODEL_SHAPE[0] / 2 and h < MODEL_SHAPE[1] / 2 and w < MODEL_SHAPE[2] / 2


def test_any_storage_order_gives_the_same_model_input(case):
    ct, masks, _ = case
    small = (32, 96, 96)  # a smaller grid keeps this fast; the geometry is the same code
    mi = preprocess(ct, masks, shape=small)
    for codes in (("L", "P", "S"), ("S", "L", "A"), ("P", "I", "R")):
        other = preprocess(*restored(ct, masks, codes), shape=small)
        assert torch.allclose(other.volume, mi.volume, atol=1e-5)
        assert np.array_equal(other.organs, mi.organs) and np.array_equal(other.parts, mi.parts)
        assert np.allclose(other.grid.model_to_world, mi.grid.model_to_world, atol=1e-6)


def test_in_plane_aspect_is_preserved(case):
    _, _, mi = case
    sd, sh, sw = mi.grid.spacing_mm
    assert sh == pytest.approx(sw)  # square pixels in mm
    assert sd == pytest.approx(100.0 / 32)  # the whole 40 x 2.5 mm depth fitted to 32 slices
    body = mi.volume[0, 0, 16].numpy() > 0.25
    rows, cols = np.nonzero(body.any(axis=1))[0], np.nonzero(body.any(axis=0))[0]
    assert len(cols) == pytest.approx(256, abs=2)  # the wide axis fills the grid
    assert len(rows) / len(cols) == pytest.approx(BODY_SEMI_AXES[1] / BODY_SEMI_AXES[0], abs=0.02)
    liver = mi.organs[16] == 5  # a sphere stays round
    r, c = np.nonzero(liver.any(axis=1))[0], np.nonzero(liver.any(axis=0))[0]
    assert abs(len(r) - len(c)) <= 1


def test_masks_are_resampled_on_the_same_grid(case):
    ct, masks, mi = case
    for labels_ct, labels_model, label in ((masks.organs, mi.organs, 5), (masks.parts, mi.parts, 101)):
        world_ct = ct.voxel_to_world(np.argwhere(labels_ct == label)).mean(axis=0)
        world_model = mi.grid.model_to_world_points(np.argwhere(labels_model == label)).mean(axis=0)
        assert np.all(np.abs(world_ct - world_model) <= np.array(mi.grid.spacing_mm).max())
    assert mi.mask(5).dtype == torch.bool and int(mi.mask(5).sum()) == int((mi.organs == 5).sum())
    assert int(mi.mask(101).sum()) > 0 and int(mi.mask(7).sum()) == 0


def test_native_crop_samples_the_ct_at_higher_resolution(case):
    ct, _, mi = case
    full = mi.crop((0.0, 0.0, 0.0), MODEL_SHAPE)
    assert torch.allclose(full, mi.volume, atol=1e-6)
    marker = mi.grid.world_to_model(ct.voxel_to_world(np.array(MARKER_IJK)))[0]
    lo = np.floor(marker) - np.array([4.0, 32.0, 32.0])
    hi = lo + np.array([8.0, 64.0, 64.0])  # a 4x zoom around the marker
    crop = mi.crop(tuple(lo), tuple(hi))
    expected = (marker + 0.5 - lo) * np.array(MODEL_SHAPE) / (hi - lo) - 0.5
    assert np.all(np.abs(bright_centre(crop) - expected) <= 0.15)
    assert (crop[0, 0].numpy() > 0.9).sum() > 10 * (mi.volume[0, 0].numpy() > 0.9).sum()


def test_thin_slices_are_averaged_not_skipped():
    """200 slices of 0.5 mm -> 32: each model slice averages its ~6 source slices (no aliasing),
    and the geometry still holds through the averaging."""
    affine = np.diag([1.0, 1.0, 0.5, 1.0])
    base = np.full((40, 40, 200), 40, np.int16)
    sums = []
    small = (32, 32, 32)
    for k in (37, 40, 41, 43):  # one bright 0.5 mm slice at various depths
        hu = base.copy()
        hu[:, :, k] = 200
        mi = preprocess(CTVolume(hu=hu, affine=affine, source_path=Path("thin.nii")), shape=small)
        sums.append(np.clip(mi.volume.numpy() - 0.5, 0, None).sum())
    assert min(sums) > 0 and max(sums) / min(sums) < 1.3
    hu = base.copy()
    hu[18:21, 18:21, 90:111] = 1000  # a block centred on voxel (19, 19, 100)
    ct = CTVolume(hu=hu, affine=affine, source_path=Path("thin.nii"))
    mi = preprocess(ct, shape=small)
    expected = mi.grid.world_to_model(ct.voxel_to_world(np.array([19, 19, 100])))[0]
    assert np.all(np.abs(bright_centre(mi.volume) - expected) <= 0.15)
    # averaging bins do not depend on how the CT is stored (here: slices stored feet first)
    masks = OrganMasks(organs=np.zeros(hu.shape, np.uint8), affine=affine, backend="synthetic",
                       parts=np.zeros(hu.shape, np.uint8))
    flipped = preprocess(restored(ct, masks, ("R", "A", "I"))[0], shape=small)
    assert torch.allclose(flipped.volume, mi.volume, atol=1e-5)


def test_masks_on_another_grid_are_an_input_error(case):
    ct, masks, _ = case
    other = OrganMasks(organs=masks.organs[:-1], affine=masks.affine, backend="synthetic")
    with pytest.raises(InputError, match="not on this CT's grid") as info:
        preprocess(ct, other)
    assert "phantom.nii.gz" in str(info.value)


def test_all_air_uses_the_whole_field_of_view():
    ct = CTVolume(hu=np.full((40, 30, 20), -1000, np.int16), affine=np.eye(4), source_path=Path("air.nii"))
    mi = preprocess(ct)
    assert mi.organs is None and mi.warnings and float(mi.volume.max()) == 0.0


@pytest.mark.skipif(not (DATA / "example_ct_sm.nii.gz").is_file(), reason=f"shared test data not found at {DATA}")
def test_real_ct_and_totalsegmentator_masks():
    import nibabel as nib

    from inference.labels import merged_labels, totalseg_to_merged

    img = nib.load(str(DATA / "example_ct_sm.nii.gz"))
    ct = CTVolume(hu=np.asarray(img.dataobj).astype(np.int16), affine=img.affine, source_path=DATA / "example_ct_sm.nii.gz")
    seg = np.asarray(nib.load(str(DATA / "example_seg.nii.gz")).dataobj).astype(np.uint8)
    masks = OrganMasks(organs=totalseg_to_merged(seg), affine=img.affine, backend="precomputed:example_seg.nii.gz")
    mi = preprocess(ct, masks)
    assert tuple(mi.volume.shape) == (1, 1, *MODEL_SHAPE)
    sd, sh, sw = mi.grid.spacing_mm
    assert sh == pytest.approx(sw) and sh < 3.0  # the body is cropped: finer than the 3 mm source
    liver = merged_labels().by_name("liver").id
    assert (mi.organs == liver).sum() > 1000
    world_ct = ct.voxel_to_world(np.argwhere(masks.organs == liver)).mean(axis=0)
    world_model = mi.grid.model_to_world_points(np.argwhere(mi.organs == liver)).mean(axis=0)
    assert np.all(np.abs(world_ct - world_model) <= max(mi.grid.spacing_mm))
    # the liver lies on the patient's right: the left half of the image columns
    assert np.argwhere(mi.organs == liver)[:, 2].mean() < MODEL_SHAPE[2] / 2
