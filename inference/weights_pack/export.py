"""``export_pack``: write a weights pack from folders this machine has (one with internet, where
``totalseg_download_weights`` and the model builds ran).

Every file is hashed, the manifest written first, then the files in manifest order; each file is
hashed again while it is copied into the tar, so a file that changed in between fails the export
instead of producing a pack whose manifest lies. The pack is written beside its final name and
renamed when complete.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from inference.errors import InputError, ModelError
from inference.segmentation import totalseg_weights as tsw
from inference.weights_pack.manifest import (MANIFEST_NAME, ItemKind, Manifest, ManifestError, PackFile, PackItem,
                                             safe_name, safe_relative_path)

Progress = Callable[[float, str], None]
CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One item to pack: what it is, its name in the pack and the folder it comes from."""

    item_kind: ItemKind
    name: str
    folder: Path
    dataset_id: int | None = None
    task: str | None = None


def dataset_ids_for_tasks(tasks: Iterable[str]) -> list[int]:
    """The nnU-Net datasets a TotalSegmentator task needs to run offline (liver_segments also needs
    the 6 mm model it crops with)."""
    known = sorted({w.download_task for w in tsw.FOLDERS.values()})
    ids: list[int] = []
    for task in tasks:
        if task not in known:
            raise InputError(None, f"unknown TotalSegmentator task {task!r}; known: {', '.join(known)}")
        ids += [i for i, w in tsw.FOLDERS.items() if w.download_task == task]
        if task == "liver_segments":
            ids.append(tsw.ROUGH_CROP_MODEL)
    return sorted(dict.fromkeys(ids))


def totalseg_sources(results: Path, dataset_ids: Iterable[int]) -> list[Source]:
    """Sources for TotalSegmentator datasets; each must be complete in ``results``."""
    sources = []
    for i in dataset_ids:
        if i not in tsw.FOLDERS:
            raise InputError(None, f"unknown TotalSegmentator dataset {i}; known: {', '.join(map(str, tsw.FOLDERS))}")
        problem = tsw.folder_problem(results, i)
        if problem:
            raise InputError(results, f"cannot pack dataset {i}: {problem}")
        w = tsw.FOLDERS[i]
        sources.append(Source(ItemKind.TOTALSEG_DATASET, w.folder, results / w.folder, i, w.download_task))
    return sources


def model_source(folder: Path, name: str | None = None) -> Source:
    """A TumorChain model folder, checked as the workstation checks it before loading."""
    from inference.model.model_files import check_model_folder

    check_model_folder(folder)  # ModelError naming the file when it is not a usable model folder
    try:
        return Source(ItemKind.MODEL_FOLDER, safe_name(name or folder.resolve().name, f"model {folder}"), folder)
    except ManifestError as exc:
        raise ModelError(f"{exc}; give another name with --name") from None


def runtime_source(folder: Path) -> Source:
    """A built segmentation runtime (installers/build_totalseg_runtime.sh), checked as the backend
    checks it before starting it; packed as totalseg-runtime-<TotalSegmentator version>-<platform>."""
    from inference.segmentation import totalseg_runtime as rt

    problem = rt.runtime_problem(folder, check_platform=False)  # a pack may be made for another system
    if problem:
        raise InputError(folder, f"is not a usable segmentation runtime: {problem}")
    info = rt.read_info(folder)
    name = f"totalseg-runtime-{info.get('totalsegmentator', 'unknown')}-{info.get('platform', 'unknown')}"
    return Source(ItemKind.TOTALSEG_RUNTIME, safe_name(name, f"runtime {folder}"), Path(folder))


