"""DeepTumorVQA's question files -> our manifest (fixtures written in its v2 record format), bad records
named by line, and evaluation reporting its own categories beside Table 1's (the demo model on real
NIfTI CTs of a small synthetic cohort laid out as the benchmark's ct/ folder)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inference.errors import InputError
from training.manifest import load_manifest
from training.public_benchmarks.categories import benchmark_tables, markdown
from training.public_benchmarks.deeptumorvqa import import_deeptumorvqa, parse_options

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "deeptumorvqa"
IMAGES = ("BDMAP_00000001", "BDMAP_00000002")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A site's copy of the benchmark: <root>/ct/<image_id>/ct.nii.gz and merged masks <root>/masks/<image_id>.nii.gz."""
    from training.cohort.generate import generate_cohort

    root = tmp_path_factory.mktemp("dtv")
    generate_cohort(root / "cohort", 2, 17, (48, 48, 24), None, 1, log=None)
    for image_id, case in zip(IMAGES, sorted((root / "cohort" / "cases").iterdir())):
        (root / "ct" / image_id).mkdir(parents=True)
        shutil.copy(case / "ct.nii.gz", root / "ct" / image_id / "ct.nii.gz")
        (root / "masks").mkdir(exist_ok=True)
        shutil.copy(case / "organs.nii.gz", root / "masks" / f"{image_id}.nii.gz")
    return root


@pytest.mark.parametrize("text, stem, options", [
    ("Is it? A: No B: Yes C: Cannot be determined D: Only a cyst", "Is it?", ["No", "Yes", "Cannot be determined", "Only a cyst"]),
    ("Volume?\nA: 95.0\nB: 310.7\nC: 182.4\nD: 460.2", "Volume?", ["95.0", "310.7", "182.4", "460.2"]),
    ("Which? A. segment 2 B. segment 4 C. segment 7", "Which?", ["segment 2", "segment 4", "segment 7"]),
    ("Grade? (A) Normal (no splenomegaly) (B) Mild", "Grade?", ["Normal (no splenomegaly)", "Mild"]),
])
def test_parse_options(text, stem, options):
    assert parse_options(text) == (stem, options)


def test_parse_options_refuses_a_question_without_options():
    from training.public_benchmarks.deeptumorvqa import RecordError

    with pytest.raises(RecordError, match="no options"):
        parse_options("What is the mean HU of the liver?")


def test_benchmark_file_becomes_multiple_choice_samples(site, tmp_path):
    out = site / "dtv.jsonl"  # beside the images: paths relative to it
    report = import_deeptumorvqa(FIXTURES / "test_qa.json", site / "ct", out, masks_dir=site / "masks")
    assert report.imported == 6 and not report.skipped, report.summary()
    assert report.per_category == {"recognition": 2, "measurement": 1, "visual reasoning": 2, "medical reasoning": 1}
    samples = {s.benchmark["qid"]: s for s in load_manifest(out, check_files=True)}
    s = samples["bench_00001"]
    assert s.task == "benchmark" and s.subtask == "deeptumorvqa" and s.case_id == "BDMAP_00000001"
    assert s.options == ("No", "Yes", "Cannot be determined", "Only a cyst") and s.final_answer == "B. Yes"
    assert s.question == "Is there a lesion in the pancreas? Options: A. No B. Yes C. Cannot be determined D. Only a cyst"
    assert s.answer == "Thus, the answer is B. Yes." and len(s.chain) == 1 and s.roi_organs == ()
    assert s.benchmark == {"name": "DeepTumorVQA", "qid": "bench_00001", "category": "recognition",
                           "subcategory": "pancreatic lesion existence", "correct_option": "B"}
    assert s.ct == "ct/BDMAP_00000001/ct.nii.gz" and s.masks == "masks/BDMAP_00000001.nii.gz"
    assert samples["bench_00002"].final_answer == "C. 182.4"  # options on separate lines
    assert samples["bench_00004"].final_answer == "A. Normal (no splenomegaly)"
    assert samples["bench_00005"].final_answer == "C. segment 7"  # "A." style options
    assert samples["bench_00006"].options == ("Yes", "No")  # two options only
    assert samples["bench_00006"].final_answer == "B. No"


