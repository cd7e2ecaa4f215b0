"""``import_pack``: verify a weights pack completely, then install its items atomically.

1. The tar is read once, as a stream. The first member must be manifest.json; every other member
   must be a regular file the manifest lists, of the listed size, and appear once: links, devices,
   folders, absolute paths, ``..`` and unlisted names are refused (no tar extraction code runs; this
   module writes each file itself, with O_EXCL|O_NOFOLLOW, under a staging folder).
2. Each file is hashed as it is written to a staging folder created inside the target folder (same
   filesystem, so step 4 is a rename). A size or sha256 that differs from the manifest, a member the
   manifest lacks or a file it lists that never came (a partial pack) refuses the whole pack.
3. The staged items are checked as their users will check them: TotalSegmentator datasets with the
   segmentation backend's weights check, model folders with the model loader's folder checks, the
   segmentation runtime with the backend's runtime check (its program executable, built for this
   platform). Files the manifest marks executable are written with mode 755, all others 644.
4. Only then is each item renamed into place; an item already installed is renamed aside first and
   deleted once every item is in place (put back if a later rename fails).
Whatever fails before step 4 leaves the targets as they were: the staging folder is removed, and so
are target folders this import created and left empty.
"""
from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import tarfile
import threading
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from inference.errors import InputError, TumorChainError, raise_if_cancelled
from inference.weights_pack.locations import Targets
from inference.weights_pack.manifest import MANIFEST_NAME, MAX_MANIFEST_BYTES, ItemKind, Manifest, ManifestError, PackItem

Progress = Callable[[float, str], None]
CHUNK = 1 << 20
STAGING_PREFIX = ".tumorchain-import-"
ASIDE_PREFIX = ".tumorchain-replaced-"
REFUSED = "nothing was installed"


class PackError(InputError):
    """The pack cannot be installed; names the pack, the member and the problem. Nothing was installed."""


@dataclass(frozen=True)
class InstalledItem:
    item: PackItem
    folder: Path
    replaced: bool  # an earlier copy was there and is now replaced


@dataclass
class ImportReport:
    pack: Path
    manifest: Manifest
    installed: list[InstalledItem] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"{'replaced' if i.replaced else 'installed'} {i.item.describe()} -> {i.folder}" for i in self.installed]


def verify_pack(pack: Path, progress: Progress | None = None, cancel: threading.Event | None = None) -> Manifest:
    """Check every member against the manifest without installing anything (``weights list --verify``)."""
    pack = Path(pack)
    with _open(pack) as tar:
        manifest = _read_manifest(pack, tar)
        _stream_members(pack, tar, manifest, lambda item, f: _NullSink(), progress, cancel)
        _read_to_end(pack, tar)
    return manifest


def import_pack(pack: Path, targets: Targets, progress: Progress | None = None,
                cancel: threading.Event | None = None) -> ImportReport:
    """Verify ``pack`` completely and install its items into ``targets``; PackError when it is refused."""
    pack = Path(pack)
    created: list[Path] = []  # target base folders this import made (removed again when left empty)
    stages: dict[Path, Path] = {}  # target base folder -> its staging folder
    try:
        with _open(pack) as tar:
            manifest = _read_manifest(pack, tar)
            _refuse_shared_targets(pack, manifest, targets)
            bases = {targets.folder_for(i).parent for i in manifest.items}
            for base in sorted(bases):
                created += _make_dirs(base)
                _check_space(pack, base, sum(i.size for i in manifest.items if targets.folder_for(i).parent == base))
                stages[base] = Path(_mkdtemp(base))

            def sink(item: PackItem, f) -> "_FileSink":
                target = targets.folder_for(item)
                return _FileSink(stages[target.parent] / target.name / f.path, f.executable)

            _stream_members(pack, tar, manifest, sink, progress, cancel)
            _read_to_end(pack, tar)
        for item in manifest.items:
            target = targets.folder_for(item)
            _check_staged(pack, item, stages[target.parent] / target.name)
        raise_if_cancelled(cancel, "weights import")
        report = ImportReport(pack, manifest)
        report.installed = _swap_in(pack, manifest, targets, stages)
        if progress:
            progress(1.0, f"installed {len(report.installed)} item(s)")
        return report
    finally:
        for stage in stages.values():
            shutil.rmtree(stage, ignore_errors=True)
        for folder in reversed(created):
            try:
                folder.rmdir()  # only when empty: an import that installed something keeps it
            except OSError:
                pass


