"""``tumorchain-train``: train, cache, export, evaluate, convert a site's data.

    tumorchain-train train --config run.yaml [--learning-rate 1e-4 --lora --deepspeed zero2 ...]
    tumorchain-train cache --config run.yaml            # preprocess every case once (CPU nodes)
    tumorchain-train export --checkpoint runs/x/checkpoint-500 --out models/ft [--dtype bfloat16]
    tumorchain-train evaluate --model DIR --manifest test.jsonl --out results/ [--judge-url URL]
    tumorchain-train convert-site --cts FOLDER --reports reports.csv --out site.jsonl [--dry-run] [--extractor llm --llm-url URL]
    tumorchain-train import-deeptumorvqa --questions benchmark/test_qa.json --images benchmark/ct --out dtv.jsonl

Multi-process: ``torchrun --nproc_per_node N -m training.cli train ...`` or the scripts in
training/launch/. ``tumorchain evaluate`` is the same command through the workstation's CLI
(add_evaluate_subcommand, registered as a "tumorchain.subcommands" entry point in pyproject.toml).
User mistakes print one line and exit 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from inference.errors import TumorChainError
from inference.vocabulary import DEFAULT_MAX_NEW_TOKENS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_evaluate_subcommand(subparsers) -> argparse.ArgumentParser:
    """The ``evaluate`` subcommand for any argparse CLI (``tumorchain-train`` and ``tumorchain``)."""
    e = subparsers.add_parser("evaluate", help="accuracy per Table 1 column, with and without IIR, on a manifest")
    e.add_argument("--model", type=Path, required=True, help="TumorChain model folder")
    e.add_argument("--manifest", type=Path, required=True, help="JSONL manifest (training/manifest.py)")
    e.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md, results.png")
    e.add_argument("--modes", nargs="+", choices=("iir", "no_iir"), default=["iir", "no_iir"],
                   help="with IIR (up to --max-rounds) and/or without (one round, global tokens only)")
    e.add_argument("--max-rounds", type=int, default=4)
    e.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    e.add_argument("--limit", type=int, help="evaluate only the first N samples")
    e.add_argument("--subtasks", nargs="+", help="only these subtasks (e.g. organ_position tumor_position)")
    e.add_argument("--judge-url", help="OpenAI-compatible endpoint (e.g. http://localhost:8000/v1) for open answers "
                   "and TumorChain-Eval; never contacted unless given")
    e.add_argument("--judge-model", default="judge", help="model name the endpoint serves")
    e.add_argument("--judge-api-key-env", default="TUMORCHAIN_JUDGE_API_KEY",
                   help="environment variable holding the endpoint's API key, if it needs one")
    e.add_argument("--cot-eval", action="store_true", help="also score report reasoning with TumorChain-Eval (needs --judge-url)")
    e.add_argument("--device", help="cpu, cuda, ... (default: cuda when present)")
    e.add_argument("--no-plot", action="store_true", help="skip results.png")
    e.set_defaults(handler=_evaluate)
    return e


def build_parser() -> argparse.ArgumentParser:
    from training.config import add_config_arguments

    p = argparse.ArgumentParser(prog="tumorchain-train", description="TumorChain training and evaluation (headless).")
    # the deepspeed launcher puts --local_rank=N before the subcommand (LOCAL_RANK is in the environment too)
    p.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (single process, torchrun or the DeepSpeed launcher)")
    add_config_arguments(t)
    t.set_defaults(handler=_train)
    c = sub.add_parser("cache", help="preprocess the manifest's cases into the case cache, then stop")
    add_config_arguments(c)
    c.set_defaults(handler=_cache)
    x = sub.add_parser("export", help="checkpoint -> workstation model folder (merges LoRA, consolidates ZeRO)")
    x.add_argument("--checkpoint", type=Path, required=True)
    x.add_argument("--out", type=Path, required=True)
    x.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="weights dtype (default: as trained, fp32)")
    x.set_defaults(handler=_export)
    add_evaluate_subcommand(sub)
    s = sub.add_parser("convert-site", help="a folder of CTs + a CSV of reports -> TumorCoT chains for all subtasks")
    s.add_argument("--cts", type=Path, required=True, help="folder of CTs (NIfTI files or DICOM series folders)")
    s.add_argument("--reports", type=Path, required=True,
                   help="CSV: ct, report [, impression, pathology, stage, masks, parts, lesions, case_id, organ_labels]")
    s.add_argument("--out", type=Path, required=True, help="manifest JSONL to write (paths relative to it)")
    s.add_argument("--masks-dir", type=Path, help="folder of label NIfTIs named like the CTs (else: segment on the fly)")
    s.add_argument("--dry-run", action="store_true", help="show the conversion report, write nothing")
    s.add_argument("--extractor", choices=("rules", "llm"), default="rules",
                   help="findings extractor (llm: needs --llm-url; falls back to the rules per field and per case)")
    s.add_argument("--llm-url", help="OpenAI-compatible endpoint the site runs (e.g. http://localhost:8000/v1)")
    s.add_argument("--llm-model", default="extractor", help="model name the endpoint serves")
    s.add_argument("--llm-api-key-env", default="TUMORCHAIN_LLM_API_KEY",
                   help="environment variable holding the endpoint's API key, if it needs one")
    s.set_defaults(handler=_convert_site)
    d = sub.add_parser("import-deeptumorvqa", help="DeepTumorVQA's question file -> manifest samples scored in its own categories")
    d.add_argument("--questions", type=Path, required=True,
                   help="benchmark/test_qa.json, test_qa.jsonl or train/train_qa.csv of DeepTumorVQA")
    d.add_argument("--images", type=Path, required=True,
                   help="the site's copy of its CTs: <images>/<image_id>/ct.nii.gz (or <image_id>.nii.gz, a DICOM folder)")
    d.add_argument("--out", type=Path, required=True, help="manifest JSONL to write (paths relative to it)")
    d.add_argument("--masks-dir", type=Path, help="label NIfTIs <image_id>.nii.gz (else: segment on the fly)")
    d.add_argument("--format", choices=("mc", "freeform"), default="mc",
                   help="mc: its options and correct_option (the leaderboard's default); freeform: question and answer")
    d.add_argument("--limit", type=int, help="only the first N questions")
    d.add_argument("--dry-run", action="store_true", help="show what would be imported, write nothing")
    d.set_defaults(handler=_import_deeptumorvqa)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("tumorchain-train: cancelled", file=sys.stderr)
        return 130
    except (TumorChainError, ValueError) as exc:
        print(f"tumorchain-train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _train(args) -> int:
    from training.config import config_from_args
    from training.runtime import dist_info, shutdown_distributed
    from training.trainer import run_training

    cfg = config_from_args(args)
    summary = run_training(cfg)
    shutdown_distributed()
    if dist_info()[0] == 0:
        print(f"trained {summary['global_step']} steps, final loss {summary['train_loss']:.4f}, "
              f"{summary['train_samples_per_second']} samples/s; output in {summary['output_dir']}")
    return EXIT_OK


def _cache(args) -> int:
    from training.build_model import load_base_model
    from training.config import config_from_args
    from training.data_setup import build_datasets

    cfg = config_from_args(args)
    from training.runtime import shutdown_distributed

    model = load_base_model(cfg)
    build_datasets(cfg, model)
    shutdown_distributed()
    return EXIT_OK


def _export(args) -> int:
    from training.export import export_checkpoint

    result = export_checkpoint(args.checkpoint, args.out, dtype=args.dtype)
    print(json.dumps(result, indent=1))
    # thresholds calibrated for another model do not carry over; without its own the screen uses 0.5 and says so
    print(f"next: calibrate its classifier screen on held-out cases it never trained on:\n"
          f"  python -m training.screen_calibration --model {args.out} --manifest VAL.jsonl --write", file=sys.stderr)
    return EXIT_OK


def _evaluate(args) -> int:
    from training.evaluate import run_evaluation_cli

    return run_evaluation_cli(args)


def _convert_site(args) -> int:
    from training.site_engine.convert import conversion_report_path, convert_site

    extractor = None
    if args.extractor == "llm":
        from training.site_engine.llm_extractor import LLMExtractor, LLMSettings

        if not args.llm_url:
            raise ValueError("--extractor llm needs --llm-url (an OpenAI-compatible endpoint the site runs)")
        extractor = LLMExtractor(LLMSettings(args.llm_url, args.llm_model, args.llm_api_key_env))
    report = convert_site(args.cts, args.reports, args.out, masks_dir=args.masks_dir, extractor=extractor,
                          dry_run=args.dry_run)
    print(report.summary())
    if args.dry_run:
        print("dry run: nothing written")
    else:
        print(f"wrote {report.totals()['samples']} samples to {args.out}; report: {conversion_report_path(args.out)}")
    return EXIT_OK


def _import_deeptumorvqa(args) -> int:
    from training.public_benchmarks.deeptumorvqa import import_deeptumorvqa

    report = import_deeptumorvqa(args.questions, args.images, args.out, masks_dir=args.masks_dir, fmt=args.format,
                                 limit=args.limit, dry_run=args.dry_run)
    print(report.summary())
    print("dry run: nothing written" if args.dry_run else f"wrote {report.imported} samples to {args.out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
