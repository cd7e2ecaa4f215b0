"""``tumorchain evaluate``: run a model over a manifest the way the workstation runs it, and score it.

Every sample goes through inference.pipeline.Pipeline.analyze_volume (the product's code path:
preprocess, encode once per case, the IIR loop with greedy decoding) in each mode:

    iir      up to ``max_rounds`` rounds; organs named by the question or an answer are examined
    no_iir   one round: global CT tokens and the question only (the paper's "w/o IIR")

The conclusion ("Thus, the answer is X") is scored per eval_metrics; open answers that do not
match literally go to the judge when one is given. Results: results.json (every sample, every
mode), results.md (the Table 1 columns; questions imported from a public benchmark also in that
benchmark's own categories, training/public_benchmarks/), results.png (a bar chart).
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

from inference.vocabulary import DEFAULT_MAX_NEW_TOKENS
from training.eval_metrics import column_table, score_answer, token_f1
from training.manifest import Sample, load_manifest
from training.public_benchmarks.categories import benchmark_tables

log = logging.getLogger("tumorchain.training")
MODES = ("iir", "no_iir")


def case_masks(sample: Sample, ct):
    from inference.segmentation.expert import make_expert

    if sample.masks:
        return make_expert("precomputed", path=sample.masks_file, parts_path=sample.parts_file).segment(ct)
    return make_expert("totalsegmentator").segment(ct)


def evaluate_samples(pipeline, samples: Sequence[Sample], modes: Sequence[str] = MODES, max_rounds: int = 4,
                     max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, judge=None, cot_eval: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> dict:
    """Score ``samples`` with a loaded inference Pipeline; returns the results dict (see module doc)."""
    from inference.ct_io import load_ct
    from inference.iir.decoding import SamplingConfig
    from inference.iir.loop import IIRSettings

    by_case: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_case[s.case_id].append(s)
    rows: list[dict] = []
    cot_scores: dict[str, list] = {m: [] for m in modes}
    done, total = 0, len(samples) * len(modes)
    t_start = time.perf_counter()
    for case_id, group in by_case.items():
        ct = load_ct(group[0].ct_file)
        masks = case_masks(group[0], ct)
        for s in group:
            for mode in modes:
                settings = IIRSettings(max_rounds=max_rounds if mode == "iir" else 1,
                                       sampling=SamplingConfig(max_new_tokens=max_new_tokens))
                t0 = time.perf_counter()
                rec = pipeline.analyze_volume(ct, masks, s.question, task=s.task, case_id=case_id,
                                              settings=settings)
                row = _score(s, mode, rec, judge)
                row["seconds"] = round(time.perf_counter() - t0, 3)
                if cot_eval and judge is not None and s.subtask == "report":
                    from training.cot_eval import score_cot

                    sc = score_cot(judge, s.answer, rec.rounds[-1].text)
                    row["cot"] = {"S_FC": sc.fc, "S_IC": sc.ic, "S_LRC": sc.lrc, "CoT_e": sc.cot_e}
                    cot_scores[mode].append(sc)
                rows.append(row)
                done += 1
                if progress is not None:
                    progress(done, total)
    return summarize(rows, modes, cot_scores, seconds=time.perf_counter() - t_start)


def _score(s: Sample, mode: str, rec, judge) -> dict:
    c = rec.conclusion
    answer = c.answer if c.found else ""
    correct, method = score_answer(answer, s.final_answer, s.options) if answer else (False, "no conclusion")
    reason = ""
    if not correct and judge is not None and s.options is None and answer:
        correct, reason = judge.semantic_match(s.question, s.final_answer, answer)
        method = "judge"
    return {
        "id": s.id, "case_id": s.case_id, "subtask": s.subtask, "mode": mode, "question": s.question,
        "reference": s.final_answer, "answer": answer, "correct": bool(correct), "method": method,
        "judge_reason": reason, "rounds": len(rec.rounds),
        "examined": [o.name for r in rec.rounds for o in r.organs],
        "abnormal_prob": {o.name: None if o.abnormal_prob is None else round(o.abnormal_prob, 4)
                          for r in rec.rounds for o in r.organs},
        "token_f1": round(token_f1(rec.rounds[-1].text, s.answer), 4),
        "text": rec.rounds[-1].text,
    } | ({"benchmark": s.benchmark} if s.benchmark else {})


def summarize(rows: list[dict], modes: Sequence[str], cot_scores: dict | None = None, seconds: float = 0.0) -> dict:
    from training.cot_eval import aggregate

    out: dict = {"n_samples": len({r["id"] for r in rows}), "seconds": round(seconds, 1), "modes": {}}
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        table = column_table(mine)
        reports = [r["token_f1"] for r in mine if r["subtask"] == "report"]
        table["report_token_f1"] = sum(reports) / len(reports) if reports else None
        table["mean_rounds"] = sum(r["rounds"] for r in mine) / len(mine) if mine else None
        benchmarks = benchmark_tables(mine)  # imported public-benchmark questions, in their own categories
        if benchmarks:
            table["benchmarks"] = benchmarks
        if cot_scores and cot_scores.get(mode):
            table["cot_eval"] = aggregate(cot_scores[mode])
        out["modes"][mode] = table
    out["samples"] = rows
    return out


def run_evaluation(model_dir: str | Path, manifest: str | Path, out_dir: str | Path | None = None,
                   modes: Sequence[str] = MODES, max_rounds: int = 4, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                   limit: int | None = None, subtasks: Sequence[str] | None = None, judge=None,
                   cot_eval: bool = False, device: str | None = None, plot: bool = True,
                   log_fn: Callable[[str], None] | None = print, model=None) -> dict:
    """Load the model (or use ``model``), evaluate, and write results.json / .md / .png to out_dir."""
    from inference.pipeline import Pipeline, load_model

    samples = load_manifest(manifest, check_files=True)
    if subtasks:
        samples = [s for s in samples if s.subtask in set(subtasks)]
    if limit:
        samples = samples[:limit]
    if not samples:
        raise ValueError(f"{manifest}: no samples to evaluate (check --subtasks)")
    model = model if model is not None else load_model(model_dir, device=device)
    pipeline = Pipeline(model, model_dir)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if log_fn is not None and (time.perf_counter() - last[0] > 20 or done == total):
            last[0] = time.perf_counter()
            log_fn(f"evaluated {done}/{total}")

    results = evaluate_samples(pipeline, samples, modes, max_rounds, max_new_tokens, judge, cot_eval, progress)
    results.update({"model": str(model_dir), "manifest": str(manifest), "max_rounds": max_rounds,
                    "judge": getattr(judge, "url", None)})
    if out_dir is not None:
        from training.eval_report import write_reports

        write_reports(results, Path(out_dir), plot=plot)
    return results


def run_evaluation_cli(args) -> int:
    from training.eval_report import markdown_table

    judge = None
    if args.judge_url:
        from training.judge import Judge

        judge = Judge.from_args(args.judge_url, args.judge_model, args.judge_api_key_env)
    elif args.cot_eval:
        raise ValueError("--cot-eval needs --judge-url (TumorChain-Eval is scored by an LLM judge)")
    results = run_evaluation(args.model, args.manifest, args.out, modes=args.modes, max_rounds=args.max_rounds,
                             max_new_tokens=args.max_new_tokens, limit=args.limit, subtasks=args.subtasks,
                             judge=judge, cot_eval=args.cot_eval, device=args.device, plot=not args.no_plot)
    print(markdown_table(results))
    print(f"wrote {args.out / 'results.json'}")
    return 0

