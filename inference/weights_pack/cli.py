"""``tumorchain weights``: move weights to a machine without internet.

    tumorchain weights export --out PACK [--totalseg TASK ...] [--dataset ID ...] [--model DIR ...]
                              [--runtime DIR] [--totalseg-home DIR]
    tumorchain weights import PACK [--totalseg-home DIR] [--models-dir DIR] [--runtime-dir DIR]
    tumorchain weights list [PACK] [--verify] [--totalseg-home DIR] [--models-dir DIR] [--runtime-dir DIR]

Wiring (inference/cli.py): ``add_weights_subcommand(sub)``; dispatch ``args.command == "weights"``
to ``run_weights(args, sys.stdout)``. Problems raise TumorChainError subclasses (one line, exit 2).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from inference.weights_pack.locations import ENV_MODELS_DIR


def add_weights_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("weights", help="export, import or list offline weights packs")
    sub = p.add_subparsers(dest="weights_command", required=True)
    e = sub.add_parser("export", help="write a pack of TotalSegmentator weights and model folders")
    e.add_argument("--out", type=Path, required=True,
                   help="the pack file to write: weights.tcpack.tar, or .tar.gz / .tar.xz to compress it "
                        "(worth it for a segmentation runtime; weights hardly compress)")
    e.add_argument("--totalseg", nargs="+", default=[], metavar="TASK",
                   help="TotalSegmentator tasks whose weights to pack: total, total_fast, liver_segments")
    e.add_argument("--dataset", nargs="+", type=int, default=[], metavar="ID", help="nnU-Net dataset ids to pack")
    e.add_argument("--model", nargs="+", type=Path, default=[], metavar="DIR", help="TumorChain model folders to pack")
    e.add_argument("--runtime", type=Path, metavar="DIR",
                   help="a segmentation runtime folder to pack (installers/build_totalseg_runtime.sh)")
    i = sub.add_parser("import", help="verify a pack and install what it holds")
    i.add_argument("pack", type=Path, metavar="PACK")
    ls = sub.add_parser("list", help="what is installed here, or (with PACK) what a pack holds")
    ls.add_argument("pack", type=Path, nargs="?", metavar="PACK")
    ls.add_argument("--verify", action="store_true", help="with PACK: check every file's size and sha256")
    for sp in (e, i, ls):
        sp.add_argument("--totalseg-home", type=Path, metavar="DIR",
                        help="TOTALSEG_HOME_DIR (default: $TOTALSEG_HOME_DIR or ~/.totalsegmentator)")
    for sp in (i, ls):
        sp.add_argument("--models-dir", type=Path, metavar="DIR",
                        help=f"where model folders are installed (default: ${ENV_MODELS_DIR} or the user's data folder)")
        sp.add_argument("--runtime-dir", type=Path, metavar="DIR",
                        help="where the segmentation runtime is installed (default: $TUMORCHAIN_TOTALSEG_RUNTIME "
                             "or totalseg-runtime in the user's data folder)")
    return p


def run_weights(args, out: TextIO) -> int:
    from inference.weights_pack.locations import Targets

    targets = Targets.for_settings(args.totalseg_home, getattr(args, "models_dir", None),
                                   getattr(args, "runtime_dir", None))
    if args.weights_command == "export":
        return _export(args, targets, out)
    if args.weights_command == "import":
        from inference.weights_pack.importer import import_pack

        report = import_pack(args.pack, targets, progress=_bar())
        print(f"{args.pack}: verified {len(report.manifest.items)} item(s), "
              f"{report.manifest.size / 2**20:.1f} MiB", file=out)
        for line in report.lines():
            print(line, file=out)
        _print_inventory(targets, out)
        return 0
    if args.pack is not None:
        from inference.weights_pack.importer import read_manifest, verify_pack

        manifest = verify_pack(args.pack, progress=_bar()) if args.verify else read_manifest(args.pack)
        print(f"{args.pack}: {manifest.created_by}, created {manifest.created}, "
              f"{manifest.size / 2**20:.1f} MiB{', every file verified' if args.verify else ''}", file=out)
        for item in manifest.items:
            print(f"  {item.describe()}", file=out)
        return 0
    _print_inventory(targets, out)
    return 0


def _export(args, targets, out: TextIO) -> int:
    from inference.weights_pack.export import (dataset_ids_for_tasks, export_pack, model_source, runtime_source,
                                               totalseg_sources)

    ids = sorted(dict.fromkeys(dataset_ids_for_tasks(args.totalseg) + list(args.dataset)))
    sources = totalseg_sources(targets.totalseg_results, ids) + [model_source(m) for m in args.model]
    if args.runtime is not None:
        sources.append(runtime_source(args.runtime))
    manifest = export_pack(args.out, sources, progress=_bar())
    print(f"Wrote {args.out}: {len(manifest.items)} item(s), {manifest.size / 2**20:.1f} MiB", file=out)
    for item in manifest.items:
        print(f"  {item.describe()}", file=out)
    return 0


def _print_inventory(targets, out: TextIO) -> None:
    from inference.weights_pack.inventory import take_inventory

    for line in take_inventory(targets).lines():
        print(line, file=out)


def _bar():
    """A progress bar on a terminal, nothing in logs."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(total=1000, file=sys.stderr, leave=False, bar_format="{desc} {bar} {percentage:3.0f}%")

    def progress(fraction: float, message: str) -> None:
        bar.set_description_str(message[-50:])
        bar.update(max(0, int(fraction * 1000) - bar.n))

    return progress
