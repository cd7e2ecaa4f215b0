"""Runs TotalSegmentator INSIDE its own environment (.venv-totalseg); started by totalseg_backend.py.

This script never imports the workstation's packages (that env has vtk<9.4 and no Qt); it shares
only totalseg_weights.py, loaded by file path (standard library only).

Talks to the parent through stdout lines ``TCEVENT {json}``:
    {"event": "progress", "fraction": 0..1, "message": str}
    {"event": "result", "files": {"total": path, "liver_segments": path?}, "device": str, ...}
    {"event": "error", "kind": "missing_weights" | "environment" | "unsafe_checkpoint" | "crash", "message": str}
Everything else it or TotalSegmentator prints is log text. Exit codes: 0 ok, 3 missing weights,
4 broken environment, 5 a checkpoint that is not plain weights data, 1 anything else.

Offline and private by construction: TOTALSEG_HOME_DIR points at the configured folder, its
config.json gets send_usage_stats=false, the stats sender is replaced by a no-op, and the weight
downloader is replaced by a check that fails with our message instead of downloading. Safe by
construction: nnU-Net's checkpoints load as data only (totalseg_checkpoints.py, beside this file).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path

EVENT_PREFIX = "TCEVENT "
EXIT_MISSING_WEIGHTS = 3
EXIT_ENVIRONMENT = 4
EXIT_UNSAFE_CHECKPOINT = 5


# The real stdout, kept at start: TotalSegmentator silences nnU-Net by swapping sys.stdout for a
# dummy (libs.nostdout) exactly while the models run, which is when progress matters most.
_EVENTS_OUT = sys.stdout


def emit(event: str, **payload) -> None:
    print(EVENT_PREFIX + json.dumps({"event": event, **payload}), file=_EVENTS_OUT, flush=True)


def progress(fraction: float, message: str) -> None:
    emit("progress", fraction=round(float(fraction), 4), message=message)


def load_beside(file_name: str):
    """A module from a file beside this one (totalseg_weights.py, totalseg_checkpoints.py), without
    importing the workstation package: runpy starts this file with no package around it."""
    path = Path(__file__).with_name(file_name)
    spec = importlib.util.spec_from_file_location(f"tumorchain_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while building the class
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, type=Path, help="CT NIfTI written by the parent")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--home-dir", required=True, type=Path, help="TOTALSEG_HOME_DIR (config + weights)")
    p.add_argument("--fast", action="store_true")
    p.add_argument("--roi-subset", default="", help="comma-separated TotalSegmentator class names")
    p.add_argument("--liver-segments", action="store_true")
    p.add_argument("--device", default="auto", help="auto | gpu | gpu:N | cpu | mps")
    p.add_argument("--resample-threads", type=int, default=1)
    return p.parse_args(argv)


def check_weights(weights, args: argparse.Namespace, roi_subset: list[str] | None) -> int | None:
    """Exit code when weights are missing (after reporting), else None. Runs before any import of torch."""
    ids = weights.needed_dataset_ids(fast=args.fast, roi_subset=roi_subset, liver_segments=args.liver_segments)
    results = weights.results_dir(args.home_dir)
    problems = weights.missing_weights(results, ids)
    if problems:
        emit("error", kind="missing_weights", missing=problems, results_dir=str(results),
             message=weights.missing_weights_message(args.home_dir, results, ids, problems))
        return EXIT_MISSING_WEIGHTS
    return None


def make_offline() -> None:
    """Switch off usage statistics and any weight download inside TotalSegmentator."""
    from totalsegmentator import config, libs, python_api
    from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS

    config.setup_totalseg()  # creates $TOTALSEG_HOME_DIR/config.json when absent
    config.set_config_key("send_usage_stats", False)
    config.set_config_key("statistics_disclaimer_shown", True)
    python_api.send_usage_stats = lambda *a, **k: None  # also when config.json is read-only

    def refuse_download(task_id):
        info = TASK_ID_WEIGHTS_CONFIGS.get(task_id, {})
        folder = Path(info.get("rel_path") or "") / info.get("foldername", f"Dataset{task_id}")
        if not (config.get_weights_dir() / folder).exists():
            raise FileNotFoundError(f"weights for dataset {task_id} ({folder}) are not in {config.get_weights_dir()} "
                                    "and the workstation does not download them")

    python_api.download_pretrained_weights = refuse_download
    libs.download_pretrained_weights = refuse_download


def instrument_progress(total_calls: int) -> None:
    """Report progress around each nnU-Net model run (wraps, never replaces, the prediction call)."""
    from totalsegmentator import nnunet as ts_nnunet

    inner = ts_nnunet.nnUNetv2_predict
    state = {"done": 0}

    def counted(dir_in, dir_out, task_id, *args, **kwargs):
        n = max(total_calls, state["done"] + 1)
        progress(0.05 + 0.9 * state["done"] / n, f"running model {task_id} ({state['done'] + 1}/{n})")
        result = inner(dir_in, dir_out, task_id, *args, **kwargs)
        state["done"] += 1
        progress(0.05 + 0.9 * state["done"] / n, f"model {task_id} done")
        return result

    ts_nnunet.nnUNetv2_predict = counted


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    progress(0.0, "starting TotalSegmentator (loading torch and nnU-Net)")
    os.environ["TOTALSEG_HOME_DIR"] = str(args.home_dir)
    weights = load_beside("totalseg_weights.py")
    roi_subset = [r.strip() for r in args.roi_subset.split(",") if r.strip()] or None
    code = check_weights(weights, args, roi_subset)
    if code is not None:
        return code

    try:
        import torch
        from totalsegmentator import config
        from totalsegmentator.python_api import totalsegmentator
        config.setup_nnunet()  # nnU-Net reads its folders from env vars at import time
        from importlib.metadata import version
        versions = {"totalsegmentator": version("totalsegmentator"), "nnunetv2": version("nnunetv2"),
                    "torch": torch.__version__}
    except Exception as exc:  # ImportError, or a package broken at import
        emit("error", kind="environment", message=f"cannot import TotalSegmentator in {sys.prefix}: "
                                                  f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        return EXIT_ENVIRONMENT
    if versions["totalsegmentator"] != weights.TOTALSEG_VERSION:
        print(f"warning: TotalSegmentator {versions['totalsegmentator']} installed, "
              f"{weights.TOTALSEG_VERSION} expected", file=sys.stderr)

    make_offline()
    checkpoints = load_beside("totalseg_checkpoints.py")
    if not checkpoints.guard_checkpoint_loading():
        print("warning: checkpoints load with full unpickling (TUMORCHAIN_TRUST_CHECKPOINTS=1)", file=sys.stderr)
    ids = weights.needed_dataset_ids(fast=args.fast, roi_subset=roi_subset, liver_segments=args.liver_segments)
    instrument_progress(len(ids))  # imports nnU-Net: the slow part of starting
    progress(0.03, "TotalSegmentator loaded; preparing the image")
    device = args.device
    if device == "auto":
        device = "gpu" if torch.cuda.is_available() else "cpu"

    args.out_dir.mkdir(parents=True, exist_ok=True)
    files = {"total": str(args.out_dir / "total.nii.gz")}
    try:
        totalsegmentator(args.input, files["total"], ml=True, task="total", fast=args.fast, roi_subset=roi_subset,
                         device=device, quiet=True, nr_thr_resamp=args.resample_threads, nr_thr_saving=1)
        if args.liver_segments:
            files["liver_segments"] = str(args.out_dir / "liver_segments.nii.gz")
            totalsegmentator(args.input, files["liver_segments"], ml=True, task="liver_segments", device=device,
                             quiet=True, nr_thr_resamp=args.resample_threads, nr_thr_saving=1)
    except checkpoints.UnsafeCheckpoint as exc:
        traceback.print_exc()  # the log shows where nnU-Net asked for it
        emit("error", kind="unsafe_checkpoint", message=str(exc))
        return EXIT_UNSAFE_CHECKPOINT
    except FileNotFoundError as exc:
        if "does not download" in str(exc):
            emit("error", kind="missing_weights", missing=[str(exc)],
                 results_dir=str(weights.results_dir(args.home_dir)), message=str(exc))
            return EXIT_MISSING_WEIGHTS
        raise
    progress(1.0, "TotalSegmentator finished")
    emit("result", files=files, device=device, versions=versions, seconds=round(time.time() - t0, 2),
         dataset_ids=ids)
    return 0


def run_program() -> None:
    """Run as a program and exit: by ``python totalseg_worker.py`` or the frozen runtime's runner
    (installers/totalseg_runtime/runner.py)."""
    try:
        code = main()
        # Skip interpreter teardown: with torch and nnU-Net loaded it takes seconds, and every
        # output file is written and closed by now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    except SystemExit:
        raise
    except BaseException as exc:  # report, then let the parent show the stderr tail
        traceback.print_exc()
        emit("error", kind="crash", message=f"{type(exc).__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    run_program()