# ------------------------------------------------------------------------------------ reading
def read_manifest(pack: Path) -> Manifest:
    """The manifest alone (``weights list PACK``): the pack's first member, nothing else is read."""
    pack = Path(pack)
    with _open(pack) as tar:
        return _read_manifest(pack, tar)


# gzip and xz packs are decompressed by Python's own readers, which check the stream's checksums
# when read to its end (_read_to_end): tarfile's stream mode stops at the archive's end marker
_DECOMPRESS_ERRORS = (lzma.LZMAError, zlib.error)
_DECOMPRESSORS = {b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f), b"\xfd7zXZ\x00": lzma.LZMAFile}


@contextmanager
def _open(pack: Path) -> Iterator[tarfile.TarFile]:
    if not pack.is_file():
        raise PackError(pack, "no such weights pack")
    try:
        raw = pack.open("rb")
    except OSError as exc:
        raise PackError(pack, f"cannot read it ({exc.strerror or exc}); {REFUSED}") from None
    with raw:
        head = raw.read(6)
        raw.seek(0)
        decompress = next((d for magic, d in _DECOMPRESSORS.items() if head.startswith(magic)), None)
        stream = decompress(raw) if decompress else raw
        try:
            tar = tarfile.open(fileobj=stream, mode="r|")  # stream: each byte read once
        except (tarfile.TarError, OSError, EOFError, *_DECOMPRESS_ERRORS) as exc:
            raise PackError(pack, f"not a weights pack (not a tar archive: {exc}); {REFUSED}") from None
        tar.pack_stream, tar.pack_compressed = stream, decompress is not None
        with tar:
            yield tar


def _read_to_end(pack: Path, tar: tarfile.TarFile) -> None:
    """Read what follows the archive's end marker: a compressed pack's checksum is checked there, and a
    plain pack must hold nothing but the tar's zero padding."""
    try:
        while chunk := tar.pack_stream.read(CHUNK):
            if not tar.pack_compressed and chunk.strip(b"\0"):
                raise PackError(pack, f"data after the end of the archive (not a pack as exported); {REFUSED}")
    except (OSError, EOFError, *_DECOMPRESS_ERRORS) as exc:
        raise PackError(pack, f"the compressed stream is damaged or cut short ({exc}); {REFUSED}") from None


def _next(pack: Path, tar: tarfile.TarFile, after: str):
    try:
        return tar.next()
    except (tarfile.TarError, OSError, EOFError, *_DECOMPRESS_ERRORS) as exc:  # a damaged header or a cut pack
        raise PackError(pack, f"damaged or truncated after {after} ({exc}); {REFUSED}") from None


def _read_manifest(pack: Path, tar: tarfile.TarFile) -> Manifest:
    member = _next(pack, tar, "the start")
    if member is None or member.name != MANIFEST_NAME or not member.isreg():
        raise PackError(pack, f"the first member is {member.name if member else 'missing'!s}, not {MANIFEST_NAME} "
                        f"(not a weights pack); {REFUSED}")
    if member.size > MAX_MANIFEST_BYTES:
        raise PackError(pack, f"{MANIFEST_NAME} is {member.size} bytes, too large for a manifest; {REFUSED}")
    try:
        raw = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, *_DECOMPRESS_ERRORS) as exc:
        raise PackError(pack, f"{MANIFEST_NAME} is truncated ({exc}); {REFUSED}") from None
    if len(raw) != member.size:
        raise PackError(pack, f"{MANIFEST_NAME} is truncated; {REFUSED}")
    try:
        return Manifest.from_json(raw)
    except ManifestError as exc:
        raise PackError(pack, f"{exc}; {REFUSED}") from None


