"""Compare a newly built demo model with the shipped one, and say whether it may replace it.

    python -m training.demo_model.compare --candidate build/demo_v05b --shipped resources/demo_model \
        [--work build/demo_model_work] [--grids "demo case,fine"] [--json out.json]

Issue 19's rule: ship the candidate only if it beats the shipped model on the held-out test split's
cohort grid (the average with IIR over the Table 1 columns) and is no worse on the bundled demo case
(its questions answered right with IIR). Figures come from each model's eval_summary.json where the
build wrote them (held-out grids, demo case); what a summary lacks (the demo case and the extra grids
for a model built before v0.5) is evaluated here with the build's own code on the same held-out
cases (build.heldout_grid_manifest) and the same settings (recipe eval: max_rounds, max_new_tokens).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.demo_model.build import REPO, RECIPE, heldout_case_ids, heldout_grid_manifest, load_recipe


def compact(res: dict) -> dict:
    """{mode: {column: accuracy, ..., "avg": Table 1 average}} of an evaluation result."""
    return {m: {k: v["accuracy"] for k, v in t["columns"].items() if v["n"]} | {"avg": t["avg"]}
            for m, t in res["modes"].items()}


def demo_case_figures(answers: list[dict]) -> dict:
    """Questions right per mode, and the pancreas' P(abnormal) and the conclusion of the IIR report."""
    out: dict = {"questions": len([a for a in answers if a["mode"] == "iir"])}
    for mode in ("iir", "no_iir"):
        out[f"{mode}_right"] = sum(bool(a["correct"]) for a in answers if a["mode"] == mode)
    report = [a for a in answers if a["mode"] == "iir" and a["subtask"] == "report"]
    if report:
        out["pancreas_p_abnormal"] = (report[0].get("abnormal_prob") or {}).get("pancreas")
        out["report_answer"] = report[0]["answer"]
    return out


def model_figures(model_dir: Path, work: Path, recipe: dict, grids: list[str], log=print) -> dict:
    """Held-out accuracy per grid and the demo-case figures of one model folder; evaluates what its
    eval_summary.json lacks (the demo case always; of the grids, those named in ``grids``)."""
    from inference.pipeline import Pipeline, load_model
    from training.evaluate import evaluate_samples, run_evaluation
    from training.manifest import load_manifest

    summary_file = model_dir / "eval_summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    per_grid = {g["name"]: g["accuracy"] for g in summary.get("heldout_grids", [])}
    if not per_grid and "heldout" in summary:  # built before v0.5: the cohort grid only
        per_grid["cohort"] = summary["heldout"]["accuracy"]
    e = recipe["eval"]
    model = None
    cohort = work / f"cohort_{summary.get('seed', 0)}"
    for grid in e["grids"]:
        if grid["name"] in per_grid or grid["name"] not in grids:
            continue
        model = model or load_model(model_dir, device="cpu")
        manifest = heldout_grid_manifest(cohort, work, heldout_case_ids(cohort, e), grid["shape"])
        res = run_evaluation(model_dir, manifest, None, max_rounds=e["max_rounds"], max_new_tokens=e["max_new_tokens"],
                             model=model, plot=False, log_fn=None)
        per_grid[grid["name"]] = compact(res)
        log(f"{model_dir}: evaluated on the {grid['name']} grid: {per_grid[grid['name']]}")
    answers = (summary.get("demo_case_eval") or {}).get("answers")
    if not answers:
        model = model or load_model(model_dir, device="cpu")
        demo = REPO / (recipe.get("demo_case") or {}).get("folder", "resources/demo_case")
        res = evaluate_samples(Pipeline(model, model_dir), load_manifest(demo / "samples.jsonl"),
                               max_rounds=e["max_rounds"], max_new_tokens=e["max_new_tokens"])
        answers = [{k: r[k] for k in ("subtask", "mode", "reference", "answer", "correct", "abnormal_prob")}
                   for r in res["samples"]]
        log(f"{model_dir}: evaluated on the demo case")
    return {"grids": per_grid, "demo_case": demo_case_figures(answers), "demo_answers": answers,
            "classifier_auc": (summary.get("classifier") or {}).get("auc"),
            "stage0": {k: (summary.get("visual_pretraining") or {}).get(k) for k in ("kept_epoch", "kept_auc")}}


def ship_decision(candidate: dict, shipped: dict) -> tuple[bool, list[str]]:
    """Issue 19's rule; returns (ship?, the reasons, each a measured comparison)."""
    c, s = candidate["grids"]["cohort"]["iir"]["avg"], shipped["grids"]["cohort"]["iir"]["avg"]
    cd, sd = candidate["demo_case"]["iir_right"], shipped["demo_case"]["iir_right"]
    beats, no_worse = c > s, cd >= sd
    n = candidate["demo_case"]["questions"]
    reasons = [f"cohort-grid average with IIR {100 * c:.1f} % vs {100 * s:.1f} %: "
               + ("beats it" if beats else "does not beat it"),
               f"demo case {cd}/{n} vs {sd}/{n} questions right with IIR: " + ("no worse" if no_worse else "worse")]
    return beats and no_worse, reasons


def comparison_markdown(candidate: dict, shipped: dict, names=("candidate", "shipped")) -> str:
    grids = [g for g in candidate["grids"] if g in shipped["grids"]]
    lines = ["| Model | " + " | ".join(f"{g} grid avg IIR / no IIR" for g in grids)
             + " | Demo case right IIR / no IIR | Pancreas P(abnormal) |",
             "|---" * (len(grids) + 3) + "|"]
    for name, m in zip(names, (candidate, shipped)):
        d = m["demo_case"]
        p = d.get("pancreas_p_abnormal")
        lines.append(f"| {name} | " + " | ".join(
            f"{100 * m['grids'][g]['iir']['avg']:.1f} / {100 * m['grids'][g]['no_iir']['avg']:.1f}" for g in grids)
            + f" | {d['iir_right']} / {d['no_iir_right']} of {d['questions']} | "
            + ("-" if p is None else f"{p:.2f}") + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.demo_model.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidate", type=Path, required=True, help="the new build's --out folder")
    p.add_argument("--shipped", type=Path, default=Path("resources/demo_model"))
    p.add_argument("--work", type=Path, default=Path("build/demo_model_work"), help="the build's work folder")
    p.add_argument("--recipe", type=Path, default=RECIPE)
    p.add_argument("--grids", default="", help="comma-separated eval grid names to evaluate where a summary lacks them")
    p.add_argument("--json", type=Path, help="write both models' figures and the decision here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe)
    grids = [g.strip() for g in args.grids.split(",") if g.strip()]
    cand = model_figures(args.candidate, args.work, recipe, grids)
    ship = model_figures(args.shipped, args.work, recipe, grids)
    ok, reasons = ship_decision(cand, ship)
    print(comparison_markdown(cand, ship, (str(args.candidate), str(args.shipped))))
    print(("SHIP: " if ok else "DO NOT SHIP: ") + "; ".join(reasons))
    if args.json:
        args.json.write_text(json.dumps({"candidate": cand, "shipped": ship, "ship": ok, "reasons": reasons}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
