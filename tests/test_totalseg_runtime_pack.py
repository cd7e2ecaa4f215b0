"""The segmentation runtime as a weights pack item (kind totalseg_runtime): export keeps executable
bits, import verifies every byte and installs it where the backend looks, a corrupt byte or a
runtime that could not start is refused and installs nothing, and the backend names the path of a
broken runtime. Fast: the runtime here is a stand-in (a shell script program that runs the
TotalSegmentator env's python with the worker), so the backend's runtime path runs TotalSegmentator
for real with only its model call faked; tests/test_totalseg_runtime_frozen.py does the same with
the real frozen runtime."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from fakes.totalseg_env import env_python, fake_env, make_fake_weights, skip_reason
from inference.ct_volume import CTVolume
from inference.errors import SegmentationError
from inference.segmentation import totalseg_runtime as rt
from inference.segmentation.totalseg_backend import ENV_PYTHON, WORKER, TotalSegmentatorExpert, find_worker
from inference.weights_pack.export import build_manifest, export_pack, runtime_source
from inference.weights_pack.importer import PackError, import_pack
from inference.weights_pack.inventory import take_inventory
from inference.weights_pack.locations import Targets

pytestmark = pytest.mark.skipif(os.name != "posix", reason="executable bits and shell-script programs")
needs_env = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


def make_standin_runtime(folder: Path, platform: str | None = None) -> Path:
    """A runtime folder laid out as the build makes it; its program runs the worker with the env's python."""
    (folder / "_internal").mkdir(parents=True)
    (folder / "_internal" / "libexample.so").write_bytes(os.urandom(4096))
    (folder / "_internal" / "libexample.so").chmod(0o755)
    (folder / "_internal" / "base_library.zip").write_bytes(os.urandom(2048))
    program = rt.program_path(folder)
    program.write_text(f'#!/bin/sh\nexec "{env_python()}" -u "{WORKER}" "$@"\n')
    program.chmod(0o755)
    (folder / rt.INFO_FILE).write_text(json.dumps({
        "format": rt.INFO_FORMAT, "program": rt.PROGRAM, "totalsegmentator": "2.18.0",
        "platform": platform or rt.this_platform()}))
    return folder


def tiny_ct(tmp_path: Path) -> CTVolume:
    hu = np.full((8, 8, 4), -1000, dtype=np.int16)
    return CTVolume(hu=hu, affine=np.diag([2.0, 2.0, 3.0, 1.0]), source_path=tmp_path / "tiny.nii.gz")


