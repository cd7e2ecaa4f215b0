"""Backend: the real TotalSegmentator, run in its own environment as a subprocess.

Why a subprocess in another environment: TotalSegmentator 2.18 needs fury<2, which pins vtk<9.4,
while the workstation's viewer needs a current VTK. So TotalSegmentator lives in ``.venv-totalseg``
(installers/setup_totalseg_env.sh) and this module drives ``totalseg_worker.py`` with that env's
python, as 3D Slicer's TotalSegmentator extension and MITK do. A subprocess also makes cancel
real: the whole process group (nnU-Net's helper processes included) is killed.

Where there is no Python (a hospital machine with the bundle), the same worker runs frozen with its
environment as the segmentation runtime (totalseg_runtime.py; installers/build_totalseg_runtime.sh;
installed from a weights pack). ``find_worker`` picks one: an explicit python or runtime,
$TUMORCHAIN_TOTALSEG_PYTHON, $TUMORCHAIN_TOTALSEG_RUNTIME, a runtime installed in the user data
folder (a pack put it there on purpose), then the checkout's .venv-totalseg.

Flow: CTVolume -> temp NIfTI (its own affine) -> worker (progress lines) -> total.nii.gz
(+ liver_segments.nii.gz) -> checked against the CT grid -> merged scheme (+ parts 101..108).
"""
from __future__ import annotations

import collections
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from inference.ct_volume import CTVolume
from inference.errors import Cancelled, InputError, SegmentationError
from inference.labels import totalseg_names, totalseg_to_merged
from inference.segmentation import totalseg_runtime as runtimes
from inference.segmentation import totalseg_weights as weights
from inference.segmentation.expert import ProgressFn, notify_progress, raise_if_cancelled
from inference.segmentation.grid_check import fit_to_ct_grid
from inference.segmentation.label_files import read_label_nifti
from inference.segmentation.organ_masks import OrganMasks

ENV_PYTHON = "TUMORCHAIN_TOTALSEG_PYTHON"
REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("totalseg_worker.py")
EVENT_PREFIX = "TCEVENT "  # must match totalseg_worker.EVENT_PREFIX
LIVER_SEGMENT_BASE = 100  # liver_segments class k (1..8) -> merged substructure id 100 + k
_DEVICE = re.compile(r"^(auto|cpu|mps|gpu|gpu:\d+)$")
# Runs the worker file as __main__ without putting its folder (this package) first on sys.path,
# where our module names (cache, expert, ...) could shadow the env's packages; cwd is a fresh temp dir.
_BOOT = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
# Variables that would make the worker import the workstation's packages instead of its own env's.
_SCRUBBED_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


def default_env_python() -> Path:
    """$TUMORCHAIN_TOTALSEG_PYTHON, else <repo>/.venv-totalseg's python."""
    if os.environ.get(ENV_PYTHON):
        return Path(os.environ[ENV_PYTHON]).expanduser()
    venv = REPO_ROOT / ".venv-totalseg"
    return venv / "Scripts" / "python.exe" if os.name == "nt" else venv / "bin" / "python"


def outside_bundle_env(env: dict[str, str]) -> dict[str, str]:
    """The environment for a worker started by the bundled (PyInstaller) workstation. Its bootloader
    put the bundle's own libraries first on LD_LIBRARY_PATH (keeping the caller's value in
    LD_LIBRARY_PATH_ORIG) and set _PYI_* variables that make a PyInstaller program believe it is a
    child of this one: the worker would load the bundle's libtorch/libpython, and a frozen runtime
    would look for its files in the bundle. Give it the launcher's environment instead."""
    env = {k: v for k, v in env.items() if not k.startswith("_PYI_")}
    original = env.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is not None:
        env["LD_LIBRARY_PATH"] = original
    else:
        env.pop("LD_LIBRARY_PATH", None)
    env["PYINSTALLER_RESET_ENVIRONMENT"] = "1"  # PyInstaller >= 6.10: start as a program of its own
    return env


