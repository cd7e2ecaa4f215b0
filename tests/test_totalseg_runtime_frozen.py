"""The real segmentation runtime (installers/build_totalseg_runtime.sh): TotalSegmentator's worker
frozen with the TotalSegmentator environment by PyInstaller. It starts with no Python anywhere
(``env -i``), segments the real CT through TotalSegmentator's own code path with only its model
call faked (tests/fakes/totalseg_site, as the environment tests do), and travels in a weights pack:
one corrupt byte is refused and installs nothing, the good pack installs it where the backend finds it.

Building it takes minutes (PyInstaller's analysis of torch and nnU-Net), so .ci/run builds it before
the tests; elsewhere this test needs it built first (``bash installers/build_totalseg_runtime.sh``),
or builds it itself when TUMORCHAIN_BUILD_TOTALSEG_RUNTIME=1; otherwise it skips and says how.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from built_artifacts import built_or_skip, built_runtime
from fakes.totalseg_env import fake_env, make_fake_weights, rule_centre
from fakes.totalseg_site import fake_rule
from inference.ct_volume import CTVolume
from inference.labels import merged_labels
from inference.segmentation import totalseg_runtime as rt
from inference.segmentation.totalseg_backend import ENV_PYTHON, TotalSegmentatorExpert, find_worker
from inference.weights_pack.importer import PackError, import_pack
from inference.weights_pack.locations import Targets

ROOT = Path(__file__).resolve().parents[1]
DIST = Path(os.environ.get("TUMORCHAIN_BUNDLE_DIST", ROOT / "dist"))
CT_FILE = ROOT.parent / "shared" / "data" / "example_ct_sm.nii.gz"
LIVER, SPLEEN = (merged_labels().by_name(n).id for n in ("liver", "spleen"))
pytestmark = [pytest.mark.slow, pytest.mark.totalseg, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def runtime() -> Path:
    if sys.platform != "linux":
        pytest.skip("the runtime is built and tested on Linux here")
    folder = built_or_skip(lambda: built_runtime(DIST), ROOT / "installers" / "build_totalseg_runtime.sh", DIST,
                           "TUMORCHAIN_BUILD_TOTALSEG_RUNTIME", "segmentation runtime")
    assert rt.runtime_problem(folder) is None, rt.runtime_problem(folder)
    return folder


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No TotalSegmentator location from the environment; a fresh user data folder."""
    monkeypatch.delenv(ENV_PYTHON, raising=False)
    monkeypatch.delenv(rt.ENV_RUNTIME, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def test_starts_without_any_python(runtime, tmp_path):
    """``env -i``: no PATH, no PYTHONHOME; the program carries its interpreter."""
    out = subprocess.run(["env", "-i", str(rt.program_path(runtime)), "--help"], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Runs TotalSegmentator INSIDE its own environment" in out.stdout
    info = rt.read_info(runtime)
    assert info["totalsegmentator"] == "2.18.0" and info["platform"] == rt.this_platform()


@pytest.mark.skipif(not CT_FILE.is_file(), reason=f"real test CT absent: {CT_FILE}")
def test_frozen_runtime_segments_the_real_ct(runtime, tmp_path, clean_env):
    from inference.ct_io import load_ct

    ct = load_ct(CT_FILE)
    home = tmp_path / "tsh"
    make_fake_weights(home, [297])
    log = tmp_path / "calls.jsonl"
    env = fake_env(ct.affine, ct.shape, TC_FAKE_LOG=str(log))
    t0 = time.monotonic()
    masks = TotalSegmentatorExpert(fast=True, runtime=runtime, home_dir=home, env=env).segment(ct)
    print(f"frozen runtime: fast run on {ct.shape} in {time.monotonic() - t0:.1f} s")
    assert masks.details["worker"] == f"segmentation runtime {runtime}"
    assert masks.details["versions"]["totalsegmentator"] == "2.18.0"
    # TotalSegmentator resampled the CT to 3 mm and handed it to the (faked) model, inside the frozen program
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["task_id"] for c in calls] == [297] and calls[0]["device"] == "cpu"
    assert Path(calls[0]["model_folder"]).is_relative_to(home)
    truth = fake_rule.regions(ct.hu.astype(np.float32), ct.affine, rule_centre(env))
    assert masks.shape == ct.shape and np.allclose(masks.affine, ct.affine)
    assert dice(masks.organs == LIVER, truth["liver"]) > 0.9
    assert dice(masks.organs == SPLEEN, truth["spleen"]) > 0.9
    assert json.loads((home / "config.json").read_text())["send_usage_stats"] is False


def test_runtime_pack_round_trip(runtime, runtime_packs, disposable_tmp, clean_env):
    tmp_path = disposable_tmp
    fresh, t0 = runtime not in runtime_packs.packs, time.monotonic()
    pack, manifest = runtime_packs.pack_of(runtime)
    t_export = time.monotonic() - t0
    item = manifest.items[0]
    program = next(f for f in item.files if f.path == rt.PROGRAM)
    assert program.executable
    print(f"runtime pack: {len(item.files)} files, {item.size / 2**20:.0f} MiB unpacked, "
          f"{pack.stat().st_size / 2**20:.0f} MiB pack, "
          + (f"exported in {t_export:.0f} s" if fresh else "exported by an earlier test"))

    # one byte of the largest library flipped in place: refused, nothing installed; then put back
    # (the pack is shared with tests/test_bundle.py)
    largest = max(item.files, key=lambda f: f.size)
    with tarfile.open(pack) as tar:
        offset = tar.getmember(item.member(largest)).offset_data + largest.size // 2
    targets = Targets.for_settings(tmp_path / "tsh", tmp_path / "models")
    with open(pack, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x40]))
    try:
        with pytest.raises(PackError) as err:
            import_pack(pack, targets)
    finally:
        with open(pack, "r+b") as fh:
            fh.seek(offset)
            fh.write(byte)
    assert item.member(largest) in str(err.value) and "nothing was installed" in str(err.value)
    assert not targets.runtime_dir.exists() and not (tmp_path / "xdg").exists()

    t0 = time.monotonic()
    import_pack(pack, targets)
    print(f"runtime pack imported in {time.monotonic() - t0:.0f} s")
    worker = find_worker()  # nothing configured: the installed runtime is found
    assert worker.kind == "runtime" and worker.path == targets.runtime_dir
    hu = np.full((48, 48, 30), -1000, dtype=np.int16)
    hu[8:40, 8:40, 4:26] = 40
    ct = CTVolume(hu=hu, affine=np.diag([4.0, 4.0, 5.0, 1.0]), source_path=tmp_path / "small.nii.gz")
    make_fake_weights(tmp_path / "tsh", [297])
    masks = TotalSegmentatorExpert(fast=True, home_dir=tmp_path / "tsh", env=fake_env(ct.affine, ct.shape)).segment(ct)
    assert masks.details["worker"] == f"segmentation runtime {targets.runtime_dir}" and masks.organs.any()


