"""`tumorchain analyze` / `batch` end to end with a real (tiny, random) TumorChainModel and small
NIfTI cases; user mistakes give one line and exit code 2, never a traceback."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from inference.cli import main
from inference.ct_io import load_ct
from inference.run_record import RunRecord
from inference.weight_hash import model_weight_hash

from iir_fakes import one_torch_thread, write_case, write_tiny_model  # noqa: F401

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return write_case(tmp_path_factory.mktemp("case") / "case_a")


def _run(argv, capsys):
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_analyze_writes_a_valid_run_record_and_prints_each_round(model_dir, case, tmp_path, capsys):
    ct, masks = case
    out_file = tmp_path / "run.json"
    rc, out, err = _run(["analyze", ct, "--masks", masks, "--model", model_dir, "--out", out_file,
                         "--question", "Is there a lesion in the pancreas?", "--max-new-tokens", "8"], capsys)
    assert rc == 0, err
    rec = RunRecord.load(out_file)
    assert rec.case.case_id == "ct" and rec.case.content_hash == load_ct(ct).content_hash()
    assert rec.case.shape == [48, 40, 24] and rec.case.spacing_mm == [4.0, 4.0, 5.0]
    assert rec.model.weight_hash == model_weight_hash(model_dir)[0]
    assert rec.segmentation.backend.startswith("precomputed") and rec.segmentation.mask_source == str(masks)
    assert set(rec.segmentation.labels_present) == {"spleen", "liver", "pancreas"}
    # the question names the pancreas: round 2 examines it (eq. 6) with its classifier probability
    assert len(rec.rounds) >= 2 and rec.rounds[0].organs == []
    org = rec.rounds[1].organs[0]
    assert org.name == "pancreas" and org.n_tokens == 4 and 0.0 <= org.abnormal_prob <= 1.0
    assert all(0 < r.timings.generated_tokens <= 8 for r in rec.rounds)
    assert rec.timings["encode_ms"] > 0 and rec.timings["total_ms"] >= rec.timings["iir_ms"]
    assert out.count("== Round") == len(rec.rounds) and rec.rounds[0].text in out
    assert "examined: pancreas (P abnormal" in out and "Conclusion:" in out
    # the file round-trips exactly
    assert RunRecord.from_dict(json.loads(out_file.read_text())).to_dict() == rec.to_dict()


def test_analyze_streams_tokens_and_task_prompts(model_dir, case, tmp_path, capsys):
    ct, masks = case
    rc, out, err = _run(["analyze", ct, "--masks", masks, "--model", model_dir, "--out", tmp_path / "r.json",
                         "--task", "tnm", "--organ", "liver", "--stream", "--max-new-tokens", "6",
                         "--temperature", "0.7", "--seed", "5"], capsys)
    assert rc == 0, err
    rec = RunRecord.load(tmp_path / "r.json")
    assert rec.task == "tnm" and rec.question == "Predict the TNM stage of the liver tumor in this abdominal CT."
    assert rec.settings.temperature == 0.7 and rec.settings.seed == 5
    assert rec.rounds[1].organs[0].name == "liver"
    assert all(r.text in out for r in rec.rounds)


@pytest.mark.parametrize("argv_tail, message", [
    (["--question", "Q?", "--ct-missing"], None),  # argparse: unknown option
    (["--question", "Q?", "--task", "tnm"], None),  # argparse: not both
    (["--question", "Q?", "--organ", "liver"], "--organ narrows a --task prompt"),
    (["--question", "   "], "the question is empty"),
    (["--task", "staging"], None),  # argparse: invalid choice
    (["--question", "Q?", "--max-rounds", "0"], None),
])
def test_option_mistakes_exit_2(model_dir, case, tmp_path, capsys, argv_tail, message):
    ct, masks = case
    rc, out, err = _run(["analyze", ct, "--masks", masks, "--model", model_dir, "--out", tmp_path / "r.json",
                         *argv_tail], capsys)
    assert rc == 2
    assert "Traceback" not in err
    if message:
        assert message in err


def test_file_mistakes_exit_2_with_one_line_naming_the_file(model_dir, case, tmp_path, capsys):
    ct, masks = case
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti at all")
    (tmp_path / "empty_model").mkdir()
    cases = [
        (["analyze", tmp_path / "nope.nii.gz", "--model", model_dir], "nope.nii.gz"),
        (["analyze", ct, "--masks", tmp_path / "nomask.nii.gz", "--model", model_dir], "nomask.nii.gz"),
        (["analyze", ct, "--masks", masks, "--model", tmp_path / "no_model"], "no_model"),
        (["analyze", ct, "--masks", masks, "--model", tmp_path / "empty_model"], "empty_model"),
        (["analyze", tmp_path / "broken.nii.gz", "--masks", masks, "--model", model_dir], "broken.nii.gz"),
        (["analyze", ct, "--masks", tmp_path / "broken.nii.gz", "--model", model_dir], "broken.nii.gz"),
    ]
    for argv, name in cases:
        out_file = tmp_path / "r.json"
        rc, out, err = _run([*argv, "--out", out_file, "--question", "Q?"], capsys)
        assert rc == 2, (argv, err)
        assert err.startswith("tumorchain: error: ") and err.count("\n") == 1, err
        assert name in err and "Traceback" not in err
        assert not out_file.exists()
    rc, _, err = _run(["analyze", ct, "--masks", masks, "--model", model_dir, "--out", tmp_path,
                       "--question", "Q?"], capsys)
    assert rc == 2 and "--out is a folder" in err


def test_batch_over_a_csv_goes_on_past_a_bad_case(model_dir, case, tmp_path, capsys):
    ct, masks = case
    (tmp_path / "broken.nii.gz").write_bytes(b"garbage")
    table = tmp_path / "cases.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ct", "masks", "case_id", "task"])
        w.writerow([ct, masks, "good", "localization"])
        w.writerow(["broken.nii.gz", masks, "bad", ""])  # relative to the CSV's folder
    rc, out, err = _run(["batch", table, "--model", model_dir, "--out-dir", tmp_path / "runs",
                         "--question", "Any lesion in the liver?", "--max-new-tokens", "5"], capsys)
    assert rc == 1
    rows = {r["case_id"]: r for r in csv.DictReader((tmp_path / "runs" / "summary.csv").open())}
    assert rows["good"]["status"] == "ok" and rows["bad"]["status"] == "failed"
    assert "broken.nii.gz" in rows["bad"]["error"]
    good = RunRecord.load(tmp_path / "runs" / "good.json")
    assert good.task == "localization" and good.case.case_id == "good"  # the row's task wins
    assert not (tmp_path / "runs" / "bad.json").exists()
    assert "1 of 2 case(s) analyzed" in out and "cases" in err  # the progress bar is on stderr


def test_batch_over_a_cohort_folder_with_the_synthetic_backend(model_dir, tmp_path, capsys):
    write_case(tmp_path / "cohort" / "c1")
    write_case(tmp_path / "cohort" / "c2", organs=(5,))
    rc, out, err = _run(["batch", tmp_path / "cohort", "--model", model_dir, "--out-dir", tmp_path / "runs",
                         "--segmentation", "synthetic", "--task", "report", "--max-new-tokens", "4",
                         "--max-rounds", "2"], capsys)
    assert rc == 0, err
    r1, r2 = RunRecord.load(tmp_path / "runs" / "c1.json"), RunRecord.load(tmp_path / "runs" / "c2.json")
    assert r1.segmentation.backend == "synthetic" and r1.case.content_hash != r2.case.content_hash
    assert r1.segmentation.mask_hash != r2.segmentation.mask_hash
    assert len(r1.rounds) <= 2


def test_batch_mistakes_exit_2(model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(["batch", tmp_path / "empty", "--model", model_dir, "--out-dir", tmp_path / "o",
                       "--task", "tnm"], capsys)
    assert rc == 2 and "no .nii/.nii.gz files or case folders" in err
    bad_csv = tmp_path / "x.csv"
    bad_csv.write_text("path,question\na.nii.gz,Q\n")
    rc, _, err = _run(["batch", bad_csv, "--model", model_dir, "--out-dir", tmp_path / "o", "--task", "tnm"], capsys)
    assert rc == 2 and "lacks column(s) ct" in err and "x.csv" in err


def test_batch_reads_a_case_list_as_a_spreadsheet_exports_it(tmp_path):
    from inference.cli import read_cases

    listing = tmp_path / "cases.csv"  # ';' between columns, Windows code page, capitalised headers
    listing.write_bytes("CT;Case_ID;Question\r\nscans/a.nii.gz;Müller_1;Is the liver normal?\r\n".encode("cp1252"))
    (case,) = read_cases(listing)
    assert case.ct == tmp_path / "scans" / "a.nii.gz" and case.case_id == "Müller_1"
    assert case.question == "Is the liver normal?"


@pytest.mark.skipif(not (SHARED_DATA / "example_ct_sm.nii.gz").exists(), reason="shared example CT not present")
def test_analyze_the_real_example_ct_with_its_totalsegmentator_masks(model_dir, tmp_path, capsys):
    rc, out, err = _run(["analyze", SHARED_DATA / "example_ct_sm.nii.gz", "--masks", SHARED_DATA / "example_seg.nii.gz",
                         "--model", model_dir, "--out", tmp_path / "r.json", "--max-new-tokens", "4",
                         "--question", "Is the liver or the left kidney abnormal?"], capsys)
    assert rc == 0, err
    rec = RunRecord.load(tmp_path / "r.json")
    assert rec.case.shape == [122, 101, 30] and "liver" in rec.segmentation.labels_present
    examined = [o.name for o in rec.rounds[1].organs] + [s.name for s in rec.rounds[0].skipped_organs]
    assert {"liver", "kidney_left"} <= set(examined)


def test_pipeline_progress_encoding_cache_and_cancel(model_dir, case):
    import threading

    from inference.errors import Cancelled
    from inference.iir.decoding import SamplingConfig
    from inference.iir.loop import IIRSettings
    from inference.pipeline import AnalysisRequest, Callbacks, Pipeline

    ct, masks = case
    pipe = Pipeline.from_model_dir(model_dir, IIRSettings(max_rounds=3, sampling=SamplingConfig(max_new_tokens=6)),
                                   device="cpu")
    seen: list[float] = []
    req = AnalysisRequest(ct_path=ct, masks_path=masks, question="Is the liver abnormal?")
    first = pipe.analyze(req, Callbacks(progress=lambda f, msg: seen.append(f)))
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] == 1.0
    second = pipe.analyze(req)  # same CT and masks: the encoding is reused
    assert second.timings["encode_ms"] < first.timings["encode_ms"] / 10
    assert [r.token_ids for r in second.rounds] == [r.token_ids for r in first.rounds]
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        pipe.analyze(req, Callbacks(on_text=lambda i, d: cancel.set()), cancel=cancel)
    third = pipe.analyze(req)  # a cancelled run leaves the pipeline usable
    assert [r.token_ids for r in third.rounds] == [r.token_ids for r in first.rounds]
    # settings go in per call; the pipeline's own stay the default of the next call
    short = pipe.analyze(req, settings=IIRSettings(max_rounds=1, sampling=SamplingConfig(max_new_tokens=2)))
    assert len(short.rounds) == 1 and (short.settings.max_rounds, short.settings.max_new_tokens) == (1, 2)
    assert len(short.rounds[0].token_ids) <= 2
    assert pipe.analyze(req).settings.max_rounds == 3 and pipe.settings.max_rounds == 3


@pytest.mark.slow
def test_evaluate_is_a_tumorchain_subcommand_and_scores_the_demo_model(tmp_path, capsys, one_torch_thread):
    """`tumorchain evaluate` (registered by training/ as an entry point) runs the evaluation on a
    manifest and writes results.json / results.md; mistakes name the file and exit 2."""
    from training.cohort.generate import generate_cohort

    model = Path(__file__).resolve().parents[1] / "resources" / "demo_model"
    generate_cohort(tmp_path / "cohort", 2, 5, (128, 128, 64), None, 1, log=None)
    manifest = next(p for p in (tmp_path / "cohort" / f"{s}.jsonl" for s in ("test", "val", "train"))
                    if p.read_text().strip())
    code, out, err = _run(["evaluate", "--model", str(model), "--manifest", str(manifest), "--out",
                           str(tmp_path / "res"), "--subtasks", "organ_position", "--limit", "1",
                           "--max-new-tokens", "48", "--no-plot"], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    assert results["modes"]["iir"]["columns"]["organ_position"]["n"] == 1
    assert "| with IIR |" in out and (tmp_path / "res" / "results.md").is_file()
    code, _, err = _run(["evaluate", "--model", str(model), "--manifest", str(tmp_path / "nope.jsonl"),
                         "--out", str(tmp_path / "r2")], capsys)
    assert code == 2 and "nope.jsonl" in err
    code, _, err = _run(["evaluate", "--model", str(model), "--manifest", str(manifest), "--out",
                         str(tmp_path / "r3"), "--cot-eval"], capsys)
    assert code == 2 and "--judge-url" in err


def test_a_case_folder_runs_with_its_own_masks_and_parts_and_exports_without_options(model_dir, tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    folder = tmp_path / "case_b"
    ct, organs = write_case(folder)
    img = nib.load(organs)
    labels = np.asanyarray(img.dataobj)
    parts = np.where(labels == 5, 101, 0).astype(np.uint8)  # the liver is all Couinaud segment I
    nib.save(nib.Nifti1Image(parts, img.affine), folder / "parts.nii.gz")
    out_file = tmp_path / "run.json"
    rc, out, err = _run(["analyze", folder, "--model", model_dir, "--out", out_file, "--max-new-tokens", "4",
                         "--question", "Is the liver abnormal?"], capsys)
    assert rc == 0, err
    rec = RunRecord.load(out_file)
    assert rec.case.source_path == str(ct)
    assert rec.segmentation.mask_source == str(organs)
    assert rec.segmentation.details["parts_source"] == str(folder / "parts.nii.gz")
    # batch over the folder's parent treats the same folder the same way: its own masks, no segmentation
    rc, _, err = _run(["batch", tmp_path, "--model", model_dir, "--out-dir", tmp_path / "runs", "--max-new-tokens", "4",
                       "--question", "Is the liver abnormal?"], capsys)
    assert rc == 0, err
    batch = RunRecord.load(tmp_path / "runs" / "case_b.json")
    assert batch.segmentation.mask_hash == rec.segmentation.mask_hash
    # the export reloads the recorded masks and parts: no --masks needed, and the hash matches
    rc, out, err = _run(["export", out_file, "--out", tmp_path / "report", "--formats", "json"], capsys)
    assert rc == 0, err
    assert list((tmp_path / "report").glob("*.json"))
    # moved masks: the message says what to pass
    (folder / "parts.nii.gz").unlink()
    rc, _, err = _run(["export", out_file, "--out", tmp_path / "report2", "--formats", "json"], capsys)
    assert rc == 2 and "parts.nii.gz" in err and "--parts" in err


def test_series_picks_one_series_of_a_dicom_folder(model_dir, tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    from dicom_factory import phantom, write_series

    affine = np.diag([-4.0, -4.0, 5.0, 1.0])
    write_series(tmp_path / "study", phantom((24, 20, 12)), affine, series_uid="1.2.826.0.1.1",
                 name=lambda k: f"A{k:03d}")
    write_series(tmp_path / "study", phantom((24, 20, 8), seed=1), affine, series_uid="1.2.826.0.1.2",
                 name=lambda k: f"B{k:03d}")

    def masks_for(uid):  # a liver box on that series' own grid
        v = load_ct(tmp_path / "study", uid)
        labels = np.zeros(v.hu.shape, np.uint8)
        labels[6:14, 6:14, 2:6] = 5
        path = tmp_path / f"masks_{uid[-1]}.nii.gz"
        nib.save(nib.Nifti1Image(labels, v.affine), path)
        return path

    argv = ["analyze", tmp_path / "study", "--model", model_dir, "--max-new-tokens", "2", "--max-rounds", "1",
            "--task", "report"]
    rc, _, err = _run([*argv, "--masks", masks_for("1.2.826.0.1.1"), "--out", tmp_path / "default.json"], capsys)
    assert rc == 0, err
    assert RunRecord.load(tmp_path / "default.json").case.shape[2] == 12  # the largest series by default
    rc, _, err = _run([*argv, "--series", "1.2.826.0.1.2", "--masks", masks_for("1.2.826.0.1.2"),
                       "--out", tmp_path / "picked.json"], capsys)
    assert rc == 0, err
    picked = RunRecord.load(tmp_path / "picked.json")
    assert picked.case.shape[2] == 8 and picked.case.series_uid == "1.2.826.0.1.2"
