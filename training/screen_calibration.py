"""Calibrate the classifier screen's per-region thresholds on held-out cases and keep them in the model
folder (inference/iir/screen_thresholds.py says why one threshold fails).

    python -m training.screen_calibration --model resources/demo_model --cases 200 --write
    python -m training.screen_calibration --model models/site_ft --manifest site_val.jsonl --write

Synthetic cases (the default) are generated in memory from seeds far from any the demo build trains on
(--seed-base). A site's own held-out manifest (--manifest; the one its fine-tune did not train on)
gives real cases: its CTs and masks, with the organ labels as ground truth; a sub-region counts as
lesion-free when its organ is labelled normal (a lesion's sub-region is not in a manifest). Every
present organ with sub-regions and every present sub-region gets P(abnormal) the way the pipeline
computes it (preprocess, encode_case, organ_tokens of the region's mask, organ_logits). A region's
threshold is the --quantile of P over its lesion-free instances (a sub-region with fewer than
--min-voxels lesion voxels, an organ the ground truth calls normal), never below 0.5.
benchmarks/bench_classifier_screen.py evaluates the result on other seeds.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from inference.iir.screen_thresholds import DEFAULT, calibrate, write_screen_thresholds

SEED_BASE = 8_000_000  # calibration; the benchmark evaluates on 7,000,000.. (the demo build uses < 10^6)


def region_probabilities(model, ct, masks):
    """prob(label id) -> P(abnormal) of that organ or sub-region in this case, computed by the pipeline's
    own feature object (as a run's screen computes it), or None where the model grid lost its mask."""
    from inference.iir.features import GridMasks, ModelCaseFeatures
    from inference.preprocess import preprocess

    mi = preprocess(ct, masks, shape=tuple(model.config.vision.img_size), scheme=model.config.preprocessing)
    features = ModelCaseFeatures(model, model.encode_case(mi.volume), GridMasks(mi.organs, mi.parts), volume=mi)

    def prob(label_id: int) -> float | None:
        if not features.mask_voxels(label_id):
            return None  # a sliver the resampling to the model grid lost (the pipeline skips it too)
        return features.abnormal_prob(features.organ_tokens(label_id))
    return prob


@torch.inference_mode()
def manifest_case_rows(model, ct, masks, organ_labels: dict[str, int]) -> list[dict]:
    """Rows as case_rows gives them, from a site's case: every present organ with sub-regions that the
    labels name, and the present sub-regions of those labelled normal (an abnormal organ's lesion could
    lie in any of its sub-regions, so they are left out)."""
    from inference.labels import merged_labels

    table = merged_labels()
    prob = region_probabilities(model, ct, masks)
    present_parts = set(np.unique(masks.parts).tolist()) - {0} if masks.parts is not None else set()
    rows = []
    for organ in table.organs():
        subs = [p for p in table.substructures(organ.id) if p.id in present_parts]
        if not subs or organ.name not in organ_labels or (p := prob(organ.id)) is None:
            continue
        label = int(organ_labels[organ.name])
        rows.append({"level": "organ", "name": organ.name, "label": label, "prob": p})
        if label == 0:
            rows += [{"level": "sub-region", "name": s.name, "label": 0, "prob": q}
                     for s in subs if (q := prob(s.id)) is not None]
    return rows


def manifest_cases(model, manifest: Path) -> tuple[list[list[dict]], int]:
    """(rows per case, samples read) for a site manifest: each case once, its organ labels merged over
    its samples (an organ any sample calls abnormal is abnormal)."""
    from inference.ct_io import load_ct
    from training.evaluate import case_masks
    from training.manifest import load_manifest

    samples = load_manifest(manifest, check_files=True)
    by_case: dict[str, list] = {}
    for sample in samples:
        by_case.setdefault(sample.case_id, []).append(sample)
    _cap_threads()
    cases = []
    for group in by_case.values():
        labels: dict[str, int] = {}
        for sample in group:
            for name, value in sample.organ_labels.items():
                labels[name] = max(labels.get(name, 0), int(value))
        ct = load_ct(group[0].ct_file)
        cases.append(manifest_case_rows(model, ct, case_masks(group[0], ct), labels))
    return cases, len(samples)


@torch.inference_mode()
def case_rows(model, seed: int, shape, min_voxels: int = 10) -> tuple[list[dict], bool]:
    """One row per present organ that has sub-regions, and per present sub-region: {level, name, label,
    prob}; and whether the case has no lesion at all."""
    from inference.ct_volume import CTVolume
    from inference.labels import merged_labels
    from inference.segmentation.organ_masks import OrganMasks
    from training.cohort.case import generate_case

    case = generate_case(seed, case_id=f"screen_{seed}", shape=shape)
    table = merged_labels()
    ct = CTVolume(hu=case.ct.astype(np.int16), affine=case.affine, source_path=Path(f"screen_{seed}.nii.gz"))
    masks = OrganMasks(organs=case.organs, affine=case.affine, backend="synthetic", parts=case.parts)
    prob = region_probabilities(model, ct, masks)
    lesion, truth = case.lesions > 0, case.truth
    parts = [table.by_name(n) for n in truth.parts_present if n in table]
    rows = []
    for organ_id in sorted({table.parent_or_self(p.id) for p in parts}):
        organ, p = table.by_id(organ_id), prob(organ_id)
        if p is not None and organ.name in truth.organ_abnormal:
            rows.append({"level": "organ", "name": organ.name, "label": int(truth.organ_abnormal[organ.name]), "prob": p})
    for part in parts:
        p = prob(part.id)
        if p is not None:
            hit = int((lesion & (case.parts == part.id)).sum() >= min_voxels)
            rows.append({"level": "sub-region", "name": part.name, "label": hit, "prob": p})
    return rows, not truth.all_lesions()


def _cap_threads() -> None:
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))


