"""convert-site end to end on real files (a small synthetic cohort's CTs, masks and report texts): a
manifest that validates and whose chains the IIR loop replays, the conversion report, a dry run that
writes nothing, bad rows reported by line and skipped, the CLI."""
from __future__ import annotations

import csv
import json
import shutil
from functools import lru_cache
from pathlib import Path

import pytest

from inference.errors import InputError


@lru_cache(maxsize=1)
def _cohort() -> Path:
    import atexit
    import tempfile

    from training.cohort.generate import generate_cohort

    root = Path(tempfile.mkdtemp(prefix="site-converter-test-"))
    atexit.register(shutil.rmtree, root, True)
    generate_cohort(root, 6, 5, (48, 48, 24), None, 1, log=None)
    return root


def merged_parent(name: str) -> str:
    from inference.labels import merged_labels

    t = merged_labels()
    return t.by_id(t.by_name(name).parent).name


def _report_text(cohort: Path, case_id: str) -> str:
    """The cohort's own report of a case: its report sample's "Findings: ... Pathology: ..." part."""
    for split in ("train", "val", "test"):
        for line in (cohort / f"{split}.jsonl").read_text().splitlines():
            d = json.loads(line)
            if d["case_id"] == case_id and d["subtask"] == "report":
                a = d["answer"]
                return a[a.index("Findings:"):a.index(" Summary:")]
    raise KeyError(case_id)


def _site(tmp_path: Path, extra_rows: list[dict] | None = None) -> tuple[Path, Path]:
    cohort = _cohort()
    rows = []
    for case in sorted((cohort / "cases").iterdir()):
        rows.append({"ct": str(case / "ct.nii.gz"), "report": _report_text(cohort, case.name),
                     "masks": str(case / "organs.nii.gz"), "parts": str(case / "parts.nii.gz"),
                     "lesions": str(case / "lesions.nii.gz"), "case_id": case.name})
    rows += extra_rows or []
    csv_path = tmp_path / "reports.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["ct", "report", "masks", "parts", "lesions", "case_id", "stage"])
        w.writeheader()
        w.writerows(rows)
    return tmp_path, csv_path


def test_cohort_reports_become_the_cohorts_answers_and_chains_the_loop_replays(tmp_path):
    from training.case_cache import CaseCache, Geometry
    from training.chain_plan import plan_chain
    from training.manifest import load_manifest
    from training.site_engine.convert import conversion_report_path, convert_site

    cts, csv_path = _site(tmp_path)
    out = tmp_path / "site" / "site.jsonl"
    report = convert_site(cts, csv_path, out)
    samples = load_manifest(out, check_files=True)
    assert report.totals()["converted"] == 6 and len(samples) == report.totals()["samples"]
    cohort = _cohort()
    truth = {json.loads(x)["id"]: json.loads(x) for s in ("train", "val", "test")
             for x in (cohort / f"{s}.jsonl").read_text().splitlines()}
    strip = lambda a: a.split(". ", 1)[1] if a[:2] in {f"{c}." for c in "ABCDEFGH"} else a  # noqa: E731
    for s in samples:  # the engine recovers every answer the cohort wrote from its ground truth
        assert strip(s.final_answer) == strip(truth[s.id]["final_answer"]), s.id
    cache = CaseCache(tmp_path / "cache", Geometry((16, 48, 48), (4, 16, 16), 4))
    for s in samples:
        counts = cache.load(cache.ensure(s.case_id, s.ct_file, s.masks_file, s.parts_file)).counts
        plan = plan_chain(s.question, [(r.answer, r.attend) for r in s.chain], counts, 8, 4, 0)
        assert plan.agrees and plan.rounds == len(s.chain), s.id
    saved = json.loads(conversion_report_path(out).read_text())
    assert saved["totals"]["per_subtask"]["organ_position"] == 6 and saved["manifest"] == str(out)
    case = next(c for c in saved["cases"] if c["extracted"]["lesions"])
    assert case["extracted"]["lesions"][0]["organ"]["source"] == "rules"


def test_dry_run_writes_nothing(tmp_path):
    from training.site_engine.convert import convert_site

    cts, csv_path = _site(tmp_path)
    out = tmp_path / "site" / "site.jsonl"
    report = convert_site(cts, csv_path, out, dry_run=True)
    assert report.totals()["samples"] > 0 and report.written is None
    assert not (tmp_path / "site").exists()