@dataclass(frozen=True)
class WorkerProgram:
    """How the worker is started: an environment's python with totalseg_worker.py, or the runtime."""

    kind: str  # "python" | "runtime"
    path: Path  # the interpreter, or the runtime folder
    command: tuple[str, ...]  # what precedes the worker's own arguments
    fix: str  # what to tell a user whose worker cannot import TotalSegmentator

    def describe(self) -> str:
        return (f"TotalSegmentator environment {self.path}" if self.kind == "python"
                else f"segmentation runtime {self.path}")


_RUNTIME_FIX = ("Import a weights pack holding the segmentation runtime again (`tumorchain weights import "
                "PACK` or Edit > Import Weights Pack).")


def python_worker(python: Path) -> WorkerProgram:
    if not python.is_file():
        raise SegmentationError(
            f"TotalSegmentator environment not found: {python} does not exist.\n"
            f"Create it with `bash {weights.SETUP_SCRIPT}` (from the repository root), or set "
            f"{ENV_PYTHON} to the python of an environment with totalsegmentator=={weights.TOTALSEG_VERSION}.")
    return WorkerProgram("python", python, (str(python), "-u", "-c", _BOOT, str(WORKER)),
                         f"Recreate the environment with `bash {weights.SETUP_SCRIPT}`.")


def runtime_worker(folder: Path) -> WorkerProgram:
    problem = runtimes.runtime_problem(folder)
    if problem:
        raise SegmentationError(f"The segmentation runtime in {folder} is broken: {problem}.\n{_RUNTIME_FIX}")
    return WorkerProgram("runtime", Path(folder), (str(runtimes.program_path(folder)),), _RUNTIME_FIX)


def find_worker(python: Path | None = None, runtime: Path | None = None) -> WorkerProgram:
    """The worker to run; SegmentationError naming every place looked at when there is none."""
    if python is not None:
        return python_worker(Path(python))
    if runtime is not None:
        return runtime_worker(Path(runtime))
    if os.environ.get(ENV_PYTHON):
        return python_worker(default_env_python())
    if os.environ.get(runtimes.ENV_RUNTIME):
        return runtime_worker(runtimes.default_runtime_dir())
    installed = runtimes.default_runtime_dir()
    if installed.exists():
        return runtime_worker(installed)
    venv_python = default_env_python()
    if venv_python.is_file():
        return python_worker(venv_python)
    raise SegmentationError(
        f"TotalSegmentator is not installed: no segmentation runtime in {installed} and no environment at "
        f"{venv_python}.\nOn a machine without internet, import a weights pack that holds the segmentation "
        f"runtime (`tumorchain weights import PACK` or Edit > Import Weights Pack); in a source checkout, "
        f"create the environment with `bash {weights.SETUP_SCRIPT}`. Or set {runtimes.ENV_RUNTIME} to a "
        f"runtime folder, or {ENV_PYTHON} to the python of an environment with "
        f"totalsegmentator=={weights.TOTALSEG_VERSION}.")