def test_started_from_the_bundled_workstation(runtime, tmp_path, clean_env, monkeypatch):
    """The bundled workstation is a PyInstaller program too: its bootloader puts the bundle's libraries
    first on LD_LIBRARY_PATH and sets _PYI_* variables. The backend gives the runtime the launcher's
    environment back; without that, the runtime loads the wrong libc10.so and fails."""
    from inference.errors import SegmentationError

    poison = tmp_path / "bundle_internal"  # stands for the bundle's _internal: same names, other files
    poison.mkdir()
    for name in ("libc10.so", "libtorch_cpu.so"):
        (poison / name).write_bytes(b"not the runtime's library")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(poison))
    monkeypatch.setenv("_PYI_APPLICATION_HOME_DIR", str(poison))
    monkeypatch.setenv("_PYI_PARENT_PROCESS_LEVEL", "1")
    hu = np.full((48, 48, 30), -1000, dtype=np.int16)
    hu[8:40, 8:40, 4:26] = 40
    ct = CTVolume(hu=hu, affine=np.diag([4.0, 4.0, 5.0, 1.0]), source_path=tmp_path / "small.nii.gz")
    make_fake_weights(tmp_path / "tsh", [297])
    expert = TotalSegmentatorExpert(fast=True, runtime=runtime, home_dir=tmp_path / "tsh", env=fake_env(ct.affine, ct.shape))
    with pytest.raises(SegmentationError) as err:  # the hazard, as a plain (unfrozen) caller passes it on
        expert.segment(ct)
    assert "libc10.so" in str(err.value) or "libtorch_cpu.so" in str(err.value), str(err.value)[-1500:]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    masks = expert.segment(ct)  # as the bundled workstation runs it
    assert masks.organs.any()