@pytest.fixture
def no_worker_env(monkeypatch, tmp_path):
    """No TotalSegmentator location from the environment; the user data folder is a fresh one."""
    monkeypatch.delenv(ENV_PYTHON, raising=False)
    monkeypatch.delenv(rt.ENV_RUNTIME, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def runtime_pack(tmp_path) -> Path:
    src = make_standin_runtime(tmp_path / "built" / "totalseg-runtime-2.18.0-linux")
    out = tmp_path / "runtime.tcpack.tar"
    export_pack(out, [runtime_source(src)])
    return out


def targets_in(tmp_path: Path) -> Targets:
    return Targets.for_settings(tmp_path / "ts_home", tmp_path / "models")  # runtime: the default place


def test_manifest_keeps_executable_bits(tmp_path):
    src = make_standin_runtime(tmp_path / "rt")
    source = runtime_source(src)
    assert source.name == f"totalseg-runtime-2.18.0-{rt.this_platform()}"
    item = build_manifest([source]).items[0]
    flags = {f.path: f.executable for f in item.files}
    assert flags == {rt.PROGRAM: True, "_internal/libexample.so": True, "_internal/base_library.zip": False,
                     rt.INFO_FILE: False}
    assert '"executable": true' in build_manifest([source]).to_json()


def test_good_pack_installs_runtime_and_backend_uses_it(runtime_pack, tmp_path, no_worker_env):
    targets = targets_in(tmp_path)
    assert targets.runtime_dir == tmp_path / "xdg" / "tumorchain" / rt.FOLDER_NAME
    report = import_pack(runtime_pack, targets)
    installed = targets.runtime_dir
    assert [i.folder for i in report.installed] == [installed]
    mode = lambda p: stat.S_IMODE((installed / p).stat().st_mode)  # noqa: E731
    assert mode(rt.PROGRAM) == 0o755 and mode("_internal/libexample.so") == 0o755
    assert mode("_internal/base_library.zip") == 0o644 and mode(rt.INFO_FILE) == 0o644
    assert not [p for p in installed.parent.iterdir() if p.name.startswith(".")]  # no staging left
    inventory = take_inventory(targets)
    assert inventory.runtime_problem is None and f"Segmentation runtime in {installed}: ready" in inventory.lines()
    # with nothing configured, the backend finds the installed runtime (before any checkout env)
    worker = find_worker()
    assert worker.kind == "runtime" and worker.command == (str(installed / rt.PROGRAM),)


@needs_env
def test_backend_runs_totalsegmentator_through_the_runtime(runtime_pack, tmp_path, no_worker_env):
    """TotalSegmentator runs for real through the installed runtime's program; only its model call is faked."""
    import_pack(runtime_pack, targets_in(tmp_path))
    hu = np.full((40, 40, 24), -1000, dtype=np.int16)
    hu[8:32, 8:32, 4:20] = 60
    ct = CTVolume(hu=hu, affine=np.diag([4.0, 4.0, 5.0, 1.0]), source_path=tmp_path / "small.nii.gz")
    home = tmp_path / "ts_home"
    make_fake_weights(home, [297])
    log = tmp_path / "calls.jsonl"
    masks = TotalSegmentatorExpert(fast=True, home_dir=home, env=fake_env(ct.affine, ct.shape, TC_FAKE_LOG=str(log))
                                   ).segment(ct)
    assert masks.details["worker"] == f"segmentation runtime {targets_in(tmp_path).runtime_dir}"
    assert [json.loads(line)["task_id"] for line in log.read_text().splitlines()] == [297]
    assert masks.shape == ct.shape and masks.organs.any()


def test_one_corrupt_byte_in_the_runtime_is_refused_and_installs_nothing(runtime_pack, tmp_path, no_worker_env):
    import tarfile

    with tarfile.open(runtime_pack) as tar:
        name = next(n for n in tar.getnames() if n.endswith("/_internal/libexample.so"))
        offset = tar.getmember(name).offset_data + 100
    data = bytearray(runtime_pack.read_bytes())
    data[offset] ^= 0x01
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    targets = targets_in(tmp_path)
    with pytest.raises(PackError) as err:
        import_pack(bad, targets)
    assert name in str(err.value) and "sha256" in str(err.value) and "nothing was installed" in str(err.value)
    assert not targets.runtime_dir.exists() and not (tmp_path / "xdg").exists()


def test_runtime_for_another_platform_or_two_runtimes_are_refused(tmp_path, no_worker_env):
    other = make_standin_runtime(tmp_path / "win", platform="windows-AMD64")
    pack = tmp_path / "other.tar"
    export_pack(pack, [runtime_source(other)])  # a pack may be made for another system...
    targets = targets_in(tmp_path)
    with pytest.raises(PackError, match="built for windows-AMD64"):
        import_pack(pack, targets)  # ...but does not install here
    assert not targets.runtime_dir.exists()
    mine = make_standin_runtime(tmp_path / "mine")
    two = tmp_path / "two.tar"
    export_pack(two, [runtime_source(mine), runtime_source(other)])
    with pytest.raises(PackError, match="would both be installed as"):
        import_pack(two, targets)
    assert not targets.runtime_dir.exists()


def test_export_refuses_a_runtime_whose_program_is_not_executable(tmp_path):
    src = make_standin_runtime(tmp_path / "rt")
    rt.program_path(src).chmod(0o644)
    with pytest.raises(Exception, match="not executable"):
        runtime_source(src)


def test_broken_installed_runtime_is_named(runtime_pack, tmp_path, no_worker_env):
    targets = targets_in(tmp_path)
    import_pack(runtime_pack, targets)
    folder = targets.runtime_dir
    expert = TotalSegmentatorExpert(fast=True, home_dir=tmp_path / "ts_home")
    make_fake_weights(tmp_path / "ts_home", [297])

    rt.program_path(folder).chmod(0o644)  # permissions lost in a copy
    with pytest.raises(SegmentationError) as err:
        expert.segment(tiny_ct(tmp_path))
    assert f"segmentation runtime in {folder} is broken" in str(err.value) and "not executable" in str(err.value)
    assert "weights import" in str(err.value)

    rt.program_path(folder).chmod(0o755)
    rt.program_path(folder).write_bytes(b"\x7fELF garbage, not a program")  # damaged on disk
    with pytest.raises(SegmentationError) as err:
        expert.segment(tiny_ct(tmp_path))
    assert f"cannot start the segmentation runtime {folder}" in str(err.value)
    assert str(rt.program_path(folder)) in str(err.value)

    (folder / rt.INFO_FILE).unlink()
    with pytest.raises(SegmentationError, match=f"{folder} is broken: {rt.INFO_FILE} is missing"):
        expert.segment(tiny_ct(tmp_path))


def test_nothing_installed_names_both_places(tmp_path, no_worker_env, monkeypatch):
    from inference.segmentation import totalseg_backend

    monkeypatch.setattr(totalseg_backend, "REPO_ROOT", tmp_path / "checkout")  # a bundle: no .venv-totalseg
    with pytest.raises(SegmentationError) as err:
        find_worker()
    text = str(err.value)
    assert str(tmp_path / "xdg" / "tumorchain" / rt.FOLDER_NAME) in text
    assert str(tmp_path / "checkout" / ".venv-totalseg") in text and "weights import" in text
    # an explicit environment variable wins, and a wrong one is named
    monkeypatch.setenv(rt.ENV_RUNTIME, str(tmp_path / "elsewhere"))
    with pytest.raises(SegmentationError, match=f"{tmp_path / 'elsewhere'} is broken"):
        find_worker()
    assert find_worker(python=Path(sys.executable)).kind == "python"


def test_worker_env_outside_the_bundle(monkeypatch):
    """Started from the bundled (PyInstaller) workstation, the worker gets the launcher's library path
    back and no _PYI_* variables (tests/test_totalseg_runtime_frozen.py runs the real runtime so)."""
    from inference.segmentation.totalseg_backend import outside_bundle_env

    env = outside_bundle_env({"LD_LIBRARY_PATH": "/opt/app/lib/_internal:/site/lib", "LD_LIBRARY_PATH_ORIG": "/site/lib",
                              "_PYI_APPLICATION_HOME_DIR": "/opt/app/lib/_internal", "_PYI_PARENT_PROCESS_LEVEL": "1",
                              "HOME": "/home/r"})
    assert env == {"LD_LIBRARY_PATH": "/site/lib", "HOME": "/home/r", "PYINSTALLER_RESET_ENVIRONMENT": "1"}
    assert "LD_LIBRARY_PATH" not in outside_bundle_env({"LD_LIBRARY_PATH": "/opt/app/lib/_internal"})
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setenv("_PYI_ARCHIVE_FILE", "/opt/app/lib/tumorchain-workstation")
    worker_env = TotalSegmentatorExpert(env={"EXTRA": "1"})._worker_env(Path("/h"))
    assert "_PYI_ARCHIVE_FILE" not in worker_env and worker_env["EXTRA"] == "1"
    assert worker_env["PYINSTALLER_RESET_ENVIRONMENT"] == "1" and worker_env["TOTALSEG_HOME_DIR"] == "/h"