class TotalSegmentatorExpert:
    """TotalSegmentator task ``total`` (optionally ``liver_segments``) mapped to the merged scheme.

    fast:           3 mm model (dataset 297) instead of the five 1.5 mm models (291..295).
    roi_subset:     TotalSegmentator class names to predict only (speeds up CPU runs).
    liver_segments: also run the Couinaud segment model; fills OrganMasks.parts with ids 101..108.
    device:         "auto" (GPU when the env's torch sees one) | "gpu" | "gpu:N" | "cpu" | "mps".
    python:         the TotalSegmentator env's interpreter; runtime: a segmentation runtime folder
                    (default for both: find_worker()).
    home_dir:       TOTALSEG_HOME_DIR for the run: config.json and nnunet/results weights
                    (default: $TOTALSEG_HOME_DIR, else ~/.totalsegmentator).
    env:            extra environment variables for the worker (e.g. CUDA_VISIBLE_DEVICES).
    timeout_s:      give up after this many seconds (None: no limit).
    """

    name = "totalsegmentator"

    def __init__(self, fast: bool = False, roi_subset: list[str] | tuple[str, ...] | None = None,
                 liver_segments: bool = False, device: str = "auto", python: str | Path | None = None,
                 runtime: str | Path | None = None,
                 home_dir: str | Path | None = None, env: dict[str, str] | None = None,
                 timeout_s: float | None = None, resample_threads: int = 1):
        if not _DEVICE.match(device):
            raise ValueError(f"device must be auto, cpu, mps, gpu or gpu:N, got {device!r}")
        known = set(totalseg_names().values())
        unknown = sorted(set(roi_subset or ()) - known)
        if unknown:
            raise ValueError(f"roi_subset names unknown to TotalSegmentator 'total': {unknown}")
        self.fast = bool(fast)
        self.roi_subset = sorted(set(roi_subset)) if roi_subset else None
        self.liver_segments = bool(liver_segments)
        self.device = device
        self.python = Path(python) if python else None
        self.runtime = Path(runtime) if runtime else None
        self.home_dir = Path(home_dir).expanduser() if home_dir else None
        self.env = dict(env or {})
        self.timeout_s = timeout_s
        self.resample_threads = max(1, int(resample_threads))

    def cache_identity(self) -> dict[str, Any]:
        return {"backend": self.name, "version": weights.TOTALSEG_VERSION, "task": "total", "fast": self.fast,
                "roi_subset": self.roi_subset, "liver_segments": self.liver_segments}

    # ----------------------------------------------------------------- checks before any work
    def _worker_env(self, home_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        if getattr(sys, "frozen", False):
            env = outside_bundle_env(env)
        env.update(self.env)
        env["TOTALSEG_HOME_DIR"] = str(home_dir)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _check_weights(self, home_dir: Path, env: dict[str, str]) -> list[int]:
        ids = weights.needed_dataset_ids(self.fast, self.roi_subset, self.liver_segments)
        results = weights.results_dir(home_dir, env)
        problems = weights.missing_weights(results, ids)
        if problems:
            raise SegmentationError(weights.missing_weights_message(home_dir, results, ids, problems))
        return ids

    # ----------------------------------------------------------------- the run
    def segment(self, ct: CTVolume, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> OrganMasks:
        worker = find_worker(self.python, self.runtime)
        home_dir = self.home_dir or weights.default_home_dir()
        env = self._worker_env(home_dir)
        self._check_weights(home_dir, env)
        raise_if_cancelled(cancel)
        with tempfile.TemporaryDirectory(prefix="tumorchain-totalseg-", ignore_cleanup_errors=True) as tmp:
            tmp_dir = Path(tmp)
            notify_progress(progress, 0.01, "writing the CT for TotalSegmentator")
            ct_file = tmp_dir / "ct.nii"  # uncompressed: written and read faster than .nii.gz
            try:
                nib.save(nib.Nifti1Image(ct.hu, ct.affine), str(ct_file))
            except OSError as exc:
                raise SegmentationError(f"cannot write the CT for TotalSegmentator to {ct_file}: {exc}") from exc
            cmd = [*worker.command, "--input", str(ct_file),
                   "--out-dir", str(tmp_dir / "out"), "--home-dir", str(home_dir), "--device", self.device,
                   "--resample-threads", str(self.resample_threads)]
            if self.fast:
                cmd.append("--fast")
            if self.roi_subset:
                cmd += ["--roi-subset", ",".join(self.roi_subset)]
            if self.liver_segments:
                cmd.append("--liver-segments")
            # TotalSegmentator copies the CT into a temporary folder of its own, which a cancel (the
            # worker group is killed) or a crash leaves behind: inside ours, it goes with ours
            worker_tmp = tmp_dir / "worker-tmp"
            worker_tmp.mkdir()
            env = {**env, "TMPDIR": str(worker_tmp), "TEMP": str(worker_tmp), "TMP": str(worker_tmp)}
            result = _run_worker(cmd, env, tmp_dir, progress, cancel, self.timeout_s, worker)
            notify_progress(progress, 0.96, "reading TotalSegmentator output")
            organs, parts = self._read_outputs(result["files"], ct)
        notify_progress(progress, 1.0, "organ masks ready")
        details = {k: result.get(k) for k in ("device", "versions", "seconds", "dataset_ids")}
        details["worker"] = worker.describe()
        details.update(self.cache_identity())
        return OrganMasks(organs=organs, affine=np.array(ct.affine, dtype=np.float64), backend=self.name,
                          parts=parts, details=details)

    def _read_outputs(self, files: dict[str, str], ct: CTVolume) -> tuple[np.ndarray, np.ndarray | None]:
        ts_labels = _read_output(Path(files["total"]), ct, max_id=max(totalseg_names()))
        organs = totalseg_to_merged(ts_labels)
        parts = None
        if self.liver_segments:
            seg = _read_output(Path(files["liver_segments"]), ct, max_id=8)
            parts = np.where(seg > 0, seg + LIVER_SEGMENT_BASE, 0).astype(np.uint8)
        return np.ascontiguousarray(organs, dtype=np.uint8), parts


def _read_output(path: Path, ct: CTVolume, max_id: int) -> np.ndarray:
    """A TotalSegmentator output file on the CT grid; a wrong file is TotalSegmentator's fault."""
    try:
        labels, affine, _ = read_label_nifti(path, max_id=max_id)
        labels, _ = fit_to_ct_grid(labels, affine, ct.shape, ct.affine, path, ct.source_path)
    except InputError as exc:
        raise SegmentationError(f"TotalSegmentator produced an unusable result: {exc}") from exc
    return labels


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the worker and every process it started (it leads its own process group)."""
    if os.name != "posix":
        proc.kill()
    else:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # lets Python-level cleanup run briefly
            try:
                proc.wait(0.4)
            except subprocess.TimeoutExpired:
                pass
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left, nnU-Net helper processes included
        except ProcessLookupError:
            pass  # the whole group is already gone
    try:
        proc.wait(2.0)
    except subprocess.TimeoutExpired:
        pass


def _run_worker(cmd: list[str], env: dict[str, str], tmp_dir: Path, progress: ProgressFn | None,
                cancel: threading.Event | None, timeout_s: float | None, worker: WorkerProgram) -> dict[str, Any]:
    """Run the worker to completion; returns its result event. Raises Cancelled / SegmentationError."""
    log_path = tmp_dir / "worker_stderr.log"
    out_tail: collections.deque[str] = collections.deque(maxlen=40)
    events: "queue.Queue[str | None]" = queue.Queue()
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    popen_kw: dict[str, Any] = {"start_new_session": True} if os.name == "posix" else {
        "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env,
                                    cwd=str(tmp_dir), text=True, encoding="utf-8", errors="replace", bufsize=1,
                                    **popen_kw)
        except OSError as exc:  # not executable, a foreign binary, a missing loader
            raise SegmentationError(f"cannot start the {worker.describe()}: {cmd[0]}: {exc.strerror or exc}.\n"
                                    f"{worker.fix}") from None

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                events.put(line)
            events.put(None)

        threading.Thread(target=pump, name="totalseg-stdout", daemon=True).start()
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    _kill_group(proc)
                    raise Cancelled("TotalSegmentator cancelled")
                if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                    _kill_group(proc)
                    raise SegmentationError(f"TotalSegmentator did not finish within {timeout_s:g} s; stopped it")
                try:
                    line = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                if line is None:
                    break
                if not line.startswith(EVENT_PREFIX):
                    out_tail.append(line.rstrip())
                    continue
                try:
                    event = json.loads(line[len(EVENT_PREFIX):])
                except json.JSONDecodeError:
                    out_tail.append(line.rstrip())
                    continue
                if event.get("event") == "progress":
                    notify_progress(progress, 0.05 + 0.9 * float(event.get("fraction", 0.0)), str(event.get("message", "")))
                elif event.get("event") == "result":
                    result = event
                elif event.get("event") == "error":
                    error = event
            returncode = proc.wait()
        finally:
            if proc.poll() is None:
                _kill_group(proc)
    if error is not None and error.get("kind") in ("missing_weights", "unsafe_checkpoint"):
        raise SegmentationError(str(error.get("message")))
    if error is not None and error.get("kind") == "environment":
        raise SegmentationError(f"{error.get('message')}\n{worker.fix}")
    if returncode != 0 or result is None:
        tail = _tail(log_path, 25) or "\n".join(out_tail)
        why = f": {error.get('message')}" if error else ""
        raise SegmentationError(f"TotalSegmentator failed (exit code {returncode}){why}\n"
                                f"Last lines of its error output:\n{tail}")
    return result


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])
