"""Benchmark: retrieving a series from a local Orthanc, and sending the exports back.

    python benchmarks/bench_pacs.py                         # 400 slices of 512 x 512, 3 rounds
    python benchmarks/bench_pacs.py --size 256 256 400 --rounds 2

Starts Orthanc (Debian package) on 127.0.0.1 with a temporary configuration and storage (the tests'
tests/orthanc_server.py), uploads a synthetic CT series (tests/report_fixtures.py, int16, 3 mm
slices) through Orthanc's REST API, then times, alternating so the machine's load hits both alike:

- baseline: a plain pynetdicom C-GET loop, one association, each received dataset written to a
  file as it arrives (no checks);
- ours: inference.pacs.retrieve_series by C-GET (TCP pre-check, a C-FIND for the expected count,
  staging folder, verification of every file, manifest, rename; TCP_NODELAY on our socket), the
  same with Nagle left on here ("Nagle"), and by C-MOVE and WADO-RS;
- each against Orthanc as Debian ships it (DCMTK keeps Nagle's algorithm on: every small DIMSE
  message waits for a delayed ACK) and with TCP_NODELAY=1 in Orthanc's environment;
- sending the signed run's exports (SEG + TID 2000 SR + TID 1500 SR) through the on-disk queue by
  C-STORE and by STOW-RS, and the export itself for scale.

Prints the median of the rounds and the ratio ours / baseline. Figures to read, never pass/fail.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def plain_c_get(conn, study_uid: str, series_uid: str, folder: Path) -> int:
    """The baseline: what a script written from pynetdicom's documentation does."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE, build_role, evt

    from inference.pacs.retrieve import STORAGE_CLASSES, STUDY_ROOT_GET, TRANSFER_SYNTAXES

    folder.mkdir(parents=True, exist_ok=True)
    n = [0]

    def store(event):
        (folder / f"{event.request.AffectedSOPInstanceUID}.dcm").write_bytes(event.encoded_dataset(include_meta=True))
        n[0] += 1
        return 0x0000
    ae = AE(ae_title=conn.calling_ae)
    ae.add_requested_context(STUDY_ROOT_GET)
    for uid in STORAGE_CLASSES:
        ae.add_requested_context(uid, list(TRANSFER_SYNTAXES))
    roles = [build_role(uid, scp_role=True) for uid in STORAGE_CLASSES]
    assoc = ae.associate(conn.host, conn.port, ae_title=conn.called_ae, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, store)])
    assert assoc.is_established
    ds = Dataset()
    ds.QueryRetrieveLevel, ds.StudyInstanceUID, ds.SeriesInstanceUID = "SERIES", study_uid, series_uid
    for status, _ in assoc.send_c_get(ds, STUDY_ROOT_GET):
        pass
    assoc.release()
    return n[0]


def _renumbered(paths: list[Path], folder: Path) -> list[Path]:
    import pydicom
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True)
    series, out = generate_uid(), []
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = series
        out.append(folder / p.name)
        ds.save_as(out[-1], enforce_file_format=True)
    return out