def _files_of(folder: Path) -> list[str]:
    """Relative paths of the regular files under ``folder`` (file symlinks are followed, folder
    symlinks refused: a pack holds plain files only)."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        for d in dirs:
            if (Path(top) / d).is_symlink():
                raise InputError(Path(top) / d, "is a symbolic link to a folder; copy the real folder instead")
        for f in files:
            path = Path(top) / f
            if not path.is_file():
                raise InputError(path, "is not a regular file (a broken link or a device); cannot pack it")
            rel = path.relative_to(folder).as_posix()
            try:
                found.append(safe_relative_path(rel, str(folder)))
            except ManifestError as exc:
                raise InputError(path, str(exc)) from None
    if not found:
        raise InputError(folder, "holds no files")
    return sorted(found)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _HashingReader(io.RawIOBase):
    """Reads a file for tarfile and hashes what passes through."""

    def __init__(self, fh):
        self.fh, self.hash = fh, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.hash.update(data)
        return data


def build_manifest(sources: list[Source], created_by: str = "") -> Manifest:
    items = []
    for s in sources:
        files = tuple(_pack_file(s, rel) for rel in _files_of(s.folder))
        items.append(PackItem(kind=s.item_kind, name=s.name, files=files, dataset_id=s.dataset_id, task=s.task))
    names = [i.name for i in items]
    for n in names:
        if names.count(n) > 1:
            raise InputError(None, f"two items would be packed as {n}; give a model folder another --name")
    return Manifest(items=tuple(items), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    created_by=created_by or _created_by(), totalsegmentator_version=tsw.TOTALSEG_VERSION)


def _pack_file(s: Source, rel: str) -> PackFile:
    st = (s.folder / rel).stat()
    # the runtime's programs and libraries keep their executable bit; weights never need one
    executable = s.item_kind is ItemKind.TOTALSEG_RUNTIME and bool(st.st_mode & 0o111)
    return PackFile(rel, st.st_size, _sha256(s.folder / rel), executable)


# the pack's compression follows its name, as ``tar -a`` does: model weights hardly compress, the
# segmentation runtime's programs and libraries do (1.2 GB -> 0.4 GB with gzip)
COMPRESSION = {".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.xz": "w:xz", ".txz": "w:xz"}


def tar_mode(out: Path) -> str:
    """tarfile's write mode for a pack named ``out``: gzip for .tar.gz/.tgz, xz for .tar.xz/.txz, else none."""
    name = Path(out).name.lower()
    return next((mode for suffix, mode in COMPRESSION.items() if name.endswith(suffix)), "w")


def export_pack(out: Path, sources: list[Source], progress: Progress | None = None) -> Manifest:
    """Write the pack to ``out`` and return its manifest; compressed when its name says so (tar_mode)."""
    if not sources:
        raise InputError(out, "nothing to pack: name TotalSegmentator tasks/datasets or model folders")
    out = Path(out)
    if out.is_dir():
        raise InputError(out, "is a folder; give a file name such as weights.tcpack.tar")
    if not out.parent.is_dir():
        raise InputError(out.parent, "the folder for the pack does not exist")
    manifest = build_manifest(sources)
    folders = {s.name: s.folder for s in sources}
    tmp = out.with_name(f".{out.name}.partial")
    total, done = max(manifest.size, 1), 0
    try:
        mode = tar_mode(out)
        level = {"w:gz": {"compresslevel": 6}, "w:xz": {"preset": 6}}.get(mode, {})
        with tarfile.open(tmp, mode, format=tarfile.PAX_FORMAT, **level) as tar:
            raw = manifest.to_json().encode("utf-8")
            tar.addfile(_member(MANIFEST_NAME, len(raw)), io.BytesIO(raw))
            for item in manifest.items:
                for f in item.files:
                    path = folders[item.name] / f.path
                    with path.open("rb") as fh:
                        reader = _HashingReader(fh)
                        tar.addfile(_member(item.member(f), f.size), reader)
                    if reader.hash.hexdigest() != f.sha256:
                        raise InputError(path, "changed while the pack was written; export again")
                    done += f.size
                    if progress:
                        progress(done / total, f"packed {item.name}/{f.path}")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(out, f"cannot write the pack: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    info.uname = info.gname = ""
    return info


def _created_by() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"tumorchain-workstation {version('tumorchain-workstation')}"
    except PackageNotFoundError:
        return "tumorchain-workstation"
