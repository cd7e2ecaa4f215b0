"""TotalSegmentator backend: our orchestration, the worker and TotalSegmentator itself run for real;
only TotalSegmentator's hand-over to nnU-Net (totalsegmentator.nnunet.nnUNetv2_predict) is faked,
by tests/fakes/totalseg_site/sitecustomize.py on the worker's PYTHONPATH.

Tests marked ``totalseg`` need .venv-totalseg (installers/setup_totalseg_env.sh) and skip without it.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fakes.totalseg_env import env_python, fake_env, make_fake_weights, pid_alive, rule_centre, skip_reason
from fakes.totalseg_site import fake_rule
from inference.ct_volume import CTVolume
from inference.errors import Cancelled, SegmentationError
from inference.labels import merged_labels
from inference.segmentation import make_expert, totalseg_weights
from inference.segmentation.totalseg_backend import WORKER, TotalSegmentatorExpert

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CT_FILE = DATA / "example_ct_sm.nii.gz"

needs_env = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
needs_ct = pytest.mark.skipif(not CT_FILE.is_file(), reason=f"real test CT absent: {CT_FILE}")
LIVER, SPLEEN, LUMBAR = (merged_labels().by_name(n).id for n in ("liver", "spleen", "lumbar_vertebrae"))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


@pytest.fixture(scope="module")
def ct() -> CTVolume:
    if not CT_FILE.is_file():
        pytest.skip(f"real test CT absent: {CT_FILE}")
    from inference.ct_io import load_ct
    return load_ct(CT_FILE)


def tiny_ct(tmp_path: Path) -> CTVolume:
    hu = np.full((8, 8, 4), -1000, dtype=np.int16)
    return CTVolume(hu=hu, affine=np.diag([2.0, 2.0, 3.0, 1.0]), source_path=tmp_path / "tiny.nii.gz")


def fake_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------- errors before any run (no env needed)
def test_missing_env_names_the_setup_script(tmp_path):
    expert = TotalSegmentatorExpert(python=tmp_path / "no-env" / "bin" / "python", home_dir=tmp_path)
    with pytest.raises(SegmentationError) as err:
        expert.segment(tiny_ct(tmp_path))
    text = str(err.value)
    assert "installers/setup_totalseg_env.sh" in text and str(tmp_path / "no-env") in text
    assert "TUMORCHAIN_TOTALSEG_PYTHON" in text


def test_missing_weights_say_what_to_copy_where(tmp_path):
    home = tmp_path / "tsh"
    # weights for the fast model only, and one of them incomplete
    results = make_fake_weights(home, [297])
    expert = TotalSegmentatorExpert(python=sys.executable, home_dir=home, liver_segments=True)
    with pytest.raises(SegmentationError) as err:
        expert.segment(tiny_ct(tmp_path))
    text = str(err.value)
    assert "TOTALSEG_HOME_DIR" in text and str(home) in text and str(results) in text
    for i in (291, 292, 293, 294, 295, 298, 570):
        assert totalseg_weights.FOLDERS[i].folder in text
    assert "totalseg_download_weights -t total" in text and "-t liver_segments" in text
    assert "fold_0/checkpoint_final.pth" in text and "never downloads" in text

    (results / totalseg_weights.FOLDERS[297].folder / totalseg_weights.FOLDERS[297].model_dir
     / "fold_0" / "checkpoint_final.pth").unlink()
    with pytest.raises(SegmentationError, match="incomplete copy"):
        TotalSegmentatorExpert(python=sys.executable, home_dir=home, fast=True).segment(tiny_ct(tmp_path))


def test_env_without_totalsegmentator_is_reported(tmp_path):
    """The workstation's own python has no totalsegmentator: the worker says so, naming the script."""
    home = tmp_path / "tsh"
    make_fake_weights(home, [297])
    expert = TotalSegmentatorExpert(python=sys.executable, home_dir=home, fast=True)
    if importlib.util.find_spec("totalsegmentator") is not None:
        pytest.skip("totalsegmentator is importable in the test env itself")
    with pytest.raises(SegmentationError) as err:
        expert.segment(tiny_ct(tmp_path))
    assert "cannot import TotalSegmentator" in str(err.value)
    assert "installers/setup_totalseg_env.sh" in str(err.value)


def test_timeout_stops_the_worker(tmp_path):
    home = tmp_path / "tsh"
    make_fake_weights(home, [297])
    expert = TotalSegmentatorExpert(python=sys.executable, home_dir=home, fast=True, timeout_s=0.3)
    t0 = time.perf_counter()
    with pytest.raises(SegmentationError, match="did not finish within 0.3 s; stopped it"):
        expert.segment(tiny_ct(tmp_path))  # the worker is still importing torch at 0.3 s
    assert time.perf_counter() - t0 < 5.0


