"""SNOMED CT codes of our labels for DICOM SEG segment descriptions (resources/report/organ_codes.json).

Codes are looked up by keyword in pydicom's copy of the DICOM code dictionary, so every one is
a concept the standard lists (no invented codes). A label missing from the table falls back to
its parent organ, then to the generic "Organ".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydicom.sr.coding import Code
from pydicom.sr.codedict import codes

from inference.labels import LabelTable

RESOURCE = Path(__file__).resolve().parents[2] / "resources" / "report" / "organ_codes.json"


@dataclass(frozen=True)
class SegmentCodes:
    category: Code
    type: Code
    modifier: Code | None = None


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, str]]:
    return json.loads(RESOURCE.read_text(encoding="utf-8"))["labels"]


def segment_codes(label_id: int, table: LabelTable) -> SegmentCodes:
    """(category, type, laterality modifier) of a label id of ``table``."""
    lab = table.by_id(label_id)
    entry = _table().get(lab.name)
    if entry is None and lab.parent is not None:
        entry = _table().get(table.by_id(lab.parent).name)
    if entry is None:
        return SegmentCodes(codes.SCT.AnatomicalStructure, codes.SCT.Organ)
    category = getattr(codes.SCT, entry.get("category", "AnatomicalStructure"))
    modifier = getattr(codes.SCT, entry["modifier"]) if entry.get("modifier") else None
    return SegmentCodes(category, getattr(codes.SCT, entry["type"]), modifier)
