"""A folder of CTs + a CSV of reports -> a manifest that validates and trains the way inference runs."""
from __future__ import annotations

import shutil

import pytest

from inference.errors import InputError
from tests.training_assets import tiny_assets

pytestmark = pytest.mark.slow  # builds the tiny cohort and model (~10-20 s)


def _site(tmp_path):
    a = tiny_assets()
    cts = tmp_path / "cts"
    masks = tmp_path / "masks"
    cts.mkdir()
    masks.mkdir()
    case = sorted((a.cohort / "cases").iterdir())[0]
    shutil.copy(case / "ct.nii.gz", cts / "p001.nii.gz")
    shutil.copy(case / "organs.nii.gz", masks / "p001.nii.gz")
    return a, cts, masks


def test_converter_writes_a_valid_manifest_whose_chain_matches_the_loop(tmp_path):
    from training.case_cache import CaseCache, Geometry
    from training.chain_plan import plan_chain
    from training.manifest import load_manifest
    from training.site_converter import convert_site

    a, cts, masks = _site(tmp_path)
    csv = tmp_path / "reports.csv"
    csv.write_text('ct,report,impression,organ_labels\n'
                   'p001.nii.gz,"A hypodense mass in the pancreatic head measures 30 mm. The liver shows no lesion. '
                   'Findings suggest pancreatic cancer.",pancreatic cancer,pancreas:1;liver:0\n', encoding="utf-8")
    out = tmp_path / "site" / "site.jsonl"
    assert convert_site(cts, csv, out, masks_dir=masks) == 1
    (s,) = load_manifest(out, check_files=True)
    assert s.case_id == "p001" and s.final_answer == "pancreatic cancer" and s.organ_labels == {"pancreas": 1, "liver": 0}
    assert s.answer.endswith("Thus, the answer is pancreatic cancer.")
    assert s.roi_organs == ("pancreas", "liver") and s.masks_file.is_file()  # head falls back to the pancreas mask
    # the IIR loop, fed this chain, examines exactly the chain's organs and stops after round 2
    cache = CaseCache(tmp_path / "cache", Geometry((16, 64, 64), (4, 16, 16), 4))
    counts = cache.load(cache.ensure(s.case_id, s.ct_file, s.masks_file, None)).counts
    plan = plan_chain(s.question, [(r.answer, r.attend) for r in s.chain], counts, 8, 4, 0)
    assert plan.agrees and plan.rounds == 2


def test_masks_default_to_segmentation_on_the_fly(tmp_path):
    from training.manifest import load_manifest
    from training.site_converter import convert_site

    _, cts, _ = _site(tmp_path)
    csv = tmp_path / "r.csv"
    csv.write_text("ct,report\np001.nii.gz,No focal lesion in the liver. Normal study.\n", encoding="utf-8")
    convert_site(cts, csv, tmp_path / "m.jsonl")
    (s,) = load_manifest(tmp_path / "m.jsonl")
    assert s.masks is None and s.masks_file is None and s.final_answer == "Normal study"


@pytest.mark.parametrize("content, message", [
    ("image,text\nx,y\n", "lacks column(s) ct, report"),
    ("ct,report\nmissing.nii.gz,Some text.\n", "line 2: CT"),
    ("ct,report\np001.nii.gz,\n", "line 2: empty report"),
    ("ct,report,organ_labels\np001.nii.gz,Text.,pancreas:2\n", "line 2: organ_labels item"),
])
def test_bad_csv_names_the_line(tmp_path, content, message):
    from training.site_converter import convert_site

    _, cts, _ = _site(tmp_path)
    csv = tmp_path / "bad.csv"
    csv.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as err:
        convert_site(cts, csv, tmp_path / "out.jsonl")
    assert str(csv) in str(err.value) and message in str(err.value)
