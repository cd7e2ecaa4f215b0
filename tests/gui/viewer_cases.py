"""Small synthetic abdominal cases with known anatomy in world (RAS) space, for any affine.

Shapes are defined in world millimetres and sampled through the affine, so a case stored
right-to-left, left-to-right or with permuted axes has the same anatomy: the tests can then check
that every storage order renders the same way on screen.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.ct_volume import CTVolume
from inference.labels import merged_labels
from inference.segmentation.organ_masks import OrganMasks

LIVER, SPLEEN, KIDNEY_R, AORTA, LUMBAR = 5, 1, 2, 39, 25

# (label, centre RAS mm, radii mm, HU): liver right-anterior-superior, spleen left-posterior-inferior
ORGANS = (
    (LIVER, (45.0, 12.0, 18.0), (28.0, 22.0, 24.0), 60),
    (SPLEEN, (-48.0, -18.0, -14.0), (14.0, 14.0, 20.0), 50),
    (KIDNEY_R, (30.0, -32.0, -30.0), (11.0, 11.0, 18.0), 150),
)


def affine_for(storage: str, shape_ras: tuple[int, int, int],
               spacing: tuple[float, float, float]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and array shape for a storage order: 'ras', 'lps' (x and y reversed) or 'kji'
    (axes stored z, y, x). The volume is centred on world (0, 0, 0)."""
    nx, ny, nz = shape_ras
    sx, sy, sz = spacing
    if storage == "ras":
        m, shape = np.diag([sx, sy, sz]), (nx, ny, nz)
    elif storage == "lps":
        m, shape = np.diag([-sx, -sy, sz]), (nx, ny, nz)
    elif storage == "kji":
        m, shape = np.array([[0, 0, sx], [0, sy, 0], [sz, 0, 0]], dtype=float), (nz, ny, nx)
    else:
        raise ValueError(storage)
    affine = np.eye(4)
    affine[:3, :3] = m
    centre = (np.asarray(shape, dtype=float) - 1) / 2
    affine[:3, 3] = -m @ centre
    return affine, shape


def make_case(storage: str = "ras", shape_ras: tuple[int, int, int] = (96, 80, 48),
              spacing: tuple[float, float, float] = (2.0, 2.0, 3.0), seed: int = 0,
              shift: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[CTVolume, OrganMasks]:
    """A CT (int16 HU) and merged-scheme organ masks on the same grid."""
    affine, shape = affine_for(storage, shape_ras, spacing)
    ijk = np.stack(np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij"), axis=-1)
    world = ijk @ affine[:3, :3].T.astype(np.float32) + affine[:3, 3].astype(np.float32)
    x, y, z = world[..., 0], world[..., 1], world[..., 2]
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000, dtype=np.int16)
    body = (x / 85.0) ** 2 + (y / 62.0) ** 2 < 1
    hu[body] = 20
    labels = np.zeros(shape, dtype=np.uint8)
    sx, sy, sz = shift
    for lid, (cx, cy, cz), (rx, ry, rz), value in ORGANS:
        inside = ((x - cx - sx) / rx) ** 2 + ((y - cy - sy) / ry) ** 2 + ((z - cz - sz) / rz) ** 2 < 1
        labels[inside] = lid
        hu[inside] = value
    aorta = (x - 0) ** 2 + (y + 22) ** 2 < 8.0 ** 2
    labels[aorta & body] = AORTA
    hu[aorta & body] = 220
    spine = (x ** 2 + (y + 45) ** 2 < 13.0 ** 2)
    labels[spine & body] = LUMBAR
    hu[spine & body] = 700
    hu = (hu + rng.integers(-8, 9, size=shape, dtype=np.int16) * body).astype(np.int16)
    ct = CTVolume(hu, affine, Path(f"synthetic_{storage}.nii.gz"), series_description=f"synthetic {storage}")
    masks = OrganMasks(labels, affine.copy(), "synthetic-test", table=merged_labels())
    return ct, masks


def write_case_folder(folder: Path, storage: str = "ras", **kw) -> Path:
    """A case folder as the cohort writes it: ct.nii.gz + organs.nii.gz."""
    import nibabel as nib

    ct, masks = make_case(storage, **kw)
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(ct.hu, ct.affine), folder / "ct.nii.gz")
    nib.save(nib.Nifti1Image(masks.organs, masks.affine), folder / "organs.nii.gz")
    return folder
