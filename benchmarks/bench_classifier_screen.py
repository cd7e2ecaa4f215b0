"""Benchmark: how far the classifier screen (inference/iir/classifier_screen.py) can be trusted.

After the rounds, a run gives every present sub-region of the examined organs the organ classifier's
P(abnormal), and the window shows "Discordant:" when the conclusion reads as normal while a region is
at or above 0.5. This measures that classifier on held-out synthetic cases with ground truth, at the
organ and the sub-region level, the way the pipeline computes it (preprocess, encode_case,
organ_tokens of the region's mask, organ_logits):

    python benchmarks/bench_classifier_screen.py                       # 40 cases, the shipped demo model
    python benchmarks/bench_classifier_screen.py --cases 80 --model DIR

A sub-region is abnormal when at least --min-voxels lesion voxels (primary or metastasis) lie in its
mask; an organ when the ground truth says so. Printed per level: pairs, abnormal pairs, ROC AUC,
sensitivity and false-positive rate at the 0.5 threshold; and per normal case (no lesion at all), how
often some screened region reaches 0.5: the rate at which the Discordant warning would be a false
alarm on a normal study that the chain reads as normal. Every organ with sub-regions is screened (a
run screens only the organs its rounds examined), so the false-alarm rate is an upper bound. Cases
are generated in memory from seeds far from any the demo build trains on (--seed-base); figures to
read, never a pass/fail test.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference.ct_volume import CTVolume  # noqa: E402
from inference.labels import merged_labels  # noqa: E402
from inference.preprocess import preprocess  # noqa: E402
from inference.segmentation.organ_masks import OrganMasks  # noqa: E402
from training.classifier_eval import roc_auc  # noqa: E402
from training.cohort.case import generate_case  # noqa: E402

THRESHOLD = 0.5
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


@torch.inference_mode()
def case_rows(model, seed: int, shape, min_voxels: int) -> tuple[list[dict], bool]:
    """One row per present organ that has sub-regions, and per present sub-region: level, name, label, prob."""
    case = generate_case(seed, case_id=f"screen_{seed}", shape=shape)
    table = merged_labels()
    ct = CTVolume(hu=case.ct.astype(np.int16), affine=case.affine, source_path=Path(f"screen_{seed}.nii.gz"))
    masks = OrganMasks(organs=case.organs, affine=case.affine, backend="synthetic", parts=case.parts)
    mi = preprocess(ct, masks, shape=tuple(model.config.vision.img_size), scheme=model.config.preprocessing)
    enc = model.encode_case(mi.volume)
    lesion = case.lesions > 0
    truth = case.truth
    normal = not truth.all_lesions()
    rows = []

    def prob(label_id: int) -> float | None:
        mask = mi.mask(label_id)
        if not bool(mask.any()):
            return None  # a sliver the resampling to the model grid lost (the pipeline skips it too)
        logits = model.organ_logits(model.organ_tokens(enc, mask, volume=mi, label=label_id))
        return float(torch.softmax(logits.float(), dim=-1)[0, 1])

    present_parts = [table.by_name(n) for n in truth.parts_present if n in table]
    parents = sorted({table.parent_or_self(p.id) for p in present_parts})
    for organ_id in parents:
        organ = table.by_id(organ_id)
        p = prob(organ_id)
        if p is not None and organ.name in truth.organ_abnormal:
            rows.append({"level": "organ", "name": organ.name, "label": int(truth.organ_abnormal[organ.name]), "prob": p})
    for part in present_parts:
        p = prob(part.id)
        if p is not None:
            hit = int((lesion & (case.parts == part.id)).sum() >= min_voxels)
            rows.append({"level": "sub-region", "name": part.name, "label": hit, "prob": p})
    return rows, normal


def summary(rows: list[dict]) -> str:
    y = np.array([r["label"] for r in rows])
    s = np.array([r["prob"] for r in rows])
    pos, neg = y == 1, y == 0
    auc = roc_auc(s, y)
    sens = float((s[pos] >= THRESHOLD).mean()) if pos.any() else float("nan")
    fpr = float((s[neg] >= THRESHOLD).mean()) if neg.any() else float("nan")
    return (f"{len(rows):5d} pairs, {int(pos.sum()):4d} abnormal, AUC {'-' if auc is None else f'{auc:.3f}'}, "
            f"at {THRESHOLD}: sensitivity {sens:.2f}, false-positive rate {fpr:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "resources" / "demo_model")
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--seed-base", type=int, default=7_000_000)
    ap.add_argument("--shape", default="128x128x64", help="the cohort grid the demo model was trained on")
    ap.add_argument("--min-voxels", type=int, default=10)
    a = ap.parse_args()
    from inference.pipeline import load_model

    shape = tuple(int(v) for v in a.shape.split("x"))
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    model = load_model(a.model, device="cpu")
    t0 = time.perf_counter()
    rows, normal_alarms, normal_cases, flagged_names, per_case = [], 0, 0, {}, []
    for i in range(a.cases):
        case, normal = case_rows(model, a.seed_base + i, shape, a.min_voxels)
        rows += case
        per_case.append((case, normal))
        if normal:
            normal_cases += 1
            hot = [r["name"] for r in case if r["prob"] >= THRESHOLD]
            normal_alarms += bool(hot)
            for n in hot:
                flagged_names[n] = flagged_names.get(n, 0) + 1
    took = time.perf_counter() - t0
    print(f"classifier screen, {a.model.name}, {a.cases} held-out cases at {a.shape} (seeds {a.seed_base}.."
          f"{a.seed_base + a.cases - 1}), {took:.0f} s on {platform.machine()} with {torch.get_num_threads()} threads")
    for level in ("organ", "sub-region"):
        print(f"  {level:10s} {summary([r for r in rows if r['level'] == level])}")
    if normal_cases:
        top = ", ".join(f"{n} {c}" for n, c in sorted(flagged_names.items(), key=lambda kv: -kv[1])[:5])
        print(f"  normal cases with some region at >= {THRESHOLD}: {normal_alarms} of {normal_cases} "
              f"({normal_alarms / normal_cases:.0%}); most often: {top or '-'}")
    print("  threshold sweep (sub-regions): threshold, false alarms on normal cases, cases with a lesion whose "
          "sub-region reaches it, sub-region sensitivity / false-positive rate")
    for t in THRESHOLDS:
        alarms = sum(any(r["prob"] >= t for r in c) for c, n in per_case if n)
        lesion_cases = [c for c, n in per_case if any(r["label"] for r in c if r["level"] == "sub-region")]
        found = sum(any(r["prob"] >= t and r["label"] for r in c if r["level"] == "sub-region") for c in lesion_cases)
        sub = [r for r in rows if r["level"] == "sub-region"]
        pos = [r["prob"] >= t for r in sub if r["label"]]
        neg = [r["prob"] >= t for r in sub if not r["label"]]
        print(f"    {t:.2f}  {alarms}/{normal_cases} normal  {found}/{len(lesion_cases)} with a lesion  "
              f"{np.mean(pos):.2f} / {np.mean(neg):.3f}")


if __name__ == "__main__":
    main()