def _retrieve_rounds(conn, study, series, n_files: int, mb: float, rounds: int, tmp: Path) -> None:
    from inference.pacs import retrieve_series

    import inference.pacs.dimse as dimse

    methods = {"baseline C-GET": None, "ours C-GET": "get", "ours C-GET, Nagle": "get", "ours C-MOVE": "move",
               "ours WADO-RS": "wado"}
    times: dict[str, list[float]] = {k: [] for k in methods}
    keep = dimse.no_delay
    for r in range(rounds):
        for name, method in methods.items():
            out = tmp / f"r{r}-{name.replace(' ', '_').replace(',', '')}"
            dimse.no_delay = (lambda event: None) if name.endswith("Nagle") else keep  # our TCP_NODELAY off
            t = time.perf_counter()
            if method is None:
                n = plain_c_get(conn, study.study_uid, series.series_uid, out)
            else:
                n = retrieve_series(replace(conn, retrieve=method), study.study_uid, series.series_uid, out).n_files
            times[name].append(time.perf_counter() - t)
            assert n == n_files, (name, n)
            shutil.rmtree(out)
    dimse.no_delay = keep
    base = statistics.median(times["baseline C-GET"])
    print(f"retrieve {n_files} images ({mb:.0f} MB), median of {rounds} rounds:")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name:18s} {m:6.2f} s  {n_files / m:6.0f} images/s  {mb / m:6.1f} MB/s  "
              f"x{m / base:.2f} of baseline   (rounds: {', '.join(f'{x:.2f}' for x in ts)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=3, default=(512, 512, 400), metavar=("I", "J", "K"))
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from inference.ct_io import load_ct
    from inference.pacs import PacsConnection, SendQueue, StudyQuery, find_series, find_studies, retrieve_series
    from orthanc_server import ORTHANC, Orthanc, free_port
    from report_fixtures import PATIENT, make_run, synthetic_arrays, write_dicom_case

    if ORTHANC is None:
        sys.exit("the Orthanc binary is not installed (apt-get install orthanc orthanc-dicomweb)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    try:
        t = time.perf_counter()
        series_dir = write_dicom_case(tmp / "case", tuple(args.size))
        files = sorted(series_dir.iterdir())
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"series: {len(files)} slices of {args.size[0]}x{args.size[1]} int16, {mb:.0f} MB "
              f"(written in {time.perf_counter() - t:.1f} s)")
        for nagle in (True, False):
            move_port = free_port()
            with Orthanc(tmp / f"orthanc-{nagle}", modalities={"TCWS": move_port}, nagle=nagle) as pacs:
                t = time.perf_counter()
                pacs.upload(files)
                print(f"\nOrthanc {'as Debian ships it (Nagle on in DCMTK)' if nagle else 'with TCP_NODELAY=1'}: "
                      f"upload (REST) {time.perf_counter() - t:.1f} s")
                conn = PacsConnection(name="bench", host="127.0.0.1", port=pacs.dicom_port, called_ae=pacs.aet,
                                      calling_ae="TCWS", timeout_s=60, move_port=move_port, move_bind="127.0.0.1",
                                      dicomweb_url=pacs.dicomweb_url)
                (study,) = find_studies(conn, StudyQuery(patient_id=PATIENT["id"]))
                (series,) = find_series(conn, study.study_uid)
                _retrieve_rounds(conn, study, series, len(files), mb, args.rounds, tmp)
                if nagle:
                    continue
                # the exports of a signed run on that series, sent back
                from inference.report import Review, export_report
                from inference.segmentation.organ_masks import OrganMasks

                got = retrieve_series(conn, study.study_uid, series.series_uid, tmp / "cache")
                ct = load_ct(got.folder)
                _, organs, parts, _ = synthetic_arrays(ct.shape)
                masks = OrganMasks(organs=organs, affine=ct.affine, backend="synthetic", parts=parts)
                run = make_run(ct, masks)
                review = Review.for_run(run, reviewer="Dr Bench")
                for key in review.keys:
                    review.decide(key, "agreed")
                review.sign(confirm=True)
                t = time.perf_counter()
                exported = export_report(run, review, ct, masks, tmp / "export", formats={"dicom"})
                t_export = time.perf_counter() - t
                kinds = [k for k in ("seg", "seg_parts", "sr", "sr_tid1500") if k in exported.paths]
                sizes = {k: exported.paths[k].stat().st_size / 1e6 for k in kinds}
                print(f"\nexport of the signed run (DICOM only): {t_export:.2f} s; objects: "
                      + ", ".join(f"{k} {v:.2f} MB" for k, v in sizes.items()))
                for label, c in (("C-STORE", conn), ("STOW-RS", replace(conn, name="web", protocol="dicomweb", retrieve="wado"))):
                    ts = []
                    for r in range(args.rounds):
                        q = SendQueue(tmp / f"queue-{label}-{r}")
                        # new instances each round (the PACS would otherwise get the same ones again): the
                        # export's files with fresh SOP instance and series UIDs
                        paths = _renumbered([exported.paths[k] for k in kinds], tmp / f"send-{label}-{r}")
                        t = time.perf_counter()
                        q.enqueue(paths, c.name, kinds)
                        rep = q.process(c)
                        ts.append(time.perf_counter() - t)
                        assert not rep.failed, rep.summary()
                    print(f"send {len(kinds)} objects ({sum(sizes.values()):.2f} MB) by {label} via the queue: "
                          f"median {statistics.median(ts):.2f} s (rounds: {', '.join(f'{x:.2f}' for x in ts)})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
