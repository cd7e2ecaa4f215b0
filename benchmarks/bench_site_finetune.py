"""Benchmark: does the site data engine lose what a model learns? (issue 18)

    nice -n 10 python benchmarks/bench_site_finetune.py                   # 40 cases, seed 2026, 50 steps
    nice -n 10 python benchmarks/bench_site_finetune.py --cases 80 --shape 96 96 48 --steps 60 --train-seeds 2026 7  # the README figures

1. A fresh synthetic cohort (training.cohort.generate; a seed the demo model never saw) is written with
   its own chains (train / val / test by case).
2. The train cases' report texts (the "Findings: ... Impression: ... Pathology: ..." part of each report
   chain), CTs, organ, sub-region and lesion masks go through ``tumorchain-train convert-site`` as a
   site's CSV would: the "converted" manifest.
3. Two fine-tunes from resources/demo_model with identical settings, schedule (``--steps``) and seed: one
   on the converted manifest, one on the cohort's own train chains.
4. Both are scored with ``tumorchain-train evaluate`` on one held-out split (the cohort's val + test
   cases, its own chains), with IIR; then the demo model itself, as the reference.

Prints both averages and the difference (goal: within 3 points). Figures to read, not a pass/fail
test: with ~80 held-out samples one sample is over a point, so read the difference with that in mind.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.cli import main as train_cli  # noqa: E402
from training.cohort.generate import generate_cohort  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.export import export_checkpoint  # noqa: E402
from training.manifest import load_manifest, write_manifest  # noqa: E402
from training.trainer import run_training  # noqa: E402

DEMO_MODEL = ROOT / "resources" / "demo_model"


def report_rows(cohort: Path, split: str) -> list[dict]:
    """One site CSV row per case of ``split``: the cohort's own report text plus its masks."""
    rows = []
    for line in (cohort / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        if d["subtask"] != "report":
            continue
        text = d["answer"][d["answer"].index("Findings:"):d["answer"].index(" Summary:")]
        case = cohort / "cases" / d["case_id"]
        rows.append({"ct": f"{d['case_id']}/ct.nii.gz", "report": text, "masks": f"{d['case_id']}/organs.nii.gz",
                     "parts": f"{d['case_id']}/parts.nii.gz", "lesions": f"{d['case_id']}/lesions.nii.gz",
                     "case_id": d["case_id"]})
        assert (case / "ct.nii.gz").is_file()
    return rows


def heldout(cohort: Path) -> Path:
    """The cohort's val + test cases with their own chains, one manifest beside the cohort's."""
    samples = load_manifest(cohort / "val.jsonl") + load_manifest(cohort / "test.jsonl")
    return write_manifest(cohort / "heldout.jsonl", samples)


def finetune(name: str, manifest: Path, work: Path, args, seed: int) -> tuple[Path, dict]:
    cfg = TrainConfig(train_manifest=str(manifest), model=str(DEMO_MODEL), output_dir=str(work / f"run_{name}"),
                      cache_dir=str(work / "case_cache"), seed=seed, learning_rate=args.lr, max_steps=args.steps,
                      per_device_batch_size=4, gradient_accumulation_steps=2, warmup_ratio=0.03, bf16=False,
                      dataloader_workers=0, num_threads=args.threads, device="cpu", logging_steps=10,
                      save_steps=10**6, save_total_limit=1, cls_loss_weight=1.0, freeze_encoder=True,
                      frozen_encoder_cache_mb=2048)
    t0 = time.perf_counter()
    with open(work / f"train_{name}.log", "w", encoding="utf-8") as log:
        summary = run_training(cfg, log_fn=lambda line: print(line, file=log, flush=True))
    model = work / f"model_{name}"
    export_checkpoint(work / f"run_{name}" / "final", model)
    print(f"[{name}] fine-tuned {summary['global_step']} steps on {len(load_manifest(manifest))} samples, "
          f"loss {summary['train_loss']:.4f}, {time.perf_counter() - t0:.0f} s", flush=True)
    return model, summary


def evaluate(name: str, model: Path, manifest: Path, work: Path, args) -> dict:
    out = work / f"eval_{name}"
    t0 = time.perf_counter()
    if args.resume and (out / "results.json").is_file():
        print(f"[{name}] reusing the finished evaluation {out}", flush=True)
    else:
        rc = train_cli(["evaluate", "--model", str(model), "--manifest", str(manifest), "--out", str(out),
                        "--modes", "iir", "--device", "cpu", "--no-plot", "--max-new-tokens", str(args.max_new_tokens)])
        if rc:
            raise SystemExit(f"evaluate {name} failed ({rc})")
    res = json.loads((out / "results.json").read_text())
    iir = res["modes"]["iir"]
    cols = {k: round(100 * v["accuracy"], 1) for k, v in iir["columns"].items() if v["n"]}
    # the paper's Avg is the mean of the columns; with few samples per column the share of all
    # samples answered right ("micro") moves less per sample, so both are given
    micro = 100 * sum(v["correct"] for v in iir["columns"].values()) / max(sum(v["n"] for v in iir["columns"].values()), 1)
    print(f"[{name}] held-out avg {100 * iir['avg']:.1f} % (micro {micro:.1f} %) over {res['n_samples']} samples "
          f"({time.perf_counter() - t0:.0f} s): {cols}", flush=True)
    return {"avg": 100 * iir["avg"], "micro": micro, "columns": cols, "n": res["n_samples"],
            "counts": {k: v["n"] for k, v in iir["columns"].items() if v["n"]}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=40)
    p.add_argument("--seed", type=int, default=2026, help="cohort seed (and training seed)")
    p.add_argument("--shape", type=int, nargs=3, default=[128, 128, 64], help="the demo model's cohort grid")
    p.add_argument("--steps", type=int, default=50, help="optimizer steps of each fine-tune (batch 4 x 2)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--train-seeds", type=int, nargs="+", default=None,
                   help="fine-tune each manifest once per training seed (default: --seed once); the spread "
                        "between seeds on the same manifest is the noise floor the difference is read against")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--no-base", action="store_true", help="skip scoring the demo model itself (the reference)")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_site_finetune"))
    p.add_argument("--resume", action="store_true",
                   help="reuse what an earlier run in --work finished (a fine-tuned model, a finished evaluation)")
    args = p.parse_args()
    t_all = time.perf_counter()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    cohort = work / "cohort"
    if not (cohort / "cohort_summary.json").is_file():
        t0 = time.perf_counter()
        generate_cohort(cohort, args.cases, args.seed, tuple(args.shape), None, 1, log=None)
        print(f"cohort: {args.cases} cases, seed {args.seed}, {args.shape}, {time.perf_counter() - t0:.0f} s", flush=True)
    split = json.loads((cohort / "cohort_summary.json").read_text())["splits"]
    print("splits:", {k: f"{len(v['cases'])} cases / {v['samples']} samples" for k, v in split.items()}, flush=True)

    rows = report_rows(cohort, "train")
    csv_path = work / "site_reports.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    converted = work / "site_train.jsonl"
    if train_cli(["convert-site", "--cts", str(cohort / "cases"), "--reports", str(csv_path), "--out", str(converted)]):
        raise SystemExit("convert-site failed")
    test = heldout(cohort)

    results: dict = {}
    record = work / "bench_site_finetune.json"

    def save() -> None:  # after every step: a run cut short still leaves what it measured
        record.write_text(json.dumps(results | {"args": {k: (str(v) if isinstance(v, Path) else v)
                                                          for k, v in vars(args).items()}}, indent=1))

    seeds = args.train_seeds or [args.seed]
    for seed in seeds:
        for kind, manifest in (("converted", converted), ("cohort", cohort / "train.jsonl")):
            name = kind if seed == args.seed else f"{kind}_seed{seed}"
            model = work / f"model_{name}"
            if args.resume and (model / "config.json").is_file():
                done = work / f"run_{name}" / "train_summary.json"
                summary = json.loads(done.read_text()) if done.is_file() else {"train_loss": None}
                print(f"[{name}] reusing the fine-tuned model {model}", flush=True)
            else:
                model, summary = finetune(name, manifest, work, args, seed)
            results[name] = evaluate(name, model, test, work, args) | {
                "train_loss": summary["train_loss"], "train_samples": len(load_manifest(manifest)), "seed": seed}
            save()
    names = {k: [k if s == args.seed else f"{k}_seed{s}" for s in seeds] for k in ("converted", "cohort")}
    for key in ("avg", "micro"):
        for kind in names:
            results[f"{kind}_mean_{key}"] = sum(results[n][key] for n in names[kind]) / len(seeds)
        results[f"difference{'' if key == 'avg' else '_micro'}"] = \
            results[f"converted_mean_{key}"] - results[f"cohort_mean_{key}"]
    n = results[names["cohort"][0]]["n"]
    print(f"\nheld-out ({n} samples, IIR, {len(seeds)} training seed(s)): fine-tuned on converted reports "
          f"{results['converted_mean_avg']:.1f} % (micro {results['converted_mean_micro']:.1f} %), on the cohort's "
          f"own chains {results['cohort_mean_avg']:.1f} % (micro {results['cohort_mean_micro']:.1f} %); difference "
          f"{results['difference']:+.1f} points (micro {results['difference_micro']:+.1f}; goal: within 3)", flush=True)
    if len(seeds) > 1:  # the noise floor: the same manifest, another seed
        for kind in names:
            avgs = [results[m]["avg"] for m in names[kind]]
            results[f"{kind}_seed_spread"] = max(avgs) - min(avgs)
            print(f"  {kind}: per seed {', '.join(f'{a:.1f}' for a in avgs)} (spread {max(avgs) - min(avgs):.1f} points)",
                  flush=True)
    save()
    if not args.no_base:  # last: the reference that says whether fine-tuning moved the model at all
        results["base"] = evaluate("demo model", DEMO_MODEL, test, work, args)
        save()
    print(f"total {(time.perf_counter() - t_all) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