def test_bad_rows_are_reported_by_line_and_skipped(tmp_path):
    from training.site_engine.convert import convert_site

    case = sorted((_cohort() / "cases").iterdir())[0]
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not a nifti")
    from training.cohort.vqa_common import disp

    lesion_case, truth = next((c, t) for c in sorted((_cohort() / "cases").iterdir())
                              if (t := json.loads((c / "ground_truth.json").read_text()))["lesions"]
                              and t["lesions"][0]["substructure"])
    part = max(truth["lesions"], key=lambda x: x["diameter_mm"])["substructure"]
    other = next(p for p in truth["parts_present"] if p != part and merged_parent(p) == merged_parent(part))
    wrong = _report_text(_cohort(), lesion_case.name).replace(f"in the {disp(part)}", f"in the {disp(other)}")
    bad = [
        {"ct": str(case / "ct.nii.gz"), "report": "", "case_id": "no_report"},
        {"ct": str(broken), "report": "A 3 cm mass in the pancreatic head.", "case_id": "bad_ct"},
        {"ct": str(case / "ct.nii.gz"), "report": "Clear lungs. Normal heart size.", "masks": str(case / "organs.nii.gz"),
         "case_id": "no_organ"},
        {"ct": str(case / "ct.nii.gz"), "report": "A 3 cm hypodense mass in the prostate.", "masks":
         str(case / "organs.nii.gz"), "case_id": "organ_without_mask"},
        {"ct": str(lesion_case / "ct.nii.gz"), "report": wrong, "masks": str(lesion_case / "organs.nii.gz"),
         "parts": str(lesion_case / "parts.nii.gz"), "lesions": str(lesion_case / "lesions.nii.gz"),
         "case_id": "contradicts"},
    ]
    cts, csv_path = _site(tmp_path, bad)
    out = tmp_path / "m.jsonl"
    report = convert_site(cts, csv_path, out)
    skipped = {c.case_id: c.reason for c in report.cases if c.status == "skipped"}
    assert report.totals()["converted"] == 6 and out.is_file(), report.summary()
    assert "line 8: empty report" in skipped["no_report"] and str(csv_path) in skipped["no_report"]
    assert "line 9:" in skipped["bad_ct"] and "broken.nii.gz" in skipped["bad_ct"]
    assert "line 10: the report names no digestive organ (heart, lung" in skipped["no_organ"]
    assert "line 11: the prostate (where the report puts the lesion) has no mask" in skipped["organ_without_mask"]
    assert f"line 12: the report puts the lesion in {other}, the lesion mask in {part}" in skipped["contradicts"]


