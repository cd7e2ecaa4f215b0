"""The manifest of a weights pack (``manifest.json``, the first member of the tar).

    {"format": "tumorchain-weights-pack", "format_version": 1, "created": "2026-12-07T01:40:00Z",
     "created_by": "tumorchain-workstation 0.1.0", "totalsegmentator_version": "2.18.0",
     "items": [{"kind": "totalseg_dataset", "name": "Dataset291_TotalSegmentator_part1_organs_1559subj",
                "dataset_id": 291, "task": "total",
                "files": [{"path": "nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres/plans.json",
                           "size": 12345, "sha256": "..."}, ...]},
               {"kind": "model_folder", "name": "demo_model", "files": [...]},
               {"kind": "totalseg_runtime", "name": "totalseg-runtime-2.18.0-linux",
                "files": [{"path": "tumorchain-totalseg", "size": 1, "sha256": "...", "executable": true}, ...]}]}

``executable`` (only written when true) keeps a program's executable bit across the pack.

Tar layout: ``manifest.json``, then ``items/<item name>/<file path>`` for every file the manifest
lists, in manifest order; nothing else. Parsing refuses anything a tar could use to write outside
its target (absolute paths, ``..``, backslashes, links), so a path that passed here is safe to join.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePosixPath

FORMAT = "tumorchain-weights-pack"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
ITEMS_DIR = "items"
MAX_MANIFEST_BYTES = 16 << 20  # a manifest of 100,000 files is ~15 MB; more is not a manifest

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DATASET = re.compile(r"^Dataset(\d{3,4})_[A-Za-z0-9_.-]+$")


class ItemKind(str, Enum):
    """What one item of a pack is, which decides where it is installed."""

    TOTALSEG_DATASET = "totalseg_dataset"  # an nnU-Net dataset folder under TotalSegmentator's nnunet/results
    MODEL_FOLDER = "model_folder"  # a TumorChain model folder (config.json, model.safetensors, llm/)
    TOTALSEG_RUNTIME = "totalseg_runtime"  # the frozen TotalSegmentator worker (segmentation runtime)


class ManifestError(ValueError):
    """The manifest is malformed; the message says which entry and why."""


@dataclass(frozen=True)
class PackFile:
    path: str  # relative POSIX path inside the item, checked by safe_relative_path
    size: int
    sha256: str
    executable: bool = False  # installed with mode 755 instead of 644


@dataclass(frozen=True)
class PackItem:
    kind: ItemKind
    name: str  # the folder name it is installed as
    files: tuple[PackFile, ...]
    dataset_id: int | None = None  # TotalSegmentator datasets only
    task: str | None = None  # the TotalSegmentator task that downloads it (informative)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def member(self, f: PackFile) -> str:
        """The tar member name of one file of this item."""
        return f"{ITEMS_DIR}/{self.name}/{f.path}"

    def describe(self) -> str:
        what = {ItemKind.TOTALSEG_DATASET: f"TotalSegmentator dataset {self.dataset_id} ({self.task or 'task unknown'})",
                ItemKind.MODEL_FOLDER: "TumorChain model folder",
                ItemKind.TOTALSEG_RUNTIME: "segmentation runtime (TotalSegmentator program)"}[self.kind]
        return f"{self.name}: {what}, {len(self.files)} files, {self.size / 2**20:.1f} MiB"


@dataclass(frozen=True)
class Manifest:
    items: tuple[PackItem, ...]
    created: str = ""
    created_by: str = ""
    totalsegmentator_version: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def size(self) -> int:
        return sum(i.size for i in self.items)

    def members(self) -> dict[str, tuple[PackItem, PackFile]]:
        """Every tar member the pack must hold (besides the manifest), in order."""
        return {item.member(f): (item, f) for item in self.items for f in item.files}

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "format_version": self.format_version, "created": self.created,
            "created_by": self.created_by, "totalsegmentator_version": self.totalsegmentator_version,
            "items": [{"kind": i.kind.value, "name": i.name,
                       **({"dataset_id": i.dataset_id, "task": i.task} if i.kind is ItemKind.TOTALSEG_DATASET else {}),
                       "files": [{"path": f.path, "size": f.size, "sha256": f.sha256,
                                  **({"executable": True} if f.executable else {})} for f in i.files]}
                      for i in self.items],
        }, indent=1)

    @classmethod
    def from_json(cls, raw: bytes) -> "Manifest":
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"manifest.json is not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ManifestError(f"manifest.json is not a {FORMAT} manifest")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestError(f"manifest.json has format version {version!r}; this program reads version "
                                f"{FORMAT_VERSION} (a newer workstation made the pack?)")
        raw_items = data.get("items")
        if not isinstance(raw_items, list) or not raw_items:
            raise ManifestError("manifest.json lists no items")
        items = tuple(_parse_item(n, entry) for n, entry in enumerate(raw_items))
        names = [i.name for i in items]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ManifestError(f"manifest.json lists item {dup[0]} twice")
        return cls(items=items, created=str(data.get("created", "")), created_by=str(data.get("created_by", "")),
                   totalsegmentator_version=str(data.get("totalsegmentator_version", "")), format_version=version)


def safe_name(name: object, what: str) -> str:
    """A single folder name: letters, digits, '.', '_', '-'; never '.', '..' or hidden."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ManifestError(f"{what}: {name!r} is not an acceptable folder name")
    return name


