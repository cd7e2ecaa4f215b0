"""Benchmark: traceable report export time, per format, and the DICOM SEG build against the
straightforward highdicom call.

    python benchmarks/bench_export.py                          # 256 x 256 x 64, 3 repeats
    python benchmarks/bench_export.py --size 512 512 200 --repeats 1

Builds the synthetic case of tests/report_fixtures.py at the given size (a DICOM series written
with pydicom and loaded through load_ct, organ + substructure masks, a three-round run and a
signed review), then times ``export_report`` for each format alone (json, html, pdf, dicom),
all of them together, and all of them de-identified.

Baseline, measured in the same run: the DICOM SEG of the same organ masks built the plain way,
one boolean plane per segment stacked into a (frames, rows, columns, segments) array, against
ours, a label map (frames, rows, columns) per layer. Both give the same segments and frames;
the figures are build time and peak traced memory (tracemalloc sees numpy's allocations).
Figures to read, never a pass/fail test.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import numpy as np  # noqa: E402


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


def _peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, nargs=3, default=(256, 256, 64), metavar=("I", "J", "K"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import highdicom as hd

    from inference.report import Review, export_report
    from inference.report.dicom_seg import _description, build_segmentations
    from inference.report.dicom_source import frames_of, source_headers
    from inference.segmentation.organ_masks import OrganMasks
    from report_fixtures import load_case, make_run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        ct, masks = load_case(tmp / "case", tuple(args.size))
        print(f"case: {ct.shape} voxels, {len(masks.present_ids())} labels, DICOM series written + loaded "
              f"in {time.perf_counter() - t:.1f} s")
        run = make_run(ct, masks)
        review = Review.for_run(run, reviewer="Dr Bench")
        for k in review.keys:
            review.decide(k, "agreed")
        review.sign(confirm=True)
        export_report(run, review, ct, masks, tmp / "warm", formats={"html", "pdf", "dicom"})  # imports, fonts

        print(f"\nexport_report, median of {args.repeats} (ms)   [{platform.processor() or platform.machine()}]")
        rows = [("json", {"json"}, False), ("html", {"html"}, False), ("pdf", {"pdf"}, False),
                ("dicom", {"dicom"}, False), ("all", {"json", "html", "pdf", "dicom"}, False),
                ("all, de-identified", {"json", "html", "pdf", "dicom"}, True)]
        for name, formats, deid in rows:
            steps: dict[str, list[float]] = {}
            for n in range(args.repeats):
                res = export_report(run, review, ct, masks, tmp / f"{name}{n}", formats=formats, deidentify=deid)
                for k, v in res.timings_ms.items():
                    steps.setdefault(k, []).append(v)
            detail = ", ".join(f"{k[:-3]} {statistics.median(v):.0f}" for k, v in steps.items() if k != "total_ms")
            print(f"  {name:20s} total {statistics.median(steps['total_ms']):8.0f}   ({detail})")

        sources = source_headers(ct)
        present = [int(i) for i in np.unique(masks.organs) if i]

        def stacked():
            stack = np.stack([frames_of(masks.organs == lab) for lab in present], axis=-1)
            return hd.seg.Segmentation(
                source_images=sources, pixel_array=stack, segmentation_type="BINARY",
                segment_descriptions=[_description(n, lab, masks, "b") for n, lab in enumerate(present, 1)],
                series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(), instance_number=1,
                manufacturer="b", manufacturer_model_name="b", software_versions="b", device_serial_number="b")

        organs_only = OrganMasks(organs=masks.organs, affine=masks.affine, backend=masks.backend)

        def ours():
            return build_segmentations(organs_only, sources, software_version="b")

        assert int(stacked().NumberOfFrames) == int(ours()[0].dataset.NumberOfFrames)
        base_ms, our_ms = _median_ms(stacked, args.repeats), _median_ms(ours, args.repeats)
        base_mb, our_mb = _peak_mb(stacked), _peak_mb(ours)
        print(f"\nDICOM SEG of the same {len(present)} organ segments")
        print(f"  baseline stacked 4D array  {base_ms:8.0f} ms   peak {base_mb:8.1f} MB")
        print(f"  ours label map             {our_ms:8.0f} ms   peak {our_mb:8.1f} MB")
        print(f"  ratio ours/baseline        time {our_ms / base_ms:.2f}x   memory {our_mb / base_mb:.2f}x")


if __name__ == "__main__":
    main()
