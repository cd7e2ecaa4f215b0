"""Reading label NIfTI files (masks written by TotalSegmentator, the cohort, or us) safely."""
from __future__ import annotations

import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from inference.ct_io.memory_guard import check_fits
from inference.errors import InputError

# TotalSegmentator (and Connectome Workbench) store label names as a Caret XML NIfTI extension:
# <Label Key="5" Red=... ><![CDATA[liver]]></Label>
_CARET_LABEL = re.compile(r'<Label\s+Key="(\d+)"[^>]*>\s*<!\[CDATA\[(.*?)\]\]>', re.S)


def _check_declared_grid(path: Path, img, expect_shape: tuple[int, int, int] | None,
                         memory_limit_bytes: int | None, ct_path: str | Path | None) -> None:
    """Refuse from the header alone: a mask NIfTI declaring 1700^3 voxels is 21 MB gzipped and
    4.9 GB once read, so its grid is compared with the CT's before a single voxel is read."""
    shape = tuple(int(n) for n in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(path, f"a label volume must be 3D, this file declares shape {shape}")
    if expect_shape is not None and sorted(shape) != sorted(int(n) for n in expect_shape):
        raise InputError(path, f"the mask is not on the grid of the CT {ct_path or ''}: its header declares "
                         f"{'x'.join(map(str, shape))} voxels, the CT has {'x'.join(map(str, expect_shape))} "
                         "(checked before reading its voxels). Use a mask computed from this CT")
    itemsize = np.dtype(img.get_data_dtype()).itemsize
    check_fits(math.prod(shape) * max(itemsize, 1), path, f"the {'x'.join(map(str, shape))} label volume",
               memory_limit_bytes)


def read_label_nifti(path: str | Path, max_id: int = 255, expect_shape: tuple[int, int, int] | None = None,
                     memory_limit_bytes: int | None = None, ct_path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Image]:
    """Read a label volume.

    Returns (labels uint8 (I, J, K) in file voxel order, affine 4x4 voxel -> RAS mm, image).
    expect_shape: the CT's shape; a file declaring another grid (any axis order) is refused before
    its voxels are read. Raises InputError naming the file when it is missing, unreadable, too
    large, not integer-valued or holds ids outside 0..max_id.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "label file not found")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for damaged files
        raise InputError(path, f"cannot read as NIfTI ({type(exc).__name__}: {exc})") from exc
    _check_declared_grid(path, img, expect_shape, memory_limit_bytes, ct_path)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise InputError(path, f"cannot read as NIfTI ({type(exc).__name__}: {exc})") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(path, f"a label volume must be 3D, this file has shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise InputError(path, f"label values must be whole numbers, found non-integer {data.dtype} values")
    lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
    if lo < 0 or hi > max_id:
        raise InputError(path, f"label ids must lie in 0..{max_id}, found {lo}..{hi}")
    affine = img.affine if img.affine is not None else np.eye(4)
    return np.ascontiguousarray(data.astype(np.uint8)), np.asarray(affine, dtype=np.float64), img


def header_label_names(img: nib.Nifti1Image) -> dict[int, str]:
    """Label id -> name from a Caret XML label-table extension, {} when the file has none."""
    names: dict[int, str] = {}
    for ext in getattr(img.header, "extensions", []):
        try:
            content = ext.get_content()
        except Exception:  # an extension of an unknown kind: not ours to judge
            continue
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
        names.update({int(k): v.strip() for k, v in _CARET_LABEL.findall(text)})
    return names