def test_option_validation():
    with pytest.raises(ValueError, match="unknown to TotalSegmentator"):
        TotalSegmentatorExpert(roi_subset=["liver", "livr"])
    with pytest.raises(ValueError, match="device"):
        TotalSegmentatorExpert(device="cuda")
    assert totalseg_weights.needed_dataset_ids(fast=True, roi_subset=["liver"]) == [298, 297]
    assert TotalSegmentatorExpert(fast=True).cache_identity() != TotalSegmentatorExpert().cache_identity()


# ---------------------------------------------------------------- with the TotalSegmentator env
@pytest.mark.totalseg
@needs_env
def test_weight_table_matches_installed_totalsegmentator():
    """Our folder names / trainers are the ones the installed TotalSegmentator looks for."""
    table = {i: [w.folder, w.trainer] for i, w in totalseg_weights.FOLDERS.items()}
    code = """
import json, sys
from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS as W, TASK_CONFIGS as T
from importlib.metadata import version
ours = {int(k): v for k, v in json.loads(sys.argv[1]).items()}
total = T["total"]["sub_modes"]
trainer = {i: total["default"]["trainer"] for i in total["default"]["task_id"]}
trainer[total["fast"]["task_id"]] = total["fast"]["trainer"]
trainer[total["fastest"]["task_id"]] = total["fastest"]["trainer"]
trainer[T["liver_segments"]["task_id"]] = T["liver_segments"]["trainer"]
theirs = {i: [W[i]["foldername"], trainer[i]] for i in ours}
print(json.dumps({"same": theirs == ours, "theirs": theirs, "version": version("totalsegmentator")}))
"""
    out = subprocess.run([str(env_python()), "-c", code, json.dumps(table)], capture_output=True, text=True,
                         timeout=120, check=True)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["version"] == totalseg_weights.TOTALSEG_VERSION
    assert answer["same"], answer["theirs"]


@pytest.mark.totalseg
@pytest.mark.slow
@needs_env
@needs_ct
def test_full_run_total_and_liver_segments(ct, tmp_path):
    home = tmp_path / "tsh"
    make_fake_weights(home, totalseg_weights.needed_dataset_ids(liver_segments=True))
    env = fake_env(ct.affine, ct.shape, TC_FAKE_LOG=str(tmp_path / "calls.jsonl"))
    seen: list[tuple[float, str]] = []
    masks = TotalSegmentatorExpert(liver_segments=True, home_dir=home, env=env).segment(
        ct, progress=lambda f, m: seen.append((f, m)))

    # progress: monotone, per model, ends at 1.0
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum("running model" in m for _, m in seen) == 7

    # TotalSegmentator really ran around the fake: the five 1.5 mm part models, then the 6 mm crop
    # model and the liver segment model, each on its own resampled image
    calls = fake_log(tmp_path / "calls.jsonl")
    assert [c["task_id"] for c in calls] == [291, 292, 293, 294, 295, 298, 570]
    assert all(c["device"] == "cpu" for c in calls)
    shape_15mm = calls[0]["input_shapes"][0]
    assert all(abs(s - 2 * n) <= 2 for s, n in zip(shape_15mm, ct.shape)), shape_15mm  # 3 mm -> 1.5 mm
    assert np.prod(calls[5]["input_shapes"][0]) < np.prod(ct.shape)  # 6 mm model sees fewer voxels

    # geometry: back on the CT grid, every label sits where the rule put it in world space
    assert masks.shape == ct.shape and np.allclose(masks.affine, ct.affine)
    truth = fake_rule.regions(ct.hu.astype(np.float32), ct.affine, rule_centre(env))
    assert dice(masks.organs == LIVER, truth["liver"]) > 0.9
    assert dice(masks.organs == SPLEEN, truth["spleen"]) > 0.9
    assert dice(masks.organs == LUMBAR, truth["vertebrae_L1"]) > 0.7  # L1 -> merged lumbar_vertebrae
    assert dice(np.flip(masks.organs == LIVER, 0), truth["liver"]) < 0.2  # a flipped axis would show
    assert masks.parts is not None and set(np.unique(masks.parts)) == {0, *range(101, 109)}
    for k in range(1, 9):
        assert dice(masks.parts == 100 + k, truth["segments"] == k) > 0.9, k
    assert masks.details["dataset_ids"] == [291, 292, 293, 294, 295, 298, 570]

    # offline and private: usage statistics switched off in the configured home
    config = json.loads((home / "config.json").read_text())
    assert config["send_usage_stats"] is False