def screen_cases(model, seeds, shape, min_voxels: int = 10) -> list[tuple[list[dict], bool]]:
    _cap_threads()
    return [case_rows(model, seed, shape, min_voxels) for seed in seeds]


FEW = 20  # lesion-free instances below which a region's threshold rests on thin evidence (printed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.screen_calibration", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="the model folder (the file is written there)")
    ap.add_argument("--manifest", type=Path, help="a site's held-out manifest (JSONL) to calibrate on instead of "
                                                   "synthetic cases; its organ labels are the ground truth")
    ap.add_argument("--cases", type=int, default=200, help="synthetic held-out cases to generate (default 200)")
    ap.add_argument("--seed-base", type=int, default=SEED_BASE, help=f"first case seed (default {SEED_BASE})")
    ap.add_argument("--shape", default="128x128x64", help="case grid (default the demo model's 128x128x64)")
    ap.add_argument("--quantile", type=float, default=0.99, help="of each region's lesion-free P (default 0.99)")
    ap.add_argument("--min-voxels", type=int, default=10, help="lesion voxels that make a sub-region abnormal")
    ap.add_argument("--write", action="store_true", help="write screen_thresholds.json (else only print)")
    a = ap.parse_args(argv)
    from inference.errors import TumorChainError
    from inference.pipeline import load_model

    try:
        shape = tuple(int(v) for v in a.shape.split("x"))
        model = load_model(a.model, device="cpu")
        t0 = time.perf_counter()
        if a.manifest is not None:
            rows_per_case, n_samples = manifest_cases(model, a.manifest)
            about = {"cases": len(rows_per_case), "manifest": str(a.manifest), "samples": n_samples}
        else:
            rows_per_case = [rows for rows, _ in screen_cases(model, range(a.seed_base, a.seed_base + a.cases),
                                                                shape, a.min_voxels)]
            about = {"cases": a.cases, "seeds": [a.seed_base, a.seed_base + a.cases - 1], "shape": list(shape),
                     "min_voxels": a.min_voxels}
    except TumorChainError as exc:
        print(f"screen calibration: error: {exc}", file=sys.stderr)
        return 2
    negatives: dict[str, list[float]] = {}
    for rows in rows_per_case:
        for r in rows:
            if not r["label"]:
                negatives.setdefault(r["name"], []).append(r["prob"])
    thresholds = calibrate(negatives, a.quantile)
    print(f"{len(thresholds)} regions from {about['cases']} cases in {time.perf_counter() - t0:.0f} s "
          f"({platform.machine()}, {torch.get_num_threads()} threads); above {DEFAULT}:")
    for name, t in sorted(thresholds.items(), key=lambda kv: -kv[1]):
        if t > DEFAULT:
            print(f"  {name:28s} {t:.4f}  ({len(negatives[name])} lesion-free)")
    few = sorted(name for name, probs in negatives.items() if len(probs) < FEW)
    if few:
        print(f"fewer than {FEW} lesion-free instances (thresholds on thin evidence): "
              + ", ".join(f"{n} ({len(negatives[n])})" for n in few))
    if not thresholds:
        print("no lesion-free region with a mask in these cases: nothing to calibrate", file=sys.stderr)
        return 2
    if a.write:
        about.update({"quantile": a.quantile, "floor": DEFAULT, "command": "python -m training.screen_calibration "
                      + " ".join(argv if argv is not None else sys.argv[1:])})
        print("wrote", write_screen_thresholds(a.model, thresholds, about))
    return 0


if __name__ == "__main__":
    sys.exit(main())
