"""Benchmark: synthetic cohort generation speed (cases/s) at a few volume sizes.

    python benchmarks/bench_cohort.py                       # 64^2x32, 128^2x64, 192^2x80; 6 cases each
    python benchmarks/bench_cohort.py --sizes 128x128x64 --cases 20

For each size it times, per case (seeds 0..cases-1, one process, one core):
  generate        training.cohort.case.generate_case (anatomy, lesions, CT render, ground truth)
  generate+write  the same plus write_case (4 NIfTI .nii.gz + ground_truth.json) and the VQA text
  baseline        what any CT of that size costs at least: drawing its Gaussian noise and writing
                  the int16 volume as .nii.gz (nibabel)

and prints wall and CPU seconds per case, cases/s, and the ratio to the baseline. The goal
(issue "Foundation", part 5) is >= 2 cases/s at 128x128x64 for generate+write on one core. CPU
time is reported beside wall time because the machines are shared: CPU s/case is what the
generator itself costs. Figures to read, never a pass/fail test.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.cohort.case import generate_case, write_case  # noqa: E402
from training.cohort.vqa import case_samples  # noqa: E402


def _timed(fn, n: int) -> tuple[float, float]:
    """(wall s, cpu s) per call over n calls of fn(i)."""
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - w0) / n, (time.process_time() - c0) / n


def bench(shape: tuple[int, int, int], cases: int, tmp: Path) -> dict:
    generate_case(999, "warm", shape)  # imports, caches, first-touch allocations

    def gen(i):
        generate_case(i, f"c{i}", shape)

    def gen_write(i):
        case = generate_case(i, f"c{i}", shape)
        write_case(case, tmp / f"c{i}")
        case_samples(case.truth, f"cases/c{i}")

    def baseline(i):
        rng = np.random.default_rng(i)
        vol = (rng.standard_normal(shape, dtype=np.float32) * 15.0).astype(np.int16)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp / f"b{i}.nii.gz")

    return {"generate": _timed(gen, cases), "generate+write": _timed(gen_write, cases),
            "baseline": _timed(baseline, cases)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["64x64x32", "128x128x64", "192x192x80"])
    p.add_argument("--cases", type=int, default=6)
    args = p.parse_args(argv)
    print(f"{'size':>12} {'step':>15} {'wall s/case':>12} {'cpu s/case':>11} {'cases/s (wall)':>15} "
          f"{'cases/s (cpu)':>14} {'x baseline (cpu)':>17}")
    with tempfile.TemporaryDirectory() as d:
        for size in args.sizes:
            shape = tuple(int(v) for v in size.lower().split("x"))
            res = bench(shape, args.cases, Path(d))
            base_cpu = res["baseline"][1]
            for step, (wall, cpu) in res.items():
                print(f"{size:>12} {step:>15} {wall:12.3f} {cpu:11.3f} {1 / wall:15.2f} {1 / cpu:14.2f} "
                      f"{cpu / base_cpu:17.1f}")
    print("goal: generate+write >= 2 cases/s at 128x128x64 on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