def test_bad_records_are_named_by_line_and_skipped(site, tmp_path):
    src = FIXTURES / "test_qa_with_errors.jsonl"
    out = tmp_path / "dtv.jsonl"
    report = import_deeptumorvqa(src, site / "ct", out)
    assert report.imported == 2, report.summary()
    skipped = "\n".join(report.skipped)
    for expected in (
        f"{src} line 2 (bench_00102): 'mc_question' has no options",
        "line 3 (bench_00103): correct_option 'E' is not one of A, B, C, D",
        "line 4 (bench_00104): no CT for BDMAP_00009999",
        "line 5 (bench_00105): answer 'Mild steatosis' is option B, but correct_option is C",
        "line 6 (bench_00101): duplicate qid (first on line 1)",
        "line 7 (bench_00106): question_type 'spatial' is not one of",
        "line 8: not valid JSON",
    ):
        assert expected in skipped, skipped
    samples = load_manifest(out)
    assert [s.benchmark["qid"] for s in samples] == ["bench_00101", "bench_00108"]
    assert samples[1].final_answer == "B. left kidney" and samples[1].benchmark["category"] == "visual reasoning"
    assert samples[0].masks is None  # no --masks-dir: segmented on the fly
    assert samples[0].ct == str(site / "ct" / "BDMAP_00000001" / "ct.nii.gz")  # elsewhere: absolute


def test_train_csv_with_title_case_header_imports_open_questions(site, tmp_path):
    out = tmp_path / "train.jsonl"
    report = import_deeptumorvqa(FIXTURES / "train_qa.csv", site / "ct", out, fmt="freeform")
    assert report.imported == 2 and len(report.skipped) == 1
    assert "train_qa.csv line 4 (train_qa_line4): missing question" in report.skipped[0]
    s = load_manifest(out)
    assert [x.options for x in s] == [None, None] and [x.final_answer for x in s] == ["2", "182.4"]
    assert s[0].benchmark["qid"] == "train_qa_line2" and s[0].benchmark["subcategory"] == "lesion counting"
    with pytest.raises(InputError):  # multiple choice needs mc_question / correct_option: none imported
        import_deeptumorvqa(FIXTURES / "train_qa.csv", site / "ct", tmp_path / "mc.jsonl")
    assert not (tmp_path / "mc.jsonl").exists()


