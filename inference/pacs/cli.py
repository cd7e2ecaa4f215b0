"""``tumorchain pacs echo|find|get|send``: the PACS from the command line.

    tumorchain pacs echo  --host H --port P --called-ae AE [--calling-ae AE] [--tls] [--timeout S]
    tumorchain pacs find  ... [--patient-name N] [--patient-id ID] [--date FROM-TO] [--modality CT] [--accession A]
    tumorchain pacs find  ... --study UID                     (the study's series)
    tumorchain pacs get   ... --study UID --series UID [--cache DIR] [--retrieve get|move|wado]
    tumorchain pacs send  ... FILE... [--queue DIR]           (queued on disk first; failures stay queued)
    tumorchain pacs send  ... --retry                         (send what the queue holds)

A connection comes from the options, or by name from a JSON list (``--connections FILE --pacs NAME``,
the format the workstation's settings keep). A network failure prints its kind and exits 1;
patient data reaches the log only with ``--debug``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from inference.pacs.connection import PacsConnection, PacsError, connections_from_json

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_pacs_subcommand(sub) -> None:
    p = sub.add_parser("pacs", help="query, retrieve from and send to a PACS (DIMSE or DICOMweb)")
    actions = p.add_subparsers(dest="pacs_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("connection")
    g.add_argument("--connections", type=Path, help="JSON list of connections (as the workstation keeps them)")
    g.add_argument("--pacs", help="the connection's name in --connections")
    g.add_argument("--host", help="PACS host (DIMSE)")
    g.add_argument("--port", type=int, help="PACS DICOM port")
    g.add_argument("--called-ae", help="the PACS's AE title")
    g.add_argument("--calling-ae", help="our AE title (default TUMORCHAIN)")
    g.add_argument("--dicomweb", metavar="URL", help="DICOMweb base URL instead of DIMSE (QIDO/WADO/STOW-RS)")
    g.add_argument("--tls", action="store_true", help="DIMSE over TLS")
    g.add_argument("--ca-file", help="CA certificates for TLS / https (default: the system's)")
    g.add_argument("--timeout", type=float, help="seconds per network step (default 10)")
    g.add_argument("--retrieve", choices=("get", "move", "wado"), help="how a series is retrieved (default get)")
    g.add_argument("--move-port", type=int, help="our storage SCP port for C-MOVE (the PACS must know our AE there)")
    g.add_argument("--debug", action="store_true", help="let patient data into the log (pynetdicom at DEBUG)")

    actions.add_parser("echo", parents=[common], help="C-ECHO (or a QIDO-RS probe): is the PACS there?")
    f = actions.add_parser("find", parents=[common], help="search studies, or list a study's series")
    f.add_argument("--patient-name", default="")
    f.add_argument("--patient-id", default="")
    f.add_argument("--date", default="", help="YYYYMMDD or FROM-TO (either end may be empty)")
    f.add_argument("--modality", default="")
    f.add_argument("--accession", default="")
    f.add_argument("--study", help="list this study's series instead")
    f.add_argument("--json", action="store_true", help="print JSON")
    r = actions.add_parser("get", parents=[common], help="retrieve a series into the local cache")
    r.add_argument("--study", required=True)
    r.add_argument("--series", required=True)
    r.add_argument("--cache", type=Path, default=default_cache_dir(), help="cache folder (default %(default)s)")
    r.add_argument("--refresh", action="store_true", help="retrieve again even when the cache has it")
    s = actions.add_parser("send", parents=[common], help="send DICOM files (SEG, SR) through the on-disk queue")
    s.add_argument("files", nargs="*", type=Path)
    s.add_argument("--queue", type=Path, help="queue folder (default $TUMORCHAIN_PACS_QUEUE or "
                   "~/.local/share/tumorchain/pacs_queue)")
    s.add_argument("--retry", action="store_true", help="also send queued objects whose next try is not due yet")
    p.set_defaults(handler=lambda args: run_pacs(args, sys.stdout))


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "tumorchain" / "pacs"


def connection_from_args(args) -> PacsConnection:
    base = PacsConnection(name="command line")
    if args.connections is not None or args.pacs:
        if args.connections is None or not args.pacs:
            raise PacsError("config", "--connections and --pacs go together")
        try:
            text = args.connections.read_text(encoding="utf-8")
        except OSError as exc:
            raise PacsError("config", f"{args.connections}: cannot read ({exc.strerror or exc})") from None
        found = {c.name: c for c in connections_from_json(text)}
        if args.pacs not in found:
            raise PacsError("config", f"{args.connections}: no connection named {args.pacs!r} "
                            f"(there are: {', '.join(found) or 'none'})")
        base = found[args.pacs]
    over = {}
    for opt, key in (("host", "host"), ("port", "port"), ("called_ae", "called_ae"), ("calling_ae", "calling_ae"),
                     ("ca_file", "tls_ca_file"), ("timeout", "timeout_s"), ("retrieve", "retrieve"),
                     ("move_port", "move_port")):
        if getattr(args, opt) is not None:
            over[key] = getattr(args, opt)
    if args.tls:
        over["tls"] = True
    if args.dicomweb:
        over.update(protocol="dicomweb", dicomweb_url=args.dicomweb, retrieve="wado")
    return replace(base, **over).checked()


def run_pacs(args, out: TextIO) -> int:
    from inference.pacs.privacy import set_debug

    set_debug(args.debug)
    try:
        conn = connection_from_args(args)
        return {"echo": _echo, "find": _find, "get": _get, "send": _send}[args.pacs_command](conn, args, out)
    except PacsError as exc:
        print(f"tumorchain pacs: {exc.kind}: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.kind == "config" else EXIT_FAILED


def _echo(conn, args, out) -> int:
    from inference.pacs.dimse import echo

    print(echo(conn).message, file=out)
    return EXIT_OK


def _find(conn, args, out) -> int:
    from dataclasses import asdict

    from inference.pacs.query import StudyQuery, find_series, find_studies

    if args.study:
        rows = find_series(conn, args.study)
        if args.json:
            print(json.dumps([asdict(r) for r in rows], indent=1), file=out)
            return EXIT_OK
        print(f"{'#':>4}  {'modality':8}  {'images':>6}  {'thick mm':>8}  description / series UID", file=out)
        for s in rows:
            th = f"{s.slice_thickness_mm:g}" if s.slice_thickness_mm is not None else "-"
            print(f"{s.number if s.number is not None else '-':>4}  {s.modality:8}  {s.n_instances or 0:>6}  {th:>8}  "
                  f"{s.description}  {s.series_uid}", file=out)
        return EXIT_OK
    date_from, _, date_to = args.date.partition("-")
    q = StudyQuery(patient_name=args.patient_name, patient_id=args.patient_id, date_from=date_from,
                   date_to=date_to if "-" in args.date else date_from, modality=args.modality, accession=args.accession)
    rows = find_studies(conn, q)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1), file=out)
        return EXIT_OK
    for s in rows:
        print(f"{s.study_date}  {s.patient_name}  ({s.patient_id})  {'/'.join(s.modalities)}  acc {s.accession or '-'}  "
              f"{s.description}  series {s.n_series}  images {s.n_instances}\n    study {s.study_uid}", file=out)
    print(f"{len(rows)} stud{'y' if len(rows) == 1 else 'ies'}", file=out)
    return EXIT_OK


def _get(conn, args, out) -> int:
    from inference.pacs.retrieve import retrieve_series

    bar = _bar()
    try:
        r = retrieve_series(conn, args.study, args.series, args.cache, progress=bar, reuse=not args.refresh)
    finally:
        bar.close()
    how = "already in the cache" if r.from_cache else f"{r.method}, {r.seconds:.1f} s"
    print(f"{r.folder}  ({r.n_files} images; {how})", file=out)
    return EXIT_OK


def _send(conn, args, out) -> int:
    from inference.pacs.send_queue import SendQueue, default_queue_dir

    queue = SendQueue(args.queue or default_queue_dir())
    if not args.files and not args.retry:
        raise PacsError("config", "give the files to send, or --retry to send what the queue holds")
    if args.files:
        queue.enqueue(args.files, conn.name)
    report = queue.process(conn, force=args.retry)
    for r in report.results:
        print(f"{'sent  ' if r.ok else 'FAILED'}  {r.item.description or r.item.sop_instance_uid}: {r.message}", file=out)
    left = queue.pending(conn.name)
    print(report.summary() + (f"; {len(left)} in the queue ({queue.folder})" if left else ""), file=out)
    return EXIT_FAILED if report.failed else EXIT_OK


class _bar:
    """Progress on stderr when it is a terminal."""

    def __init__(self):
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=100, file=sys.stderr, bar_format="{desc} {bar} {percentage:3.0f}%", leave=False)

    def __call__(self, fraction: float, message: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(message[:50])
            self._bar.update(max(0, int(fraction * 100) - self._bar.n))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
