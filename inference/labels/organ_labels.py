"""Organ label tables: TotalSegmentator's 117 classes, the paper's 56-label merged scheme
(Table 10, appendix 11.4) and the substructures (Couinaud segments, pancreas head/body/tail,
stomach and colon parts) that reports name.

Label maps come in two uint8 volumes on the CT grid:
- ``organs``: merged-scheme ids 1..56 (0 = background);
- ``parts``:  substructure ids >= 100, each with a parent merged id (0 = none).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "labels"


@dataclass(frozen=True)
class Label:
    id: int
    name: str  # machine name, e.g. "pancreas_head"
    display: str  # what a radiologist reads, e.g. "pancreatic head"
    colour: tuple[int, int, int]
    group: str
    parent: int | None = None  # merged id of the organ a substructure belongs to
    totalseg_ids: tuple[int, ...] = ()

    @property
    def is_substructure(self) -> bool:
        return self.parent is not None


class LabelTable:
    """Every label the product knows, by id and by name."""

    def __init__(self, labels: list[Label], scheme: str):
        self.scheme = scheme
        self._by_id = {lab.id: lab for lab in labels}
        self._by_name = {lab.name: lab for lab in labels}

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, key: int | str) -> bool:
        return key in self._by_id or key in self._by_name

    def by_id(self, label_id: int) -> Label:
        return self._by_id[int(label_id)]

    def by_name(self, name: str) -> Label:
        return self._by_name[name]

    def organs(self) -> list[Label]:
        """The 56 merged-scheme organs (no substructures)."""
        return [lab for lab in self if not lab.is_substructure]

    def substructures(self, parent: int | None = None) -> list[Label]:
        return [lab for lab in self if lab.is_substructure and (parent is None or lab.parent == parent)]

    def parent_or_self(self, label_id: int) -> int:
        """The merged organ id a label belongs to: its parent for a substructure, else itself."""
        lab = self.by_id(label_id)
        return lab.parent if lab.parent is not None else lab.id

    def colour_lut(self) -> np.ndarray:
        """(256, 4) uint8 RGBA lookup table indexed by label id; unknown ids are transparent."""
        lut = np.zeros((256, 4), dtype=np.uint8)
        for lab in self:
            lut[lab.id, :3] = lab.colour
            lut[lab.id, 3] = 255
        return lut


@lru_cache(maxsize=1)
def merged_labels() -> LabelTable:
    """The merged 56-organ scheme plus substructures, from resources/labels/merged_labels.json."""
    data = json.loads((RESOURCES / "merged_labels.json").read_text())
    labels = [
        Label(
            id=e["id"],
            name=e["name"],
            display=e["display"],
            colour=tuple(e["colour"]),
            group=e["group"],
            totalseg_ids=tuple(e.get("totalseg_ids", ())),
        )
        for e in data["labels"]
    ]
    labels += [
        Label(id=e["id"], name=e["name"], display=e["display"], colour=tuple(e["colour"]),
              group=e["group"], parent=e["parent"])
        for e in data["substructures"]
    ]
    return LabelTable(labels, data["scheme"])


@lru_cache(maxsize=None)
def totalseg_task_names(task: str = "total") -> dict[int, str]:
    """TotalSegmentator class id -> class name for a task with a map in resources/labels
    (``totalseg_<task>.json``: 'total' has 117 classes, 'liver_segments' 8)."""
    path = RESOURCES / f"totalseg_{task}.json"
    if not path.is_file():
        raise ValueError(f"{path}: no TotalSegmentator class map for task '{task}'")
    data = json.loads(path.read_text())
    return {int(k): v for k, v in data["labels"].items()}


def totalseg_names() -> dict[int, str]:
    """TotalSegmentator task 'total' class id -> class name (1..117)."""
    return totalseg_task_names("total")


@lru_cache(maxsize=1)
def totalseg_to_merged_lut() -> np.ndarray:
    """(256,) uint8 lookup: TotalSegmentator 'total' id -> merged id (Table 10)."""
    lut = np.zeros(256, dtype=np.uint8)
    for lab in merged_labels().organs():
        for ts_id in lab.totalseg_ids:
            lut[ts_id] = lab.id
    return lut


@lru_cache(maxsize=1)
def liver_segments_to_parts_lut() -> np.ndarray:
    """(256,) uint8 lookup: TotalSegmentator 'liver_segments' id -> substructure id (101..108),
    matched by class name (liver_segment_N is our substructure liver_segment_N)."""
    table = merged_labels()
    lut = np.zeros(256, dtype=np.uint8)
    for ts_id, name in totalseg_task_names("liver_segments").items():
        lut[ts_id] = table.by_name(name).id
    return lut


def _apply_lut(lut: np.ndarray, labels: np.ndarray, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype != np.uint8:
        if labels.dtype.kind not in "iub":
            raise ValueError(f"{what}: label volume must hold integers, got dtype {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError(f"{what}: label ids must lie in 0..255, got {labels.min()}..{labels.max()}")
        labels = labels.astype(np.uint8)
    return lut[labels]


def totalseg_to_merged(ts_labels: np.ndarray) -> np.ndarray:
    """Map a TotalSegmentator 'total' multilabel volume to the merged scheme (same shape, uint8).
    Ids outside the 117 classes map to 0; ids outside 0..255 raise ValueError."""
    return _apply_lut(totalseg_to_merged_lut(), ts_labels, "TotalSegmentator 'total' mask")


def totalseg_liver_segments_to_parts(ts_labels: np.ndarray) -> np.ndarray:
    """Map a TotalSegmentator 'liver_segments' volume (1..8) to parts ids 101..108 (same shape, uint8)."""
    return _apply_lut(liver_segments_to_parts_lut(), ts_labels, "TotalSegmentator 'liver_segments' mask")
