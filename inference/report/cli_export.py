"""``tumorchain export``: write the traceable report of a run from the command line.

    tumorchain export RUN_JSON --out DIR [--review FILE] [--anonymize] [--formats json html pdf dicom]
                      [--ct PATH] [--masks FILE] [--parts FILE] [--salt-file FILE]

The CT is reloaded from the run's recorded source (or --ct), the masks from --masks, the run's
--masks file, or its segmentation backend (cached); both must hash to what run.json recorded.
The review is --review, else ``<run>.review.json`` beside run.json, else the per-user review of
the run; with none, the report is exported unreviewed (every item pending) and says so.

Wiring (inference/cli.py): ``add_export_subcommand(sub)`` adds the parser; dispatch
``args.command == "export"`` to ``run_export(args, sys.stdout)``. User mistakes raise
TumorChainError subclasses (one line, exit 2 in the CLI).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence, TextIO

from inference.errors import InputError, TumorChainError
from inference.report.export import FORMATS


def add_export_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="write the traceable report of a run (JSON, HTML, PDF, DICOM SEG/SR)")
    p.add_argument("run_json", type=Path, metavar="RUN_JSON", help="the run record written by 'tumorchain analyze'")
    p.add_argument("--out", type=Path, required=True, help="folder to write the report files into")
    p.add_argument("--review", type=Path, help="review file (default: <run>.review.json beside RUN_JSON, "
                   "else the per-user review of this run)")
    p.add_argument("--anonymize", "--deidentify", dest="anonymize", action="store_true",
                   help="remove patient identifiers from every exported file")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS), metavar="FORMAT",
                   help=f"any of {', '.join(FORMATS)} (default: all)")
    p.add_argument("--ct", type=Path, help="the CT, when it moved since the run (default: the run's source path)")
    p.add_argument("--masks", type=Path, help="organ label NIfTI the run used (default: the run's masks file or "
                   "its segmentation backend)")
    p.add_argument("--parts", type=Path, help="substructure label NIfTI the run used with its masks (default: the "
                   "run's recorded parts file)")
    p.add_argument("--salt-file", type=Path, help="with --anonymize: secret bytes so that repeated exports give "
                   "the same pseudonym and UIDs (default: a new random secret per export)")
    p.add_argument("--organization", default="", help="verifying organisation written into a signed DICOM SR")
    p.set_defaults(handler=run_export)
    return p


def run_export(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from inference.ct_io import load_ct
    from inference.report.export import export_report
    from inference.report.review import Review
    from inference.report.review_store import load_review, open_review, review_path_for_run, user_review_path
    from inference.run_record import RunRecord

    run = RunRecord.load(args.run_json)
    ct_path = args.ct or (Path(run.case.source_path) if run.case.source_path else None)
    if ct_path is None:
        raise InputError(args.run_json, "records no CT path; pass the CT with --ct")
    ct = load_ct(ct_path)
    masks = _masks(args, run, ct)
    if args.review is not None:
        review = load_review(args.review)
        source = str(args.review)
    else:
        beside, user = review_path_for_run(args.run_json), user_review_path(run)
        path = beside if beside.exists() else user if user.exists() else None
        review = open_review(run, path) if path else Review.for_run(run)
        source = str(path) if path else None
    salt = None
    if args.salt_file is not None:
        if not args.anonymize:
            raise InputError(args.salt_file, "--salt-file only applies with --anonymize")
        try:
            salt = args.salt_file.read_bytes()
        except OSError as exc:
            raise InputError(args.salt_file, f"cannot read the salt: {exc.strerror or exc}") from None
        if len(salt) < 16:
            raise InputError(args.salt_file, "the salt must hold at least 16 bytes")
    result = export_report(run, review, ct, masks, args.out, formats=args.formats, deidentify=args.anonymize,
                           salt=salt, organization=args.organization)
    state = ("signed by " + review.signed.reviewer) if review.signed else (
        f"not signed, {len(review.pending())} item(s) pending")
    print(f"Review: {source or 'none found (exported unreviewed)'}; {state}", file=out)
    for kind, path in result.paths.items():
        if not kind.startswith("key_image_"):
            print(f"  {kind:12s} {path}", file=out)
    for note in result.notes:
        print(f"  note: {note}", file=out)
    print(f"Exported in {result.timings_ms['total_ms'] / 1000:.2f} s to {result.out_dir}", file=out)
    return 0


def _masks(args: argparse.Namespace, run, ct):
    """The run's masks again: the files it recorded (organs, parts and their label scheme, as the
    window or the CLI read them), else its segmentation backend; they must hash as run.json says."""
    from inference.segmentation.expert import make_expert

    details = run.segmentation.details if isinstance(run.segmentation.details, dict) else {}
    parts = None
    given = args.masks or (Path(run.segmentation.mask_source) if run.segmentation.mask_source else None)
    if given is not None:
        if not given.is_file():
            raise InputError(given, "the organ masks file does not exist; pass it with --masks")
        recorded_parts = details.get("parts_source") if args.masks is None else None
        parts = getattr(args, "parts", None) or (Path(recorded_parts) if recorded_parts else None)
        if parts is not None and not parts.is_file():
            raise InputError(parts, "the run's substructure (parts) file does not exist; pass it with --parts")
        scheme = details.get("scheme") if details.get("scheme") in ("totalseg", "merged") else "auto"
        masks = make_expert("precomputed", path=given, parts_path=parts, scheme=scheme).segment(ct)
    else:
        backend = run.segmentation.backend.split(":")[0]
        if backend == "precomputed":
            raise InputError(args.run_json, "the run used a masks file it did not record; pass it with --masks "
                             "(and --parts if it had substructures)")
        try:
            expert = make_expert(backend)
        except ValueError as exc:
            raise InputError(args.run_json, f"cannot redo the run's segmentation: {exc}; pass --masks") from None
        masks = expert.segment(ct)
    if masks.content_hash() != run.segmentation.mask_hash:
        used = run.segmentation.backend if given is None else f"{given}" + (f" with parts {parts}" if parts else "")
        raise InputError(args.run_json, f"the organ masks read from {used} are not the ones this run used (their "
                         "content differs from run.json's mask_hash); pass the run's files with --masks and "
                         "--parts, or re-run the analysis with these masks")
    return masks


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry (``python -m inference.report.cli_export export ...``) until cli.py wires it."""
    parser = argparse.ArgumentParser(prog="tumorchain")
    sub = parser.add_subparsers(dest="command", required=True)
    add_export_subcommand(sub)
    args = parser.parse_args(argv)
    try:
        return args.handler(args, sys.stdout)
    except KeyboardInterrupt:
        print("tumorchain: cancelled", file=sys.stderr)
        return 130
    except TumorChainError as exc:
        print(f"tumorchain: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
