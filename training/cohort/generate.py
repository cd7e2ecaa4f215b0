"""Command line: write a seeded synthetic tumor cohort, or the bundled demo case.

    python -m training.cohort.generate --out DIR --cases N --seed S [--shape X Y Z] [--spacing SX SY SZ]
    python -m training.cohort.generate --demo resources/demo_case

A cohort folder gets cases/<case_id>/ (ct, organs, parts, lesions NIfTI + ground_truth.json),
train.jsonl / val.jsonl / test.jsonl (VQA samples split by case) and cohort_summary.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from inference.errors import InputError

from ..manifest import Sample, write_manifest
from .case import DEFAULT_SHAPE, generate_case, write_case
from .ground_truth import GENERATOR_NAME, GENERATOR_VERSION, CaseTruth
from .splits import SPLITS, split_cases
from .vqa import case_samples

DEMO_SEED = 20240607
DEMO_SHAPE = (192, 192, 80)
DEMO_SPACING = (2.0, 2.0, 3.2)
DEMO_COMMAND = "python -m training.cohort.generate --demo resources/demo_case"


def case_seed(cohort_seed: int, index: int) -> int:
    """Seed of case ``index``: independent streams per case, stable across runs and workers."""
    return int(np.random.SeedSequence([int(cohort_seed), int(index)]).generate_state(1)[0])


def _one(job: tuple) -> tuple[CaseTruth, list[Sample], float]:
    out, index, seed, shape, spacing = job
    t0 = time.perf_counter()
    case_id = f"case_{index:04d}"
    case = generate_case(seed, case_id, shape=shape, spacing=spacing)
    write_case(case, Path(out) / "cases" / case_id)
    return case.truth, case_samples(case.truth, f"cases/{case_id}"), time.perf_counter() - t0


def case_index(case_id: str) -> int:
    """The index ``generate_cohort`` made ``case_id`` from ("case_0042" -> 42)."""
    return int(case_id.rsplit("_", 1)[-1])


def _run(jobs: list[tuple], workers: int, log) -> list:
    results = []
    if workers > 1:
        with Pool(workers) as pool:
            for res in pool.imap(_one, jobs):
                results.append(res)
                _log_case(log, res)
    else:
        for job in jobs:
            res = _one(job)
            results.append(res)
            _log_case(log, res)
    return results


def generate_cohort(out: str | Path, cases: int, seed: int, shape=DEFAULT_SHAPE, spacing=None, workers: int = 1,
                    log=print, fine_shape=None, fine_every: int = 0, grids=None) -> dict:
    """Write a cohort; returns its summary (also written as cohort_summary.json). With ``fine_shape`` and
    ``fine_every`` = k, every k-th case is sampled on that finer grid over the same field of view, so a
    model sees more than one sampling (scanners and protocols differ; the bundled demo case is 2 mm).
    With ``grids`` (a list of shapes over the same field of view), case i is sampled on grids[i % len]:
    sampling-grid variety across the whole cohort (demo model v0.5)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    if cases < 1:
        raise ValueError("--cases must be at least 1")
    if fine_every < 0 or (fine_every and fine_shape is None):
        raise ValueError("--fine-every needs --fine-shape and must be at least 1")
    if grids is not None and (fine_every or spacing is not None or not grids):
        raise ValueError("grids: a non-empty list of shapes, without --fine-every or --spacing")
    out.mkdir(parents=True, exist_ok=True)
    fine = (lambda i: bool(fine_every) and i % fine_every == fine_every - 1)
    if grids is not None:
        jobs = [(str(out), i, case_seed(seed, i), tuple(grids[i % len(grids)]), None) for i in range(cases)]
    else:
        jobs = [(str(out), i, case_seed(seed, i), tuple(fine_shape if fine(i) else shape),
                 None if spacing is None or fine(i) else tuple(spacing)) for i in range(cases)]
    t0 = time.perf_counter()
    results = _run(jobs, workers, log)
    seconds = time.perf_counter() - t0
    truths = [r[0] for r in results]
    by_case = {r[0].case_id: r[1] for r in results}
    split = split_cases(list(by_case), seed)
    for name in SPLITS:
        write_manifest(out / f"{name}.jsonl", [s for cid in split[name] for s in by_case[cid]])
    summary = _summary(truths, by_case, split, seed, shape, spacing, seconds)
    summary.update(fine_shape=None if fine_shape is None else list(fine_shape), fine_every=int(fine_every),
                   grids=None if grids is None else [list(g) for g in grids])
    (out / "cohort_summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def regrid_cases(out: str | Path, seed: int, case_ids: list[str], shape, workers: int = 1, log=None) -> Path:
    """The cohort (``seed``)'s cases ``case_ids`` again, all sampled on ``shape`` over the same field of
    view: the same anatomy, lesions and questions (measurements may differ by a voxel), written to
    ``out``/cases with their samples in ``out``/samples.jsonl. Held-out evaluation per grid uses it, so
    every grid is scored on the same cases. Returns the manifest's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), case_index(cid), case_seed(seed, case_index(cid)), tuple(shape), None) for cid in case_ids]
    results = _run(jobs, workers, log)
    manifest = out / "samples.jsonl"
    write_manifest(manifest, [s for r in results for s in r[1]])
    return manifest


def _log_case(log, res) -> None:
    if log is None:
        return
    truth, samples, dt = res
    stage = f" {truth.tnm.label}" if truth.tnm else ""
    what = f"{truth.pathology} in {truth.primary_organ}{stage}" if truth.pathology else "normal"
    log(f"{truth.case_id}: {what}; {len(samples)} samples ({dt:.2f} s)")


def _summary(truths: list[CaseTruth], by_case, split, seed, shape, spacing, seconds) -> dict:
    subtasks = Counter(s.subtask for samples in by_case.values() for s in samples)
    return {
        "generator": GENERATOR_NAME, "generator_version": GENERATOR_VERSION, "seed": int(seed),
        "cases": len(truths), "shape": list(shape), "spacing": None if spacing is None else list(spacing),
        "splits": {name: {"cases": split[name], "samples": sum(len(by_case[c]) for c in split[name])}
                   for name in SPLITS},
        "categories": dict(Counter(t.category for t in truths)),
        "primary_organs": dict(Counter(t.primary_organ for t in truths if t.primary_organ)),
        "pathologies": dict(Counter(t.pathology for t in truths if t.pathology)),
        "T": dict(Counter(t.tnm.T for t in truths if t.tnm)), "N": dict(Counter(t.tnm.N for t in truths if t.tnm)),
        "M": dict(Counter(t.tnm.M for t in truths if t.tnm)),
        "lesions": sum(len(t.lesions) for t in truths), "metastases": sum(len(t.metastases) for t in truths),
        "nodes": sum(len(t.nodes) for t in truths), "subtasks": dict(sorted(subtasks.items())),
        "seconds": round(seconds, 2), "cases_per_s": round(len(truths) / max(seconds, 1e-9), 3),
    }


def write_demo(folder: str | Path) -> CaseTruth:
    """The bundled demo case (pancreatic head adenocarcinoma with nodes and a liver metastasis)
    written flat into ``folder`` with its VQA samples (samples.jsonl)."""
    folder = Path(folder)
    case = generate_case(DEMO_SEED, "demo_case", shape=DEMO_SHAPE, spacing=DEMO_SPACING, scenario="demo")
    write_case(case, folder)
    write_manifest(folder / "samples.jsonl", case_samples(case.truth, "."))
    return case.truth


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.cohort.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="cohort folder to write")
    p.add_argument("--cases", type=int, default=10, help="number of cases (default 10)")
    p.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    p.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), default=list(DEFAULT_SHAPE))
    p.add_argument("--fine-shape", type=int, nargs=3, metavar=("X", "Y", "Z"),
                   help="a finer grid (same field of view) for every --fine-every-th case")
    p.add_argument("--fine-every", type=int, default=0, metavar="K")
    p.add_argument("--grid", type=int, nargs=3, action="append", metavar=("X", "Y", "Z"), dest="grids",
                   help="sample case i on the (i mod n)-th of the grids given (repeat; same field of view)")
    p.add_argument("--spacing", type=float, nargs=3, metavar=("SX", "SY", "SZ"),
                   help="voxel size in mm (default: 384 x 384 x 256 mm field of view / shape)")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--quiet", action="store_true", help="no per-case lines")
    p.add_argument("--demo", metavar="FOLDER", help="write the bundled demo case into FOLDER instead")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.demo:
            truth = write_demo(args.demo)
            print(f"demo case written to {args.demo}: {truth.pathology_display}, {truth.tnm.label}")
            return 0
        if not args.out:
            print("error: --out FOLDER is required (or --demo FOLDER)", file=sys.stderr)
            return 2
        summary = generate_cohort(args.out, args.cases, args.seed, tuple(args.shape),
                                  None if args.spacing is None else tuple(args.spacing), max(1, args.workers),
                                  log=None if args.quiet else print, fine_shape=args.fine_shape,
                                  fine_every=args.fine_every, grids=args.grids)
    except (InputError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    s = summary["splits"]
    print(f"{summary['cases']} cases in {summary['seconds']} s ({summary['cases_per_s']} cases/s); samples: "
          + ", ".join(f"{k} {v['samples']}" for k, v in s.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