def _stream_members(pack: Path, tar: tarfile.TarFile, manifest: Manifest, sink, progress, cancel) -> None:
    expected = manifest.members()
    seen: set[str] = set()
    total, done, last = max(manifest.size, 1), 0, MANIFEST_NAME
    while (member := _next(pack, tar, last)) is not None:
        raise_if_cancelled(cancel, "weights import")
        name = member.name
        if name not in expected:
            raise PackError(pack, f"{name}: not listed in the manifest{_kind_note(member)}; {REFUSED}")
        if name in seen:
            raise PackError(pack, f"{name}: appears twice in the pack; {REFUSED}")
        if not member.isreg():
            raise PackError(pack, f"{name}: is a{_kind_note(member) or ' special member'}, not a plain file; {REFUSED}")
        item, f = expected[name]
        if member.size != f.size:
            raise PackError(pack, f"{name}: {member.size} bytes, the manifest says {f.size} (corrupt pack); {REFUSED}")
        with sink(item, f) as out:
            digest = _copy_hashing(pack, tar, member, out, cancel)
        if digest != f.sha256:
            raise PackError(pack, f"{name}: sha256 differs from the manifest (corrupt pack); {REFUSED}")
        seen.add(name)
        done += f.size
        last = name
        if progress:
            progress(0.95 * done / total, f"verified {name}")
    missing = [n for n in expected if n not in seen]
    if missing:
        raise PackError(pack, f"{missing[0]}: listed in the manifest but not in the pack (partial pack, "
                        f"{len(missing)} file(s) missing); {REFUSED}")


def _kind_note(member: tarfile.TarInfo) -> str:
    if member.issym() or member.islnk():
        return f" symbolic or hard link (to {member.linkname})"
    if member.isdir():
        return " folder"
    if not member.isreg():
        return " device or special file"
    return ""


def _copy_hashing(pack: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, out, cancel) -> str:
    h = hashlib.sha256()
    n = 0
    try:
        src = tar.extractfile(member)
        while chunk := src.read(CHUNK):
            h.update(chunk)
            out.write(chunk)
            n += len(chunk)
            raise_if_cancelled(cancel, "weights import")
    except (tarfile.TarError, EOFError) as exc:
        raise PackError(pack, f"{member.name}: truncated ({exc}); {REFUSED}") from None
    except _DECOMPRESS_ERRORS as exc:
        raise PackError(pack, f"{member.name}: the compressed stream is damaged ({exc}); {REFUSED}") from None
    except OSError as exc:
        if getattr(exc, "filename", None) is None and "unexpected end" in str(exc):
            raise PackError(pack, f"{member.name}: truncated pack ({exc}); {REFUSED}") from None
        raise PackError(pack, f"{member.name}: cannot write it while importing ({exc}); {REFUSED}") from None
    if n != member.size:
        raise PackError(pack, f"{member.name}: truncated ({n} of {member.size} bytes); {REFUSED}")
    return h.hexdigest()


class _NullSink:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass


class _FileSink:
    """A new file in the staging folder; never follows a link, never overwrites."""

    def __init__(self, path: Path, executable: bool = False):
        self.path = path
        self.mode = 0o755 if executable else 0o644

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_BINARY", 0), self.mode)
        if hasattr(os, "fchmod"):
            os.fchmod(fd, self.mode)  # exactly the manifest's mode, whatever the umask
        self.fh = os.fdopen(fd, "wb")
        return self.fh

    def __exit__(self, *exc) -> None:
        self.fh.close()


