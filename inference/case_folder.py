"""A case folder: one CT with its organ masks, as the demo case, the synthetic cohort and a
site's converted cases are written. One resolver for every reader (the window, ``tumorchain
analyze`` and ``batch``, the cohort writer), so the same folder opens the same way everywhere.

    case/ct.nii.gz         the CT (required; .nii works too)
    case/organs.nii.gz     organ labels in the merged scheme (ids 1..56)
    case/parts.nii.gz      substructure labels (ids >= 100), optional
    case/lesions.nii.gz, ground_truth.json   cohort extras, ignored here

Any other folder is a DICOM folder; a file is a CT file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CT_NAMES = ("ct.nii.gz", "ct.nii")
ORGANS_NAMES = ("organs.nii.gz", "organs.nii")
PARTS_NAMES = ("parts.nii.gz", "parts.nii")
# a case folder's organs file is written in the merged scheme by definition (no guessing)
CASE_FOLDER_SCHEME = "merged"


@dataclass(frozen=True)
class CaseFiles:
    """What to open: the CT path and the masks that go with it (None: segment)."""

    ct: Path
    organs: Path | None = None
    parts: Path | None = None
    scheme: str = "auto"  # label scheme of ``organs``: auto, totalseg or merged
    folder: Path | None = None  # the case folder, when ``ct`` came from one


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def is_case_folder(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and _first(p, CT_NAMES) is not None


def resolve_case(path: str | Path, masks: str | Path | None = None, parts: str | Path | None = None,
                 scheme: str | None = None, own_masks: bool = True) -> CaseFiles:
    """A case folder opens with its own masks (``masks`` given: those instead, with ``parts``
    only when given too; ``own_masks`` False: none, to segment it); any other path is the CT as
    it is, with the masks given."""
    p = Path(path).expanduser()
    given = Path(masks).expanduser() if masks else None
    given_parts = Path(parts).expanduser() if parts else None
    if is_case_folder(p):
        ct = _first(p, CT_NAMES)
        assert ct is not None
        if given is not None:
            return CaseFiles(ct, given, given_parts, scheme or "auto", p)
        if not own_masks:
            return CaseFiles(ct, None, None, scheme or "auto", p)
        organs = _first(p, ORGANS_NAMES)
        own_parts = given_parts or (_first(p, PARTS_NAMES) if organs is not None else None)
        return CaseFiles(ct, organs, own_parts, scheme or CASE_FOLDER_SCHEME, p)
    return CaseFiles(p, given, given_parts, scheme or "auto", None)
