"""Benchmark: how much of a report the site data engine recovers, field by field.

    python benchmarks/bench_site_engine.py                    # 40 cases, seed 11, 64x64x32
    python benchmarks/bench_site_engine.py --cases 100 --seed 3

1. Cohort phrasings: a synthetic cohort (training.cohort.generate) is written; its report texts (the
   "Findings: ... Impression: ... Pathology: ..." part of each report chain), CTs, organ, sub-region
   and lesion masks go through convert-site as a site's CSV would, and the grounded findings are scored
   against each case's ground_truth.json (scoring.py: organ, sub-region, size within 20 %, shape,
   boundary, density, count, others, T/N/M). Run twice: with the pathology sentence (its stage is read)
   and without it (pathology and stage must be derived from the findings by the knowledge graph).
   Also: the share of converted samples whose final answer equals the cohort's own sample of that id.
2. Independent phrasings: tests/fixtures/site_reports.json (hand-written reports, hand labels; the rules
   were refined on it), site_reports_heldout.json (written afterwards; scored before the rules were
   refined on it in session 10) and site_reports_blind.json (45 reports written in session 10 by another
   author who never saw the extractor; its blind score is in the README, then the rules were refined on
   it): rule extractor + staging, no masks.

Figures to read, never a pass/fail test (tests/test_site_engine.py guards a floor).
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.cohort.generate import generate_cohort  # noqa: E402
from training.cohort.ground_truth import read_truth  # noqa: E402
from training.cohort.knowledge import load_kg  # noqa: E402
from training.site_engine.convert import SiteConverter, read_rows  # noqa: E402
from training.site_engine.rule_extractor import RuleExtractor  # noqa: E402
from training.site_engine.scoring import findings_view, score, score_fixture, table  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def cohort_reports(cohort: Path) -> dict[str, dict]:
    out = {}
    for split in ("train", "val", "test"):
        for line in (cohort / f"{split}.jsonl").read_text().splitlines():
            d = json.loads(line)
            out[d["id"]] = d
    return out


def write_csv(cohort: Path, samples: dict[str, dict], path: Path, keep_pathology: bool) -> None:
    rows = []
    for d in samples.values():
        if d["subtask"] != "report":
            continue
        text = d["answer"][d["answer"].index("Findings:"):d["answer"].index(" Summary:")]
        if not keep_pathology:
            text = re.sub(r" Pathology:.*$", "", text)
        case = cohort / "cases" / d["case_id"]
        rows.append({"ct": str(case / "ct.nii.gz"), "report": text, "masks": str(case / "organs.nii.gz"),
                     "parts": str(case / "parts.nii.gz"), "lesions": str(case / "lesions.nii.gz"),
                     "case_id": d["case_id"]})
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def run_cohort(cohort: Path, work: Path, keep_pathology: bool) -> None:
    samples = cohort_reports(cohort)
    csv_path = work / f"reports_{keep_pathology}.csv"
    write_csv(cohort, samples, csv_path, keep_pathology)
    conv = SiteConverter(work, work / "site.jsonl")
    t0 = time.perf_counter()
    written, skipped = [], 0
    for line, row in read_rows(csv_path):
        try:
            got, _ = conv.row(line, row)
            written += got
        except ValueError as exc:
            skipped += 1
            print(f"  skipped line {line}: {exc}")
    seconds = time.perf_counter() - t0
    pairs = [(cid, findings_view(read_truth(cohort / "cases" / cid / "ground_truth.json")), findings_view(f))
             for cid, f in sorted(conv.findings.items())]
    strip = lambda a: re.sub(r"^[A-H]\. ", "", a)  # noqa: E731  (option letters differ: per-case seeds differ)
    same = sum(strip(s.final_answer) == strip(samples[s.id]["final_answer"]) for s in written if s.id in samples)
    what = "with the pathology sentence (stage read)" if keep_pathology else "without it (pathology and stage derived)"
    print(f"\n### Cohort phrasings, {what}\n")
    print(f"{len(pairs)} cases converted, {skipped} skipped, {len(written)} samples in {seconds:.1f} s "
          f"({seconds / max(len(pairs), 1):.2f} s/case, CT and masks loaded); final answers equal to the cohort's: "
          f"{same}/{len(written)}\n")
    scores = score(pairs)
    print(table(scores))
    for name, s in scores.items():
        for miss in s.misses[:3]:
            print(f"  miss {name}: {miss}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=40)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--shape", default="64x64x32")
    args = p.parse_args(argv)
    shape = tuple(int(x) for x in args.shape.split("x"))
    kg = load_kg()
    with tempfile.TemporaryDirectory(prefix="bench-site-") as tmp:
        cohort = Path(tmp) / "cohort"
        generate_cohort(cohort, args.cases, args.seed, shape, None, 1, log=None)
        print(f"## Site engine on a {args.cases}-case cohort (seed {args.seed}, {args.shape}), rule extractor")
        for keep in (True, False):
            run_cohort(cohort, Path(tmp), keep)
    for name in ("site_reports.json", "site_reports_heldout.json", "site_reports_blind.json"):
        reports = json.loads((FIXTURES / name).read_text())["reports"]
        print(f"\n### Independent phrasings ({name}, {len(reports)} reports), rule extractor\n")
        scores = score_fixture(reports, RuleExtractor(kg), kg)
        print(table(scores))
        for field, s in scores.items():
            for miss in s.misses:
                print(f"  miss {field}: {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