def test_nothing_convertible_writes_no_manifest(tmp_path):
    from training.site_engine.convert import convert_site

    csv_path = tmp_path / "r.csv"
    csv_path.write_text("ct,report\nmissing.nii.gz,Some text.\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        convert_site(tmp_path, csv_path, tmp_path / "out.jsonl")
    assert "line 2: CT" in str(err.value) and not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("content, message", [
    ("image,text\nx,y\n", "lacks column(s) ct, report"),
    ("", "lacks column(s)"),
])
def test_bad_csv_names_the_file(tmp_path, content, message):
    from training.site_engine.convert import convert_site

    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as err:
        convert_site(tmp_path, csv_path, tmp_path / "out.jsonl")
    assert str(csv_path) in str(err.value) and message in str(err.value)


def test_cli_convert_site_dry_run_and_llm_needs_a_url(tmp_path, capsys):
    from training.cli import main

    cts, csv_path = _site(tmp_path)
    out = tmp_path / "cli" / "site.jsonl"
    assert main(["convert-site", "--cts", str(cts), "--reports", str(csv_path), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "6 converted" in printed and "dry run: nothing written" in printed and not out.exists()
    assert main(["convert-site", "--cts", str(cts), "--reports", str(csv_path), "--out", str(out),
                 "--extractor", "llm"]) == 2
    assert "--llm-url" in capsys.readouterr().err


def test_without_masks_organs_are_segmented_during_training(tmp_path):
    from training.manifest import load_manifest
    from training.site_engine.convert import convert_site

    case = sorted((_cohort() / "cases").iterdir())[0]
    csv_path = tmp_path / "r.csv"
    csv_path.write_text(f"ct,report,organ_labels\n{case / 'ct.nii.gz'},\"A 3 cm ill-defined hypodense mass in the "
                        "pancreatic head. No lymphadenopathy. No distant metastasis. Impression: pancreatic cancer.\","
                        "liver:0\n", encoding="utf-8")
    report = convert_site(tmp_path, csv_path, tmp_path / "m.jsonl")
    samples = load_manifest(tmp_path / "m.jsonl")
    assert all(s.masks is None and s.parts is None for s in samples)
    assert {s.subtask for s in samples} >= {"organ_position", "density", "boundary", "T", "N", "M", "report"}
    # no parts mask: the sub-region is kept in the findings but no sub-region chain is written
    assert report.cases[0].not_written["tumor_position"] == "sub-region without mask"
    assert all(s.organ_labels.get("pancreas") == 1 and s.organ_labels.get("liver") == 0 for s in samples)


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED_DATA / "example_seg.nii.gz").is_file(),
                    reason="../shared/data (real CT + TotalSegmentator mask) is not beside the checkout")
def test_real_ct_with_a_totalsegmentator_mask(tmp_path):
    from training.case_cache import CaseCache, Geometry
    from training.chain_plan import plan_chain
    from training.manifest import load_manifest
    from training.site_engine.convert import convert_site

    csv_path = tmp_path / "r.csv"
    csv_path.write_text(
        "ct,report,masks\n"
        f"{SHARED_DATA / 'example_ct_sm.nii.gz'},\"LIVER: 2.4 x 1.9 cm ill-defined hypoattenuating lesion in segment "
        "VII. PANCREAS: unremarkable. Two enlarged portocaval lymph nodes, up to 14 mm short axis. No evidence of "
        f"distant metastatic disease. Impression: hepatocellular carcinoma.\",{SHARED_DATA / 'example_seg.nii.gz'}\n",
        encoding="utf-8")
    out = tmp_path / "site.jsonl"
    report = convert_site(tmp_path, csv_path, out)
    case = report.cases[0]
    assert case.status == "converted" and case.extracted["tnm"]["T"] == {"value": "T1", "source": "derived"}
    assert case.not_written["tumor_position"] == "sub-region without mask"  # the 'total' task has no segments
    samples = load_manifest(out, check_files=True)
    cache = CaseCache(tmp_path / "cache", Geometry((16, 64, 64), (4, 16, 16), 4))
    for s in samples:
        counts = cache.load(cache.ensure(s.case_id, s.ct_file, s.masks_file, None)).counts
        assert plan_chain(s.question, [(r.answer, r.attend) for r in s.chain], counts, 8, 4, 0).agrees, s.id


def test_a_spreadsheet_export_reads_as_the_site_saved_it(tmp_path):
    """Excel in a comma-decimal locale: ';' between columns, the Windows code page, capitalised
    headers, a report with line breaks inside its quotes; skipped rows name the line an editor shows."""
    from training.site_engine.convert import conversion_report_path, convert_site

    cohort = _cohort()
    case = sorted((cohort / "cases").iterdir())[0]
    report = _report_text(cohort, case.name).replace(". ", ".\n", 2) + " Reported by Dr. Müller."
    assert report.count("\n") == 2
    lines = ["CT ; Report;Masks;Case_ID",
             f'{case / "ct.nii.gz"};"{report}";{case / "organs.nii.gz"};{case.name}',
             "",  # a blank line between rows is no row
             f'{case / "ct.nii.gz"};"";{case / "organs.nii.gz"};empty']
    csv_path = tmp_path / "export.csv"
    csv_path.write_bytes("\r\n".join(lines).encode("cp1252"))
    with pytest.raises(UnicodeDecodeError):
        csv_path.read_bytes().decode("utf-8")  # really not UTF-8 (the u-umlaut)
    result = convert_site(tmp_path, csv_path, tmp_path / "m.jsonl")
    by_id = {c.case_id: c for c in result.cases}
    assert by_id[case.name].status == "converted" and sum(by_id[case.name].samples.values()) > 0, result.summary()
    assert by_id["empty"].status == "skipped" and "line 6: empty report" in by_id["empty"].reason
    assert any("cp1252" in n for n in result.notes) and any("';'" in n for n in result.notes)
    assert "note: " in result.summary()
    on_disk = json.loads(conversion_report_path(tmp_path / "m.jsonl").read_text())
    assert on_disk["notes"] == result.notes
