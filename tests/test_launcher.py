"""The bundle's launcher (installers/linux/launcher.sh), run for real with a stand-in for the frozen
program that prints what it was given: first start opens the demo case, `tumorchain` is the command
line, a symlink from /usr/bin finds the bundle, a segmentation runtime or TotalSegmentator env
beside it is used, and the environment keeps the workstation offline. The desktop entry is checked with desktop-file-validate
when it is installed."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINUX = ROOT / "installers" / "linux"
pytestmark = pytest.mark.skipif(os.name != "posix", reason="a POSIX shell script")


@pytest.fixture
def bundle(tmp_path) -> Path:
    app = tmp_path / "opt" / "tumorchain-workstation"
    (app / "lib").mkdir(parents=True)
    shutil.copy(LINUX / "launcher.sh", app / "tumorchain-workstation")
    (app / "tumorchain").symlink_to("tumorchain-workstation")
    fake = app / "lib" / "tumorchain-workstation"
    fake.write_text('#!/bin/sh\necho "ARGS $*"\necho "TS ${TUMORCHAIN_TOTALSEG_PYTHON:-none}"\n'
                    'echo "RT ${TUMORCHAIN_TOTALSEG_RUNTIME:-none}"\n'
                    'echo "ENV $HF_HUB_OFFLINE $TRANSFORMERS_OFFLINE $USE_HUB_KERNELS $LANG"\n')
    for f in (app / "tumorchain-workstation", fake):
        f.chmod(0o755)
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "tumorchain").symlink_to(app / "tumorchain")
    (tmp_path / "usr" / "bin" / "tumorchain-workstation").symlink_to(app / "tumorchain-workstation")
    (tmp_path / "home").mkdir()
    return tmp_path


def run(bundle: Path, command: str, *args: str, **env: str) -> dict[str, str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(bundle / "home")}
    out = subprocess.run([str(bundle / "usr" / "bin" / command), *args], env={**base, **env},
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) if " " in line else (line, "") for line in out.splitlines())


def test_first_start_opens_the_demo_then_not(bundle):
    assert run(bundle, "tumorchain-workstation")["ARGS"] == "--demo"
    conf = bundle / "home" / ".config" / "TumorChain" / "Workstation.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[window]\n")
    assert run(bundle, "tumorchain-workstation")["ARGS"] == ""
    assert run(bundle, "tumorchain-workstation", "/data/ct.nii.gz")["ARGS"] == "/data/ct.nii.gz"


def test_command_line_offline_environment_and_totalseg_env(bundle):
    out = run(bundle, "tumorchain", "weights", "list")
    assert out["ARGS"] == "cli weights list" and out["TS"] == "none"
    assert out["ENV"] == "1 1 NO C.UTF-8"
    assert run(bundle, "tumorchain", "weights", "list", LANG="de_DE.UTF-8")["ENV"].endswith("de_DE.UTF-8")
    python = bundle / "opt" / "tumorchain-workstation" / "totalseg" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    assert run(bundle, "tumorchain-workstation", "--demo")["TS"] == str(python)
    assert run(bundle, "tumorchain", "x", TUMORCHAIN_TOTALSEG_PYTHON="/elsewhere/python")["TS"] == "/elsewhere/python"
    # a segmentation runtime beside the bundle is preferred; one set by the caller is kept
    runtime = bundle / "opt" / "tumorchain-workstation" / "totalseg-runtime"
    runtime.mkdir()
    (runtime / "tumorchain-totalseg").write_text("#!/bin/sh\n")
    (runtime / "tumorchain-totalseg").chmod(0o755)
    out = run(bundle, "tumorchain-workstation", "--demo")
    assert out["RT"] == str(runtime) and out["TS"] == "none"
    assert run(bundle, "tumorchain", "x", TUMORCHAIN_TOTALSEG_RUNTIME="/site/rt")["RT"] == "/site/rt"


@pytest.mark.skipif(not shutil.which("desktop-file-validate"), reason="desktop-file-validate not installed")
def test_desktop_entry_is_valid():
    result = subprocess.run(["desktop-file-validate", str(LINUX / "tumorchain-workstation.desktop")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout
