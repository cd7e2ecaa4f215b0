"""GUI test fixtures: a real X server, the four views on a scene state, cases and pixel helpers.

Run under Xvfb (``xvfb-run -a -s "-screen 0 1600x1000x24" pytest tests/gui``); without a
DISPLAY this conftest starts an Xvfb itself when one is installed, else the tests skip.
Screenshots go to <repo>/artifacts/screenshots/ (git-ignored) for people to look at.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gui_helpers, viewer_cases

from gui_helpers import SHARED_DATA, Viewer  # noqa: E402

def _start_xvfb() -> None:
    """Start a private Xvfb when no display is set (the CI uses xvfb-run instead).

    A small shell keeps it alive until this pytest process has exited: Qt and VTK still talk to
    the X server while the interpreter shuts down, after every pytest hook has run.
    """
    if os.environ.get("DISPLAY") or not shutil.which("Xvfb"):
        return
    for num in range(90, 130):
        if Path(f"/tmp/.X{num}-lock").exists():
            continue
        script = (f"Xvfb :{num} -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 & x=$!; "
                  f"while kill -0 {os.getpid()} 2>/dev/null && kill -0 $x 2>/dev/null; do sleep 0.5; done; "
                  "kill $x 2>/dev/null; wait $x")
        subprocess.Popen(["sh", "-c", script], start_new_session=True)
        for _ in range(50):
            if Path(f"/tmp/.X11-unix/X{num}").exists():
                os.environ["DISPLAY"] = f":{num}"
                return
            time.sleep(0.1)


def pytest_configure(config):
    _start_xvfb()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    # the workstation's settings, reviews and runs go to a throwaway profile, never the user's
    if not os.environ.get("TUMORCHAIN_PROFILE_DIR"):
        import tempfile

        import atexit

        profile = Path(tempfile.mkdtemp(prefix="tumorchain-gui-profile-"))
        atexit.register(shutil.rmtree, profile, True)
        os.environ["TUMORCHAIN_PROFILE_DIR"] = str(profile)
        os.environ["TUMORCHAIN_REVIEW_DIR"] = str(profile / "reviews")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        # modules that set NEEDS_DISPLAY = False (geometry, state) run anywhere
        if here in Path(str(item.fspath)).resolve().parents and getattr(item.module, "NEEDS_DISPLAY", True):
            item.add_marker(pytest.mark.gui)
            if not os.environ.get("DISPLAY"):
                item.add_marker(pytest.mark.skip(reason="no X display and no Xvfb to start one"))


@pytest.fixture(scope="module", autouse=True)
def module_profile(tmp_path_factory):
    """Each test module gets an empty profile of its own: settings a test saves, the geometry a
    closed window leaves, recent cases and stored runs (which the demo case's windows would bring
    back on opening) never reach another module's windows, whatever order the modules run in."""
    from workstation_helpers import own_profile

    with own_profile(tmp_path_factory.mktemp("profile")) as folder:
        yield folder


@pytest.fixture(autouse=True)
def _collect_closed_windows():
    """After each test, delete the widgets it closed and collect their Python cycles now, between
    tests. Left to the garbage collector, a closed window's VTK render windows were destroyed at
    whatever moment the next allocation triggered a collection, once inside a new window's
    vtkRenderWindow constructor: a segfault after enough windows (test_memory, test_non_ct_refusal,
    test_overlay_and_highlight, then test_pacs_dialogs, in one process)."""
    yield
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is not None:
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QApplication.processEvents()
    gc.collect()


@pytest.fixture(scope="module")
def viewer(qapp):
    """Four views shared by one test module (creating GL windows is the slow part)."""
    v = Viewer()
    yield v
    v.close()


@pytest.fixture
def synthetic():
    from viewer_cases import make_case

    return make_case


@pytest.fixture(scope="session")
def real_case():
    """The real CT in ../shared/data with its TotalSegmentator mask, read by the product's loaders."""
    ct_path, seg_path = SHARED_DATA / "example_ct_sm.nii.gz", SHARED_DATA / "example_seg.nii.gz"
    if not (ct_path.exists() and seg_path.exists()):
        pytest.skip(f"real test data absent: {SHARED_DATA} (expected beside the repository)")
    from inference.ct_io import load_ct
    from inference.segmentation.precomputed import PrecomputedExpert

    ct = load_ct(ct_path)
    masks = PrecomputedExpert(seg_path).segment(ct)
    return ct, masks


@pytest.fixture(scope="session")
def workstation_model(tmp_path_factory):
    """The model the workstation tests analyze with: resources/demo_model, else a tiny random one."""
    from workstation_helpers import build_test_model

    return build_test_model(tmp_path_factory.mktemp("workstation_model"))
