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

from inference.iir.screen_thresholds import DEFAULT, load_screen_thresholds  # noqa: E402
from training.classifier_eval import roc_auc  # noqa: E402
from training.screen_calibration import screen_cases  # noqa: E402

THRESHOLD = DEFAULT  # the screen's uncalibrated threshold
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


def summary(rows: list[dict]) -> str:
    y = np.array([r["label"] for r in rows])
    s = np.array([r["prob"] for r in rows])
    pos, neg = y == 1, y == 0
    auc = roc_auc(s, y)
    sens = float((s[pos] >= THRESHOLD).mean()) if pos.any() else float("nan")
    fpr = float((s[neg] >= THRESHOLD).mean()) if neg.any() else float("nan")
    return (f"{len(rows):5d} pairs, {int(pos.sum()):4d} abnormal, AUC {'-' if auc is None else f'{auc:.3f}'}, "
            f"at {THRESHOLD}: sensitivity {sens:.2f}, false-positive rate {fpr:.2f}")


def flagged(rows: list[dict], threshold_of) -> tuple[bool, bool]:
    """(some sub-region or organ at/above its threshold, some truly abnormal sub-region among them)"""
    hot = [r for r in rows if r["prob"] >= threshold_of(r["name"])]
    return bool(hot), any(r["label"] and r["level"] == "sub-region" for r in hot)


def case_rates(per_case, threshold_of) -> str:
    normal = [flagged(c, threshold_of)[0] for c, n in per_case if n]
    lesion = [flagged(c, threshold_of)[1] for c, _ in per_case
              if any(r["label"] for r in c if r["level"] == "sub-region")]
    sub = [r for c, _ in per_case for r in c if r["level"] == "sub-region"]
    pos = [r["prob"] >= threshold_of(r["name"]) for r in sub if r["label"]]
    neg = [r["prob"] >= threshold_of(r["name"]) for r in sub if not r["label"]]
    return (f"false alarms on {sum(normal)}/{len(normal)} normal cases; a lesion's sub-region flagged in "
            f"{sum(lesion)}/{len(lesion)} lesion cases; sub-region sensitivity {np.mean(pos):.2f}, "
            f"false-positive rate {np.mean(neg):.3f}")


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
    model = load_model(a.model, device="cpu")
    t0 = time.perf_counter()
    per_case = screen_cases(model, range(a.seed_base, a.seed_base + a.cases), shape, a.min_voxels)
    rows = [r for c, _ in per_case for r in c]
    print(f"classifier screen, {a.model.name}, {a.cases} held-out cases at {a.shape} (seeds {a.seed_base}.."
          f"{a.seed_base + a.cases - 1}), {time.perf_counter() - t0:.0f} s on {platform.machine()} with "
          f"{torch.get_num_threads()} threads")
    for level in ("organ", "sub-region"):
        print(f"  {level:10s} {summary([r for r in rows if r['level'] == level])}")
    hot: dict[str, int] = {}
    for c, n in per_case:
        for r in (c if n else []):
            if r["prob"] >= THRESHOLD:
                hot[r["name"]] = hot.get(r["name"], 0) + 1
    print("  normal cases' regions most often at >= 0.5: "
          + (", ".join(f"{k} {v}" for k, v in sorted(hot.items(), key=lambda kv: -kv[1])[:5]) or "-"))
    print("  one threshold for every region:")
    for t in THRESHOLDS:
        print(f"    {t:.2f}: {case_rates(per_case, lambda name, t=t: t)}")
    calibrated = load_screen_thresholds(a.model)
    if calibrated.calibrated:
        print(f"  the model folder's per-region thresholds ({calibrated.source}):")
        print(f"    {case_rates(per_case, calibrated.of)}")
    else:
        print(f"  {calibrated.source}")


if __name__ == "__main__":
    main()
