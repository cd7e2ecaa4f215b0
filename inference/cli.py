"""``tumorchain``: analyze one CT, or a batch of them, from the command line.

    tumorchain analyze CT [--masks FILE] --model DIR (--question TEXT | --task TASK) --out run.json
    tumorchain batch (FOLDER | CASES.csv) --model DIR (--question TEXT | --task TASK) --out-dir DIR
    tumorchain export RUN.json ...        (inference/report/cli_export.py)
    tumorchain pacs echo|find|get|send ...  (inference/pacs/cli.py)
    tumorchain weights export|import|list (inference/weights_pack/cli.py: offline weights packs)
    tumorchain evaluate --model DIR --manifest test.jsonl --out results/   (added by training/, see
                                          the "tumorchain.subcommands" entry points in pyproject.toml)

User mistakes (missing files, bad options, an unusable model folder) print one line and exit 2;
a batch goes on past a failing case and exits 1 if any failed; Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TextIO

from inference.errors import Cancelled, InputError, ModelError, TumorChainError
from inference.iir.rounds import abnormal_text
from inference.vocabulary import DEFAULT_MAX_NEW_TOKENS, TASKS as TASK_CHOICES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tumorchain", description="TumorChain: abdominal CT tumor analysis "
                                "with iterative interleaved reasoning.")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="analyze one CT (NIfTI file or DICOM folder)")
    a.add_argument("ct", type=Path, help="CT: a .nii/.nii.gz file, a DICOM folder, or a case folder "
                   "(ct.nii.gz + organs.nii.gz [+ parts.nii.gz], opened with its own masks)")
    a.add_argument("--masks", type=Path, help="organ label NIfTI to use instead of running segmentation")
    a.add_argument("--parts", type=Path, help="substructure label NIfTI (ids >= 100) to go with --masks")
    a.add_argument("--mask-scheme", choices=("auto", "totalseg", "merged"),
                   help="label ids of --masks: TotalSegmentator 'total' (1..117) or the merged scheme "
                   "(default: from the file's label names, else its ids; a case folder's own: merged)")
    a.add_argument("--series", metavar="UID", help="SeriesInstanceUID to analyze in a DICOM folder that holds "
                   "several (default: the largest CT series; the choice is printed and kept in run.json)")
    a.add_argument("--out", type=Path, required=True, help="where to write run.json")
    a.add_argument("--case-id", help="case id in run.json (default: from the file name)")
    a.add_argument("--stream", action="store_true", help="print the answer token by token")
    b = sub.add_parser("batch", help="analyze every case of a folder or a CSV, with a progress bar")
    b.add_argument("cases", type=Path, help="a folder (each NIfTI file or subfolder is a case) or a CSV "
                   "with a 'ct' column and optional 'masks', 'parts', 'case_id', 'question', 'task', 'organ'")
    b.add_argument("--out-dir", type=Path, required=True, help="one <case_id>.json per case + summary.csv")
    for sp in (a, b):
        sp.add_argument("--model", type=Path, required=True, help="TumorChain model folder")
        q = sp.add_mutually_exclusive_group(required=(sp is a))
        q.add_argument("--question", help="the question to ask")
        q.add_argument("--task", choices=TASK_CHOICES, help="a standard task prompt")
        sp.add_argument("--organ", help="narrow the --task prompt to an organ (e.g. 'pancreas')")
        sp.add_argument("--segmentation",
                        help="segmentation backend when no masks are given (default: totalsegmentator); "
                        "named, it also replaces a case folder's own masks")
        sp.add_argument("--max-rounds", type=_positive_int, default=4, help="IIR round limit (default 4)")
        sp.add_argument("--max-new-tokens", type=_positive_int, default=DEFAULT_MAX_NEW_TOKENS,
                        help=f"per round (default {DEFAULT_MAX_NEW_TOKENS})")
        sp.add_argument("--temperature", type=_non_negative_float, default=0.0, help="0 = greedy (default)")
        sp.add_argument("--top-p", type=_unit_float, default=1.0)
        sp.add_argument("--top-k", type=_non_negative_int, default=0)
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--exclude-negated", action="store_true",
                        help="do not examine organs only mentioned as negative ('no liver lesion')")
        sp.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
        sp.add_argument("--allow-non-ct", action="store_true",
                        help="analyze a volume that does not look like CT (modality or HU values); the run "
                        "records the override")
        sp.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="default: bf16 on GPU, fp32 on CPU")
    from inference.report.cli_export import add_export_subcommand  # light: imports nothing heavy

    add_export_subcommand(sub)
    from inference.pacs.cli import add_pacs_subcommand  # light: pynetdicom loads only when a command runs

    add_pacs_subcommand(sub)
    from inference.weights_pack.cli import add_weights_subcommand  # light: imports nothing heavy

    add_weights_subcommand(sub)
    _add_plugin_subcommands(sub)
    return p


def _add_plugin_subcommands(sub) -> None:
    """Subcommands registered by other packages of this distribution (training's ``evaluate``) through
    the "tumorchain.subcommands" entry points: each is a function(subparsers) that sets a handler."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="tumorchain.subcommands"):
        try:
            add = ep.load()
        except ImportError:  # the package behind it is not installed here
            continue
        add(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "organ", None) is not None and getattr(args, "question", None) is not None:
        parser.error("--organ narrows a --task prompt; with --question, name the organ in the question")
    try:
        if args.command == "analyze":
            return _analyze(args, sys.stdout)
        if args.command == "export":
            from inference.report.cli_export import run_export

            return run_export(args, sys.stdout)
        if args.command == "batch":
            return _batch(args, sys.stdout)
        if args.command == "weights":
            from inference.weights_pack.cli import run_weights

            return run_weights(args, sys.stdout)
        return _plugin_command(args)
    except (Cancelled, KeyboardInterrupt):
        print("tumorchain: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except TumorChainError as exc:
        print(f"tumorchain: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as exc:  # e.g. evaluate without the training extra's packages
        print(f"tumorchain: error: '{args.command}' needs the Python package {exc.name!r}, which is not "
              "installed here (pip install .[training])", file=sys.stderr)
        return EXIT_USAGE


def _plugin_command(args) -> int:
    try:
        return int(args.handler(args) or EXIT_OK)
    except ValueError as exc:  # a plugin's option checks (e.g. evaluate --cot-eval without --judge-url)
        print(f"tumorchain: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


# -- analyze ---------------------------------------------------------------------------------------

def _analyze(args, out: TextIO) -> int:
    from inference.case_folder import is_case_folder
    from inference.pipeline import AnalysisRequest, Callbacks

    _need_path(args.ct, "CT")
    for path, what in ((args.masks, "masks file"), (args.parts, "parts file")):
        if path is not None:
            _need_path(path, what, file=True)
    if args.parts is not None and args.masks is None and not is_case_folder(args.ct):
        raise InputError(args.parts, "--parts goes with --masks (or a case folder)")
    _check_out_file(args.out)
    request = AnalysisRequest.from_path(
        args.ct, args.masks, args.parts, args.mask_scheme, question=args.question, task=args.task,
        organ=args.organ, segmentation=args.segmentation or "totalsegmentator", case_id=args.case_id,
        allow_non_ct=args.allow_non_ct, own_masks=args.segmentation is None, series_uid=args.series)
    request.question_text()  # an empty question fails before the model loads
    pipeline = _pipeline(args)
    printer = RoundPrinter(out, stream=args.stream)
    record = pipeline.analyze(request, Callbacks(progress=printer.progress, on_round_start=printer.start,
                                                 on_text=printer.text, on_round=printer.done),
                              settings=_iir_settings(args))
    record.save(args.out)
    c = record.conclusion
    answer = c.answer if c.found else "(the last answer has no 'Thus, the answer is' sentence)"
    for w in record.warnings:  # the training domain, a question outside the trained forms, unseen organs
        print(f"Warning: {w}", file=out)
    from inference.iir.unseen import unseen_in

    unseen = unseen_in(record.rounds[-1], record.rounds)
    note = f" (not seen: no {', '.join(unseen)} mask in this case, so not a finding)" if unseen else ""
    print(f"Conclusion: {answer}{note}", file=out)
    print(f"{len(record.rounds)} round(s), stopped: {record.stop_reason.replace('_', ' ')}; "
          f"total {record.timings.get('total_ms', 0.0) / 1000:.1f} s. Wrote {args.out}", file=out)
    return EXIT_OK


class RoundPrinter:
    """Prints each round as it completes (or token by token with ``stream``); before the rounds,
    a progress bar on stderr for loading, segmentation and encoding."""

    def __init__(self, out: TextIO, stream: bool = False):
        self.out, self.stream = out, stream
        self._bar = None

    def progress(self, fraction: float, message: str) -> None:
        if fraction >= 0.5 or not sys.stderr.isatty():  # the reasoning has its own output; logs get no bar
            self._close_bar()
            return
        if self._bar is None:
            from tqdm import tqdm
            self._bar = tqdm(total=100, file=sys.stderr, bar_format="{desc} {bar} {percentage:3.0f}%",
                             dynamic_ncols=True, leave=False)
        self._bar.set_description_str(message[:60])
        self._bar.update(max(0, int(fraction * 100) - self._bar.n))

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def start(self, index: int, prompt: str) -> None:
        self._close_bar()
        if self.stream:
            print(f"\n== Round {index} ==", file=self.out, flush=True)

    def text(self, index: int, delta: str) -> None:
        if self.stream:
            self.out.write(delta)
            self.out.flush()

    def done(self, rnd) -> None:
        if not self.stream:
            print(f"\n== Round {rnd.index} ==", file=self.out)
            print(rnd.text, file=self.out)
        else:
            print(file=self.out)
        t = rnd.timings
        examined = ", ".join(f"{o.display} ({abnormal_text(o.abnormal_prob, 'P abnormal {:.2f}')})" for o in rnd.organs) or "global CT only"
        print(f"   examined: {examined}", file=self.out)
        for s in rnd.skipped_organs:
            print(f"   skipped {s.name}: {s.reason}", file=self.out)
        print(f"   {t.prompt_tokens} prompt + {t.generated_tokens} new tokens, {t.tokens_per_s:.1f} tok/s, "
              f"{t.total_ms / 1000:.2f} s", file=self.out, flush=True)


# -- batch -----------------------------------------------------------------------------------------

@dataclass
class BatchCase:
    ct: Path
    case_id: str
    masks: Path | None = None
    parts: Path | None = None
    question: str | None = None
    task: str | None = None
    organ: str | None = None


def read_cases(source: Path) -> list[BatchCase]:
    """Cases from a folder (NIfTI files and subfolders) or a CSV (paths relative to the CSV)."""
    from inference.pipeline import case_id_for

    if not source.exists():
        raise InputError(source, "does not exist")
    if source.is_dir():
        entries = sorted(p for p in source.iterdir() if not p.name.startswith(".")
                         and (p.is_dir() or p.name.lower().endswith((".nii", ".nii.gz"))))
        # a case folder opens with its own masks, as in the window; any other folder is a DICOM series
        cases = [BatchCase(ct=p, case_id=p.name if p.is_dir() else case_id_for(p)) for p in entries]
        if not cases:
            raise InputError(source, "holds no .nii/.nii.gz files or case folders")
        return _unique_ids(cases)
    from inference.csv_table import read_csv_table

    rows, _ = read_csv_table(source, ("ct",))  # as a spreadsheet exports it: ';' or tab, cp1252, any case
    cases = []
    for n, row in rows:
        ct = (row.get("ct") or "").strip()
        if not ct:
            raise InputError(source, f"line {n}: empty 'ct'")
        task = (row.get("task") or "").strip() or None
        if task is not None and task not in TASK_CHOICES:
            raise InputError(source, f"line {n}: task {task!r} is not one of {', '.join(TASK_CHOICES)}")
        ct_path = _relative_to(source.parent, ct)
        masks = (row.get("masks") or "").strip()
        parts = (row.get("parts") or "").strip()
        cases.append(BatchCase(
            ct=ct_path, case_id=(row.get("case_id") or "").strip() or case_id_for(ct_path),
            masks=_relative_to(source.parent, masks) if masks else None,
            parts=_relative_to(source.parent, parts) if parts else None,
            question=(row.get("question") or "").strip() or None, task=task,
            organ=(row.get("organ") or "").strip() or None,
        ))
    return _unique_ids(cases)


def _batch(args, out: TextIO) -> int:
    from tqdm import tqdm

    from inference.pipeline import AnalysisRequest

    cases = read_cases(args.cases)
    for c in cases:
        if c.question is None and c.task is None and args.question is None and args.task is None:
            raise InputError(args.cases, f"case {c.case_id} has no question or task; pass --question or --task")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    pipeline = _pipeline(args)
    settings = _iir_settings(args)
    summary = []
    failed = 0
    bar = tqdm(cases, desc="cases", unit="case", file=sys.stderr, dynamic_ncols=True)
    for case in bar:
        bar.set_postfix_str(case.case_id)
        own = case.question is not None or case.task is not None
        request = AnalysisRequest.from_path(
            case.ct, case.masks, case.parts, case_id=case.case_id,
            question=case.question if own else args.question, task=case.task if own else args.task,
            organ=case.organ or args.organ, segmentation=args.segmentation or "totalsegmentator",
            allow_non_ct=args.allow_non_ct, own_masks=args.segmentation is None,
        )
        run_json = args.out_dir / f"{case.case_id}.json"
        try:
            record = pipeline.analyze(request, settings=settings)
            record.save(run_json)
            summary.append({"case_id": case.case_id, "ct": str(case.ct), "status": "ok",
                            "conclusion": record.conclusion.answer, "rounds": len(record.rounds),
                            "run_json": str(run_json), "error": ""})
        except TumorChainError as exc:
            if isinstance(exc, Cancelled):
                raise
            failed += 1
            tqdm.write(f"tumorchain: {case.case_id}: {exc}", file=sys.stderr)
            summary.append({"case_id": case.case_id, "ct": str(case.ct), "status": "failed", "conclusion": "",
                            "rounds": 0, "run_json": "", "error": str(exc)})
    bar.close()
    summary_path = args.out_dir / "summary.csv"
    with summary_path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["case_id", "ct", "status", "conclusion", "rounds", "run_json", "error"])
        w.writeheader()
        w.writerows(summary)
    print(f"{len(cases) - failed} of {len(cases)} case(s) analyzed; summary: {summary_path}", file=out)
    return EXIT_FAILED if failed else EXIT_OK


# -- shared ----------------------------------------------------------------------------------------

def _pipeline(args):
    from inference.pipeline import Pipeline

    if not args.model.is_dir():
        raise ModelError(f"{args.model}: model folder not found")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would bury the rounds
    return Pipeline.from_model_dir(args.model, device=args.device, dtype=args.dtype)


def _iir_settings(args):
    """The round limit and sampling of the command line, for each analyze call."""
    from inference.iir.decoding import SamplingConfig
    from inference.iir.loop import IIRSettings

    return IIRSettings(
        max_rounds=args.max_rounds, include_negated=not args.exclude_negated,
        sampling=SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                top_p=args.top_p, top_k=args.top_k, seed=args.seed),
    )


def _need_path(path: Path, what: str, file: bool = False) -> None:
    if not path.exists():
        raise InputError(path, f"{what} does not exist")
    if file and not path.is_file():
        raise InputError(path, f"{what} is not a file")


def _check_out_file(path: Path) -> None:
    if path.is_dir():
        raise InputError(path, "--out is a folder; give a file name such as run.json")
    if not path.parent.exists():
        raise InputError(path.parent, "the folder for --out does not exist")


def _relative_to(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _unique_ids(cases: list[BatchCase]) -> list[BatchCase]:
    seen: dict[str, int] = {}
    for c in cases:
        n = seen.get(c.case_id, 0)
        seen[c.case_id] = n + 1
        if n:
            c.case_id = f"{c.case_id}_{n + 1}"
    return cases


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