def test_cli_dry_run_and_nothing_written_when_nothing_imports(site, tmp_path, capsys):
    from training.cli import main

    out = tmp_path / "dtv.jsonl"
    assert main(["import-deeptumorvqa", "--questions", str(FIXTURES / "test_qa.json"), "--images", str(site / "ct"),
                 "--out", str(out), "--dry-run"]) == 0
    assert "6 questions imported" in capsys.readouterr().out and not out.exists()
    assert main(["import-deeptumorvqa", "--questions", str(FIXTURES / "test_qa.json"), "--images", str(site / "ct"),
                 "--out", str(out), "--limit", "3"]) == 0
    before = out.read_bytes()
    assert len(load_manifest(out)) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["import-deeptumorvqa", "--questions", str(FIXTURES / "test_qa.json"), "--images", str(empty),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no question could be imported" in err and "no CT for BDMAP_00000001" in err
    assert out.read_bytes() == before  # the earlier manifest is untouched


def test_category_tables_aggregate_like_the_leaderboard():
    def row(cat, sub, ok):
        return {"subtask": "deeptumorvqa", "correct": ok,
                "benchmark": {"name": "DeepTumorVQA", "qid": "q", "category": cat, "subcategory": sub}}

    rows = [row("measurement", "organ volume measurement", True), row("recognition", "PDAC existence", True),
            row("recognition", "PDAC existence", False), row("recognition", "kidney cyst existence", True),
            {"subtask": "organ_position", "correct": True}]
    t = benchmark_tables(rows)["DeepTumorVQA"]
    assert list(t["categories"]) == ["recognition", "measurement"]  # the leaderboard's order
    # per category: subtypes weighted by their counts = the share of right answers (2 of 3), not (0.5 + 1) / 2
    assert t["categories"]["recognition"]["accuracy"] == pytest.approx(2 / 3)
    assert t["overall"] == {"n": 4, "correct": 3, "accuracy": 0.75}
    assert t["subcategories"]["PDAC existence"]["accuracy"] == 0.5


def test_evaluation_reports_its_categories_beside_table_1(site, tmp_path):
    """The demo model answers the imported questions through the product's pipeline; results.json and
    results.md carry DeepTumorVQA's categories next to Table 1's columns of the cohort samples."""
    from training.evaluate import run_evaluation
    from training.manifest import write_manifest

    dtv = tmp_path / "dtv.jsonl"
    import_deeptumorvqa(FIXTURES / "test_qa.json", site / "ct", dtv, masks_dir=site / "masks")
    cohort = [s for s in load_manifest(site / "cohort" / "train.jsonl") if s.subtask in ("organ_position", "count")]
    mixed = tmp_path / "mixed.jsonl"
    write_manifest(mixed, load_manifest(dtv) + [_rebased(s, site / "cohort", tmp_path) for s in cohort])
    res = run_evaluation(ROOT / "resources" / "demo_model", mixed, tmp_path / "eval", modes=["no_iir"],
                         max_new_tokens=64, device="cpu", plot=False, log_fn=None)
    table = res["modes"]["no_iir"]
    bench = table["benchmarks"]["DeepTumorVQA"]
    assert {c: v["n"] for c, v in bench["categories"].items()} == {
        "recognition": 2, "measurement": 1, "visual reasoning": 2, "medical reasoning": 1}
    assert bench["overall"]["n"] == 6
    assert bench["overall"]["correct"] == sum(r["correct"] for r in res["samples"] if r.get("benchmark"))
    assert table["columns"]["organ_position"]["n"] == len([s for s in cohort if s.subtask == "organ_position"]) > 0
    md = (tmp_path / "eval" / "results.md").read_text()
    assert "| Mode | Organ Pos." in md and "| Mode | Recognition | Measurement | Visual Reasoning | Medical Reasoning | Overall |" in md
    assert "6 questions (recognition 2, measurement 1, visual reasoning 2, medical reasoning 1)" in md
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["modes"]["no_iir"]["benchmarks"]["DeepTumorVQA"]["overall"]["n"] == 6


def _rebased(sample, old_root: Path, new_root: Path):
    """A cohort sample re-pointed (absolute paths) so that it can sit in a manifest elsewhere."""
    from dataclasses import replace

    absolute = lambda p: None if p is None else str((old_root / p).resolve())
    return replace(sample, ct=absolute(sample.ct), masks=absolute(sample.masks), parts=absolute(sample.parts),
                   root=new_root)


def test_markdown_without_benchmark_questions_is_unchanged():
    assert markdown({"modes": {"iir": {"columns": {}}}}) == ""


def test_markdown_of_a_benchmark_only_run_has_no_empty_table_1():
    from training.eval_report import markdown_table
    from training.evaluate import summarize

    rows = [{"id": f"q{i}", "mode": "iir", "subtask": "deeptumorvqa", "correct": ok, "token_f1": 1.0, "rounds": 1,
             "benchmark": {"name": "DeepTumorVQA", "qid": f"q{i}", "category": cat, "subcategory": "x"}}
            for i, (cat, ok) in enumerate([("recognition", True), ("medical reasoning", False), ("recognition", False)])]
    md = markdown_table(summarize(rows, ["iir"]))
    assert "Organ Pos." not in md
    assert md.startswith("DeepTumorVQA (its own categories")
    assert "| with IIR | 50.0 | 0.0 | 33.3 |" in md
