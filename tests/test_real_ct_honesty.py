"""The real abdominal CT of ../shared/data with the shipped demo model (trained on phantoms): the run
and its report say the CT is outside the model's training domain, mark every round that names an
organ the case has no mask for, cut the key images through each examined organ (the most abnormal
first) and say which rounds saw the global view only. Whatever the model answers (v0.4 or later)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUMORCHAIN_SHARED_DATA", ROOT.parent / "shared" / "data"))
CT, SEG = DATA / "example_ct_sm.nii.gz", DATA / "example_seg.nii.gz"
MODEL = ROOT / "resources" / "demo_model"

pytestmark = pytest.mark.skipif(not (CT.exists() and SEG.exists() and (MODEL / "config.json").exists()),
                                reason=f"the shared real CT ({CT}) or the demo model is absent")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from inference.ct_io import load_ct
    from inference.iir.decoding import SamplingConfig
    from inference.iir.loop import IIRSettings
    from inference.pipeline import AnalysisRequest, Pipeline
    from inference.report import Review, export_report
    from inference.segmentation.expert import make_expert

    pipe = Pipeline.from_model_dir(MODEL, IIRSettings(max_rounds=3, sampling=SamplingConfig(max_new_tokens=160)))
    run = pipe.analyze(AnalysisRequest(ct_path=CT, masks_path=SEG, task="report"))
    ct = load_ct(CT)
    masks = make_expert("precomputed", path=SEG).segment(ct)
    out = tmp_path_factory.mktemp("real_ct")
    return run, ct, masks, export_report(run, Review.for_run(run), ct, masks, out, formats={"json", "html", "pdf"})


def test_a_real_ct_is_outside_the_phantom_models_domain(exported):
    run, _ct, _masks, exp = exported
    assert run.domain["in_domain"] is False
    assert any("trained on synthetic phantoms only" in r for r in run.domain["reasons"])
    rep = json.loads(exp.paths["report_json"].read_text())
    assert "trained on synthetic phantoms only" in rep["domain_warning"]
    assert "trained on synthetic phantoms only" in exp.paths["html"].read_text(encoding="utf-8")


def test_rounds_naming_an_organ_without_a_mask_are_marked(exported):
    from inference.iir.unseen import unmasked_organs, unseen_in

    run, _ct, masks, exp = exported
    missing = unmasked_organs(run.rounds)
    assert all(masks.table.by_name(n).id not in masks.present_ids() for n in missing)
    rep = json.loads(exp.paths["report_json"].read_text())
    for r, entry in zip(run.rounds, rep["rounds"]):
        assert entry["unseen"] == [n for n in r.named_organs if n in missing] == unseen_in(r, run.rounds)
        for n in entry["unseen"]:
            assert any(w.startswith(f"Round {r.index}: Not seen") and n in w for w in run.warnings)


def test_key_images_follow_the_examined_organs(exported):
    run, _ct, masks, exp = exported
    rep = json.loads(exp.paths["report_json"].read_text())
    probs = [o["abnormal_prob"] for o in rep["organ_images"]]
    examined = {o.mask_label for r in run.rounds for o in r.organs}
    assert {o["label_id"] for o in rep["organ_images"]} == {lid for lid in examined if masks.mask(lid).any()}
    assert probs == sorted(probs, reverse=True)
    for o in rep["organ_images"]:
        assert o["key_image"]["slice_index"] == int(np.argmax(masks.mask(o["label_id"]).sum(axis=(0, 1))))
    for r, entry in zip(run.rounds, rep["rounds"]):
        if not r.organs:
            assert entry["provenance"].startswith("global view (no organ tokens)")
            assert all(ri != r.index for ri, _ in rep["conclusion"]["regions"])
        else:
            top = max(r.organs, key=lambda o: o.abnormal_prob).mask_label
            assert entry["key_image"]["labels"][0] == top