# ------------------------------------------------------------------------------------ checks
def _refuse_shared_targets(pack: Path, manifest: Manifest, targets: Targets) -> None:
    """Two items installed as one folder (two runtimes) would replace each other."""
    seen: dict[Path, str] = {}
    for item in manifest.items:
        target = targets.folder_for(item)
        if target in seen:
            raise PackError(pack, f"items {seen[target]} and {item.name} would both be installed as {target}; {REFUSED}")
        seen[target] = item.name


def _check_staged(pack: Path, item: PackItem, folder: Path) -> None:
    """The staged item as its user will find it: the backend's weights or runtime check, or the model
    folder checks."""
    if item.kind is ItemKind.TOTALSEG_DATASET:
        from inference.segmentation import totalseg_weights as tsw

        if item.dataset_id in tsw.FOLDERS:
            problem = tsw.folder_problem(folder.parent, item.dataset_id)
            if problem:
                raise PackError(pack, f"item {item.name}: {problem}; {REFUSED}")
        return
    if item.kind is ItemKind.TOTALSEG_RUNTIME:
        from inference.segmentation.totalseg_runtime import runtime_problem

        problem = runtime_problem(folder)
        not_executable = [f.path for f in item.files if f.executable and os.name == "posix"
                          and not os.access(folder / f.path, os.X_OK)]
        if problem is None and not_executable:
            problem = f"{not_executable[0]} did not install as executable"
        if problem:
            raise PackError(pack, f"segmentation runtime {item.name}: {problem.replace(str(folder), item.name)}; "
                            f"{REFUSED}")
        return
    from inference.model.folder_checks import read_safetensors_header
    from inference.model.model_files import check_model_folder

    try:
        check_model_folder(folder)
        for f in sorted(folder.rglob("*.safetensors")):
            read_safetensors_header(f)
    except TumorChainError as exc:
        text = str(exc).replace(str(folder), item.name)
        raise PackError(pack, f"model folder {text}; {REFUSED}") from None


def _check_space(pack: Path, base: Path, need: int) -> None:
    free = shutil.disk_usage(base).free
    if need > free:
        # MiB, not rounded GiB: "needs 1.16 GiB, only 1.16 GiB free" read as a contradiction
        raise PackError(pack, f"needs {need / 2**20:,.0f} MiB in {base}, only {free / 2**20:,.0f} MiB free "
                        f"(free {(need - free) / 2**20:,.0f} MiB more); {REFUSED}")


def _make_dirs(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (outermost first)."""
    made = []
    for p in reversed([folder, *folder.parents]):
        if not p.exists():
            p.mkdir()
            made.append(p)
    return made


def _mkdtemp(base: Path) -> str:
    import tempfile

    return tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base)


# ------------------------------------------------------------------------------------ install
def _swap_in(pack: Path, manifest: Manifest, targets: Targets, stages: dict[Path, Path]) -> list[InstalledItem]:
    done: list[tuple[Path, Path | None]] = []  # (installed folder, the old copy set aside)
    installed = []
    try:
        for item in manifest.items:
            target = targets.folder_for(item)
            aside = None
            if target.exists() or target.is_symlink():
                aside = target.with_name(f"{ASIDE_PREFIX}{item.name}-{uuid.uuid4().hex[:8]}")
                os.rename(target, aside)
            try:
                os.rename(stages[target.parent] / target.name, target)
            except OSError:
                if aside is not None:
                    os.rename(aside, target)
                raise
            done.append((target, aside))
            installed.append(InstalledItem(item, target, aside is not None))
    except OSError as exc:
        for target, aside in reversed(done):  # put every earlier item back as it was
            shutil.rmtree(target, ignore_errors=True)
            if aside is not None:
                os.rename(aside, target)
        raise PackError(pack, f"cannot install into {exc.filename or targets.models} ({exc.strerror or exc}); "
                        f"{REFUSED} (earlier installs are as they were)") from None
    for _, aside in done:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    _fsync_dirs({t.parent for t, _ in done})
    return installed


def _fsync_dirs(folders) -> None:
    if os.name != "posix":
        return
    for folder in folders:
        try:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
