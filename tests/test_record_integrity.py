"""Records on disk survive a full disk, a read-only folder, a power cut and a killed write.

Faults are injected by monkeypatching the os calls a write makes (tests run as root, where
chmod does not stop a write): a decision whose save fails is not in memory and is not written by
the next successful save; every writer fsyncs the file and its folder before it returns; a
read-only store gives the project's StorageError naming the file; temporary files killed writes
left behind are swept when the store opens, fresh ones and other files are kept.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import time
from pathlib import Path

import pytest

from app.case_store import CaseStore
from inference.atomic_write import TEMP_SUFFIX, atomic_write, is_temp_name, sweep_stale_temps
from inference.ct_volume import CTVolume
from inference.errors import InputError, StorageError, TumorChainError
from inference.report.review import CONCLUSION, Review, run_key
from inference.report.review_store import ReviewAutosaver, load_review, save_review
from inference.segmentation.organ_masks import OrganMasks
from fault_injection import FAULTS, enospc, inject, read_only, restore_modes, temps
from report_fixtures import make_run, synthetic_arrays


@pytest.fixture(scope="module")
def run():
    hu, organs, parts, affine = synthetic_arrays((24, 20, 8))
    ct = CTVolume(hu=hu, affine=affine, source_path=Path("case.nii.gz"))
    return make_run(ct, OrganMasks(organs=organs, affine=affine, backend="synthetic", parts=parts))


# -- a failed save changes nothing ------------------------------------------------------------------

@pytest.mark.parametrize("fault", FAULTS)
def test_a_decision_whose_save_fails_is_not_applied_and_not_written_by_the_next_save(run, tmp_path, monkeypatch,
                                                                                     fault):
    path = tmp_path / "case" / "run.review.json"
    saver = ReviewAutosaver(Review.for_run(run, reviewer="Dr Disk"), path)
    saver.decide("round-1", "agreed")
    held = saver.review  # the GUI keeps this object: it must see the truth too
    before = held.to_dict()

    with monkeypatch.context() as m:
        inject(m, fault)
        with pytest.raises(StorageError) as info:
            saver.decide("round-2", "edited", text="Written on a full disk.", comment="lost")
    err = info.value
    assert isinstance(err, TumorChainError) and isinstance(err, InputError)  # the GUI/CLI catch these
    assert err.path == path and str(path) in str(err) and "disk is full" in err.problem
    assert saver.error is err
    # not applied in memory: the review is exactly as it was before the failed decision
    assert saver.review is held and held.to_dict() == before
    assert held.current("round-2").decision == "pending" and held.current("round-1").decision == "agreed"
    assert load_review(path).to_dict() == before  # the file on disk is the previous complete review
    assert temps(path.parent) == []  # the temporary file was cleaned up

    saver.decide("round-3", "rejected", comment="later, with space again")  # the next successful save
    assert saver.error is None
    on_disk = load_review(path)
    assert on_disk.current("round-2").decision == "pending"  # the failed decision was never written
    assert on_disk.current("round-2").comment == "" and "full disk" not in path.read_text()
    assert on_disk.current("round-3").decision == "rejected" and on_disk.current("round-1").decision == "agreed"
    assert on_disk.to_dict() == saver.review.to_dict()


def test_a_sign_off_whose_save_fails_leaves_the_review_unsigned(run, tmp_path, monkeypatch):
    path = tmp_path / "run.review.json"
    saver = ReviewAutosaver(Review.for_run(run, reviewer="Dr Disk"), path)
    for k in saver.review.keys:
        saver.decide(k, "agreed")
    with monkeypatch.context() as m:
        inject(m, "replace")
        with pytest.raises(StorageError):
            saver.sign("Dr Disk", confirm=True)
    assert not saver.review.is_signed and saver.review.signed is None
    assert not load_review(path).is_signed
    saver.decide(CONCLUSION, "rejected", comment="second thoughts")  # a later save stays unsigned
    assert not load_review(path).is_signed
    saver.sign("Dr Disk", confirm=True)
    assert load_review(path).is_signed


@pytest.mark.parametrize("fault", FAULTS)
def test_a_run_record_that_cannot_be_written_is_a_storage_error_and_keeps_the_old_file(run, tmp_path,
                                                                                      monkeypatch, fault):
    path = run.save(tmp_path / "run.json")
    good = path.read_bytes()
    with monkeypatch.context() as m:
        inject(m, fault)
        with pytest.raises(StorageError) as info:
            run.save(path)
    assert info.value.path == path and "run record" in str(info.value) and "disk is full" in str(info.value)
    assert path.read_bytes() == good and temps(tmp_path) == []


# -- read-only folders ------------------------------------------------------------------------------

@pytest.fixture
def modes_back(tmp_path):
    yield
    restore_modes(tmp_path)


def test_a_read_only_case_store_gives_the_projects_error_naming_the_file(run, tmp_path, monkeypatch, modes_back):
    store = CaseStore(tmp_path / "reviews")
    store.save_run(run)
    saver = store.open_review(run, reviewer="Dr RO")
    saver.decide("round-1", "agreed")
    folder = store.folder(run.case.content_hash)
    session = folder / "session.json"
    before = session.read_bytes()

    with monkeypatch.context() as m:
        read_only(m, tmp_path)
        with pytest.raises(StorageError) as info:
            store.set_current(run)
        assert info.value.path == session and str(session) in str(info.value)
        assert "read-only" in info.value.problem
        with pytest.raises(StorageError) as info:
            store.save_drafts(run, {"round-2": "typed"})
        assert info.value.path == store.drafts_path(run)
        with pytest.raises(StorageError) as info:
            saver.decide("round-2", "rejected")
        assert info.value.path == store.review_path(run)
        assert saver.review.current("round-2").decision == "pending"
        # reading still works: the run and its review can be shown (read-only)
        assert [s.key for s in store.runs(run.case.content_hash)] == [run_key(run)]
        assert store.current(run.case.content_hash).key == run_key(run)
        assert store.open_review(run).review.current("round-1").decision == "agreed"
        fresh = store.open_review(run, save_new=False)
        assert fresh.review.to_dict() == saver.review.to_dict()
    assert session.read_bytes() == before


# -- durability: fsync of the file and of its folder ------------------------------------------------

class _FsyncSpy:
    def __init__(self, monkeypatch):
        self.synced: list[tuple[bool, int, int]] = []  # (is a folder, device, inode)
        real = os.fsync

        def spy(fd):
            st = os.fstat(fd)
            self.synced.append((stat.S_ISDIR(st.st_mode), st.st_dev, st.st_ino))
            return real(fd)

        monkeypatch.setattr(os, "fsync", spy)

    def clear(self):
        self.synced.clear()

    def problems(self, what: str, path: Path) -> list[str]:
        f, d = path.stat(), path.parent.stat()
        out = []
        if (False, f.st_dev, f.st_ino) not in self.synced:
            out.append(f"{what}: the file {path.name} was not fsynced")
        if (True, d.st_dev, d.st_ino) not in self.synced:
            out.append(f"{what}: its folder was not fsynced")
        return out


def test_every_record_is_fsynced_file_and_folder_before_the_call_returns(run, tmp_path, monkeypatch):
    from inference.report.export import _write

    spy = _FsyncSpy(monkeypatch)
    store = CaseStore(tmp_path / "store")
    review = Review.for_run(run, reviewer="Dr Sync")
    writers = {
        "run record": lambda: run.save(tmp_path / "case" / "run.json"),
        "review": lambda: save_review(review, tmp_path / "case" / "run.review.json"),
        "autosaved decision": lambda: (ReviewAutosaver(review, tmp_path / "auto.review.json")
                                       .decide("round-1", "agreed"), tmp_path / "auto.review.json")[1],
        "stored run": lambda: store.save_run(run),
        "case session": lambda: (store.set_current(run), store.folder(run.case.content_hash) / "session.json")[1],
        "drafts": lambda: (store.save_drafts(run, {"round-2": "typing"}), store.drafts_path(run))[1],
        "export file": lambda: _write(tmp_path / "export" / "report.json", b"{}\n"),
        "text": lambda: atomic_write(tmp_path / "deep" / "x.json", "{}\n"),
        "streamed": lambda: atomic_write(tmp_path / "deep" / "y.bin", lambda fh: fh.write(b"\0" * 10)),
    }
    problems = []
    for what, write in writers.items():
        spy.clear()
        path = Path(write())
        assert path.is_file(), what
        problems += spy.problems(what, path)
    assert problems == []


def test_a_folder_that_cannot_be_synced_is_reported_unless_the_filesystem_cannot_sync_folders(run, tmp_path,
                                                                                               monkeypatch):
    real = os.fsync

    def dir_fsync(err):
        def f(fd):
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(err, os.strerror(err))
            return real(fd)
        return f

    review = Review.for_run(run)
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", dir_fsync(errno.EINVAL))  # e.g. a network filesystem: skipped
        save_review(review, tmp_path / "a.review.json")
        atomic_write(tmp_path / "a.json", "1")
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", dir_fsync(errno.EIO))  # the rename may not be on disk: say so
        for path, write in ((tmp_path / "b.review.json", lambda p: save_review(review, p)),
                            (tmp_path / "b.run.json", run.save)):
            with pytest.raises(StorageError) as info:
                write(path)
            assert info.value.path == path and "folder could not be synced" in info.value.problem


# -- stale temporary files --------------------------------------------------------------------------

def _age(path: Path, seconds: float) -> Path:
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def test_temporary_files_of_killed_writes_are_swept_when_the_store_opens(run, tmp_path, monkeypatch):
    root = tmp_path / "reviews"
    CaseStore(root).save_run(run)
    case = root / run.case.content_hash[:16]
    key = run_key(run)

    # the names a write's temporary files really get are the ones the sweep looks for
    names = []
    real_mkstemp = tempfile.mkstemp

    def recording_mkstemp(*a, **k):
        fd, name = real_mkstemp(*a, **k)
        names.append(Path(name).name)
        return fd, name

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", recording_mkstemp)
        m.setattr(os, "replace", enospc)
        with pytest.raises(StorageError):
            run.save(case / f"{key}.run.json")
    assert names and all(is_temp_name(n, f"{key}.run.json") for n in names)

    def make(folder: Path, name: str, age: float) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / name
        p.write_text("half a record")
        return _age(p, age)

    stale = [make(case, f".{key}.run.json.k1ll3d_x{TEMP_SUFFIX}", 3600),
             make(case, f".{key}.review.json.abcdefgh{TEMP_SUFFIX}", 120),
             make(case, f".session.json.zz_zz_zz{TEMP_SUFFIX}", 86400),
             make(root, f".settings.json.12345678{TEMP_SUFFIX}", 600)]
    kept = [make(case, f".{key}.review.json.freshone{TEMP_SUFFIX}", 1),  # a write under way elsewhere
            make(case, "notes.tmp", 3600),  # not ours
            make(case, f"{key}.review.json.tmp", 3600),
            make(case, f".{key}.review.json.abcdefgh.tmp", 3600),
            make(case, f"report{TEMP_SUFFIX}", 3600),  # no leading dot / random part
            make(case, f".x.json.TOOLONGRANDOM{TEMP_SUFFIX}", 3600),
            make(case / "deeper" / "still", f".a.json.abcdefgh{TEMP_SUFFIX}", 3600),  # below the case folders
            case / f"{key}.run.json", case / "session.json"]
    (case / f"{key}.run.json").touch()
    _age(case / f"{key}.run.json", 3600)

    store = CaseStore(root)  # opening the store sweeps
    assert [p for p in stale if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert store.runs(run.case.content_hash)  # the run itself is untouched and loads
    assert sweep_stale_temps(root, depth=1) == []  # nothing left to sweep

    # a review saved beside run.json (the CLI's case folder) sweeps its own stale temporaries
    folder = tmp_path / "cli_case"
    own = make(folder, f".run.review.json.abcdefgh{TEMP_SUFFIX}", 3600)
    other = make(folder, f".run.json.abcdefgh{TEMP_SUFFIX}", 3600)
    save_review(Review.for_run(run), folder / "run.review.json")
    assert not own.exists() and other.exists()
    assert json.loads((folder / "run.review.json").read_text())["run_key"] == key