def safe_relative_path(path: object, what: str) -> str:
    """A relative POSIX path with no '..', '.', empty, absolute or backslash parts."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path or path.startswith("/"):
        raise ManifestError(f"{what}: path {path!r} is absolute or malformed")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ManifestError(f"{what}: path {path!r} leaves its folder or is not normalised")
    if PurePosixPath(path).as_posix() != path:
        raise ManifestError(f"{what}: path {path!r} is not normalised")
    return path


def dataset_id_of(folder_name: str) -> int | None:
    m = _DATASET.match(folder_name)
    return int(m.group(1)) if m else None


def _parse_item(n: int, entry: object) -> PackItem:
    where = f"manifest.json item {n}"
    if not isinstance(entry, dict):
        raise ManifestError(f"{where} is not an object")
    try:
        kind = ItemKind(entry.get("kind"))
    except ValueError:
        raise ManifestError(f"{where}: unknown kind {entry.get('kind')!r} "
                            f"(known: {', '.join(k.value for k in ItemKind)})") from None
    name = safe_name(entry.get("name"), where)
    where = f"manifest.json item {name}"
    dataset_id = task = None
    if kind is ItemKind.TOTALSEG_DATASET:
        dataset_id = entry.get("dataset_id")
        if not isinstance(dataset_id, int) or isinstance(dataset_id, bool) or dataset_id_of(name) != dataset_id:
            raise ManifestError(f"{where}: dataset_id {dataset_id!r} does not match the folder name")
        task = entry.get("task") if isinstance(entry.get("task"), str) else None
    raw_files = entry.get("files")
    if not isinstance(raw_files, list) or not raw_files:
        raise ManifestError(f"{where} lists no files")
    files = []
    seen: set[str] = set()
    for f in raw_files:
        if not isinstance(f, dict):
            raise ManifestError(f"{where}: a file entry is not an object")
        path = safe_relative_path(f.get("path"), where)
        size, digest = f.get("size"), f.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}: {path} has size {size!r}")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ManifestError(f"{where}: {path} has no valid sha256")
        if path in seen or any(path.startswith(s + "/") or s.startswith(path + "/") for s in seen):
            raise ManifestError(f"{where}: {path} is listed twice or is both a file and a folder")
        executable = f.get("executable", False)
        if not isinstance(executable, bool):
            raise ManifestError(f"{where}: {path} has executable {executable!r}, not true or false")
        seen.add(path)
        files.append(PackFile(path, size, digest, executable))
    return PackItem(kind=kind, name=name, files=tuple(files), dataset_id=dataset_id, task=task)
