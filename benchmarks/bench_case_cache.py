"""Benchmark: the case cache's CPU cost per case, the masked Gamma weights before and after.

    python benchmarks/bench_case_cache.py                     # the bundled demo case, 3 repeats
    python benchmarks/bench_case_cache.py --cases DIR [DIR ...] --repeats 5

Each case folder holds ct.nii.gz, organs.nii.gz and parts.nii.gz (the bundled demo case, a cohort
case). The model geometry is the shipped demo recipe's (training/demo_model/recipe.json). In one run,
on one torch thread, it times per case:

  preprocess      load + resample the CT and the masks onto the model grid (inference.preprocess;
                  unchanged, for scale)
  compute (old)   training.case_cache.compute_case with the masked weights made as before issue 19's
                  change: the dense (Ll + 1, V) matrix per label, then torch.nonzero and indexing
  compute (new)   the same with organ_tokens.masked_weights_sparse (bounding box, sparse rows)
  weights (old/new)  the masked weights alone, summed over the case's labels

and prints CPU seconds (process time: the machines are shared) and wall seconds, the ratio old/new,
and whether the two computations' arrays are identical (they must be, bit for bit). Figures to read,
never a pass/fail test.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference.model import TumorChainConfig  # noqa: E402
from inference.model import organ_tokens  # noqa: E402
from training.case_cache import Geometry, compute_case  # noqa: E402


def old_sparse(mask, selection, stem_stride, embed_patch):
    """What case_cache.compute_case did before: the dense matrix, torch.nonzero, indexing."""
    dense = organ_tokens._masked_weights_dense(mask, selection, stem_stride, embed_patch)
    rows, cols = torch.nonzero(dense, as_tuple=True)
    return rows, cols, dense[rows, cols]


def timed(fn, repeats: int):
    """(result of the last call, cpu s per call, wall s per call)."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return out, (time.process_time() - c0) / repeats, (time.perf_counter() - w0) / repeats


def compute(model_input, geometry, weights_fn):
    import training.case_cache as cc

    saved = organ_tokens.masked_weights_sparse
    organ_tokens.masked_weights_sparse = weights_fn  # compute_case imports it from the module at call time
    try:
        return cc.compute_case(model_input, geometry)
    finally:
        organ_tokens.masked_weights_sparse = saved


def label_selections(model_input, geometry) -> list:
    """(mask, selection) of every label of the case, as compute_case makes them (not timed)."""
    out = []
    for labels in (model_input.organs, model_input.parts):
        if labels is None:
            continue
        labels = torch.as_tensor(np.asarray(labels))
        for lid in torch.unique(labels).tolist():
            if lid:
                mask = labels == lid
                out.append((mask, organ_tokens.select_patches(organ_tokens.patch_coverage(mask, geometry.patch_size),
                                                              geometry.organ_grid, geometry.n_organ_tokens)))
    return out


def weights_only(pairs, geometry, weights_fn) -> int:
    """The masked weights of every label of the case; returns the count."""
    for mask, sel in pairs:
        weights_fn(mask, sel, geometry.stem_stride, geometry.embed_patch)
    return len(pairs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="*", type=Path, default=[ROOT / "resources" / "demo_case"])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from inference.ct_io import load_ct
    from inference.preprocess import preprocess
    from inference.segmentation.expert import make_expert

    recipe = json.loads((ROOT / "training" / "demo_model" / "recipe.json").read_text())
    geometry = Geometry.from_model_config(TumorChainConfig.from_dict(dict(recipe["model"])))
    print(f"geometry: model grid {geometry.img_size}, stem stride {geometry.stem_stride}, "
          f"patch on the stem grid {geometry.embed_patch}, Ll {geometry.n_organ_tokens}; torch "
          f"{torch.__version__}, 1 thread, {args.repeats} repeats")
    totals = {k: 0.0 for k in ("pre", "old", "new", "w_old", "w_new")}
    all_same = True
    for case in args.cases:
        def pre():
            ct = load_ct(case / "ct.nii.gz")
            masks = make_expert("precomputed", path=case / "organs.nii.gz", parts_path=case / "parts.nii.gz")
            return preprocess(ct, masks.segment(ct), shape=geometry.img_size, scheme=geometry.scheme)

        mi, pre_cpu, pre_wall = timed(pre, 1)
        a_old, old_cpu, old_wall = timed(lambda: compute(mi, geometry, old_sparse), args.repeats)
        a_new, new_cpu, new_wall = timed(lambda: compute(mi, geometry, organ_tokens.masked_weights_sparse),
                                         args.repeats)
        pairs = label_selections(mi, geometry)
        n, w_old, _ = timed(lambda: weights_only(pairs, geometry, old_sparse), args.repeats)
        _, w_new, _ = timed(lambda: weights_only(pairs, geometry, organ_tokens.masked_weights_sparse), args.repeats)
        same = a_old.keys() == a_new.keys() and all(
            a_old[k].dtype == a_new[k].dtype and np.array_equal(a_old[k], a_new[k]) for k in a_old)
        all_same &= same
        print(f"{case.name}: {n} labels; preprocess {pre_cpu:.2f} s CPU ({pre_wall:.2f} s wall); compute_case "
              f"old {old_cpu:.2f} s CPU ({old_wall:.2f} wall), new {new_cpu:.2f} s CPU ({new_wall:.2f} wall), "
              f"x{old_cpu / new_cpu:.1f}; masked weights alone old {w_old:.3f} s, new {w_new:.3f} s CPU "
              f"(x{w_old / w_new:.0f}); arrays identical: {same}")
        for k, v in zip(totals, (pre_cpu, old_cpu, new_cpu, w_old, w_new)):
            totals[k] += v / len(args.cases)
    t = totals
    print(f"per case (mean of {len(args.cases)}): cache entry old {t['pre'] + t['old']:.2f} s CPU -> new "
          f"{t['pre'] + t['new']:.2f} s CPU (x{(t['pre'] + t['old']) / (t['pre'] + t['new']):.2f}; preprocess "
          f"{t['pre']:.2f} s of it); compute_case x{t['old'] / t['new']:.1f}; masked weights "
          f"x{t['w_old'] / t['w_new']:.0f}; all arrays identical: {all_same}")
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
