"""Reading label NIfTI files (masks written by TotalSegmentator, the cohort, or us) safely."""
from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np

from inference.errors import InputError

# TotalSegmentator (and Connectome Workbench) store label names as a Caret XML NIfTI extension:
# <Label Key="5" Red=... ><![CDATA[liver]]></Label>
_CARET_LABEL = re.compile(r'<Label\s+Key="(\d+)"[^>]*>\s*<!\[CDATA\[(.*?)\]\]>', re.S)


def read_label_nifti(path: str | Path, max_id: int = 255) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Image]:
    """Read a label volume.

    Returns (labels uint8 (I, J, K) in file voxel order, affine 4x4 voxel -> RAS mm, image).
    Raises InputError naming the file when it is missing, unreadable, not integer-valued or holds
    ids outside 0..max_id.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "label file not found")
    try:
        img = nib.load(str(path))
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