@pytest.mark.totalseg
@pytest.mark.slow
@needs_env
@needs_ct
def test_fast_roi_subset_on_lps_grid_then_cached(ct, tmp_path):
    """An LPS-stored CT (as DICOM gives) comes back on its own grid; a second review is free."""
    hu = np.ascontiguousarray(ct.hu[::-1, ::-1, :])
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [ct.shape[0] - 1, ct.shape[1] - 1]
    lps = CTVolume(hu=hu, affine=ct.affine @ flip, source_path=ct.source_path)
    home = tmp_path / "tsh"
    make_fake_weights(home, totalseg_weights.needed_dataset_ids(fast=True, roi_subset=["liver"]))
    env = fake_env(lps.affine, lps.shape, TC_FAKE_LOG=str(tmp_path / "calls.jsonl"))
    options = dict(fast=True, roi_subset=["liver", "spleen"], home_dir=home, env=env,
                   cache_dir=tmp_path / "cache")
    expert = make_expert("totalsegmentator", **options)

    first = expert.segment(lps)
    assert [c["task_id"] for c in fake_log(tmp_path / "calls.jsonl")] == [298, 297]
    truth = fake_rule.regions(lps.hu.astype(np.float32), lps.affine, rule_centre(env))
    assert dice(first.organs == LIVER, truth["liver"]) > 0.9
    assert not (first.organs == LUMBAR).any()  # roi_subset keeps only the classes asked for

    t0 = time.perf_counter()
    progress: list[tuple[float, str]] = []
    second = make_expert("totalsegmentator", **options).segment(lps, progress=lambda f, m: progress.append((f, m)))
    assert len(fake_log(tmp_path / "calls.jsonl")) == 2  # no new model call, no worker
    assert np.array_equal(second.organs, first.organs) and second.details["cache"]["hit"]
    assert progress[-1][0] == 1.0 and time.perf_counter() - t0 < 5.0


@pytest.mark.totalseg
@pytest.mark.slow
@needs_env
@needs_ct
def test_cancel_kills_the_worker_and_its_children(ct, tmp_path):
    home = tmp_path / "tsh"
    make_fake_weights(home, [297])
    pidfile = tmp_path / "child.pid"
    env = fake_env(ct.affine, ct.shape, TC_FAKE_SLEEP_S="120", TC_FAKE_PIDFILE=str(pidfile))
    cancel = threading.Event()
    outcome: dict = {}
    system_tmp = Path(tempfile.gettempdir())
    left_before = set(system_tmp.glob("nnunet_tmp_*")) | set(system_tmp.glob("tumorchain-totalseg-*"))

    def run():
        try:
            TotalSegmentatorExpert(fast=True, home_dir=home, env=env).segment(ct, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc
        outcome["end"] = time.perf_counter()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 240
    while not pidfile.exists() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pidfile.exists(), outcome.get("error")
    time.sleep(0.2)  # let the child write its pid fully
    child = int(pidfile.read_text())
    assert pid_alive(child)
    t_cancel = time.perf_counter()
    cancel.set()
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), Cancelled)
    assert outcome["end"] - t_cancel < 5.0  # measured ~0.5 s; the fake would sleep 120 s
    time.sleep(0.3)
    assert not pid_alive(child), "the model run's child process survived the cancel"
    # the killed TotalSegmentator could not remove its copy of the CT; none may stay behind
    left = (set(system_tmp.glob("nnunet_tmp_*")) | set(system_tmp.glob("tumorchain-totalseg-*"))) - left_before
    assert not left, f"a copy of the patient's CT stayed in {sorted(left)}"


@pytest.mark.totalseg
@pytest.mark.slow
@needs_env
@needs_ct
def test_worker_crash_shows_the_tail_of_its_errors(ct, tmp_path):
    home = tmp_path / "tsh"
    make_fake_weights(home, [297])
    env = fake_env(ct.affine, ct.shape, TC_FAKE_CRASH="CUDA out of memory (fake)")
    with pytest.raises(SegmentationError) as err:
        TotalSegmentatorExpert(fast=True, home_dir=home, env=env).segment(ct)
    text = str(err.value)
    assert "exit code 1" in text and "CUDA out of memory (fake)" in text
    assert "Traceback" in text  # the stderr tail, for a bug report


@pytest.mark.totalseg
@needs_env
def test_worker_refuses_to_download_missing_weights(tmp_path):
    """The worker's own check, before TotalSegmentator could start a download."""
    home = tmp_path / "tsh"
    ct_file = tmp_path / "ct.nii"
    ct_file.write_bytes(b"")  # never read: the check comes first
    proc = subprocess.run([str(env_python()), str(WORKER), "--input", str(ct_file), "--out-dir",
                           str(tmp_path / "out"), "--home-dir", str(home)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 3
    events = [json.loads(line[len("TCEVENT "):]) for line in proc.stdout.splitlines() if line.startswith("TCEVENT ")]
    error = events[-1]
    assert error["event"] == "error" and error["kind"] == "missing_weights"
    assert totalseg_weights.FOLDERS[291].folder in error["message"]
    assert not (home / "nnunet").exists()  # nothing created, nothing downloaded
