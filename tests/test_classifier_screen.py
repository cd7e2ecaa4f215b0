"""The classifier screen (inference/iir/classifier_screen.py): every present sub-region of the organs a
run examined gets the organ classifier's P(abnormal) in run.json, and a conclusion that reads as normal
while a screened region is flagged gets a "Discordant:" warning. On the bundled demo case (a pancreatic
head cancer) the shipped demo model's report rounds examine the pancreas as a whole; the screen must
carry the head's figure whatever the model concludes."""
from __future__ import annotations

from pathlib import Path

import pytest

from inference.iir.classifier_screen import DISCORDANT, discordance_warning, reads_normal, regions_to_screen
from inference.iir.conclusion import Conclusion
from inference.iir.rounds import ExaminedOrgan, Round
from inference.labels import merged_labels

ROOT = Path(__file__).resolve().parents[1]
MODEL, CASE = ROOT / "resources" / "demo_model", ROOT / "resources" / "demo_case"
T = merged_labels()


def _round(*mask_names: str) -> Round:
    organs = [ExaminedOrgan(T.by_name(n).id, n, n, T.by_name(n).id, n, 0.1, 4) for n in mask_names]
    return Round(index=2, prompt="", text="", token_ids=[], stop_reason="eos", organs=organs)


def test_regions_are_the_examined_organs_and_their_present_parts():
    ids = {n: T.by_name(n).id for n in ("pancreas", "pancreas_head", "pancreas_tail", "liver", "liver_segment_7",
                                        "stomach")}
    present = [ids["pancreas"], ids["pancreas_head"], ids["pancreas_tail"], ids["liver"], ids["liver_segment_7"],
               ids["stomach"]]
    got = regions_to_screen([_round("pancreas")], present, T.parent_or_self)
    assert got == sorted([ids["pancreas"], ids["pancreas_head"], ids["pancreas_tail"]])
    # a round that examined a sub-region (its own mask) screens its organ's other parts too
    got = regions_to_screen([_round("liver_segment_7")], present, T.parent_or_self)
    assert got == sorted([ids["liver"], ids["liver_segment_7"]])
    assert regions_to_screen([], present, T.parent_or_self) == []


@pytest.mark.parametrize("answer, normal", [("no abnormality", True), ("D. no lesion", True),
                                            ("Normal study of the digestive organs", True),
                                            ("pancreatic ductal adenocarcinoma, T2 N1 M1", False),
                                            ("B. pancreas", False)])
def test_reads_normal(answer, normal):
    assert reads_normal(Conclusion(reasoning="", answer=answer, found=True)) is normal


def test_discordance_warning_only_for_a_normal_conclusion_beside_a_flagged_region():
    normal = Conclusion(reasoning="", answer="no abnormality", found=True)
    tumor = Conclusion(reasoning="", answer="pancreatic ductal adenocarcinoma", found=True)
    screen = {"pancreas": 0.27, "pancreas_head": 0.94, "pancreas_tail": 0.01}
    w = discordance_warning(normal, screen)
    assert w.startswith(DISCORDANT) and "pancreas_head P(abnormal) 0.94" in w and "pancreas_tail" not in w
    assert discordance_warning(tumor, screen) is None
    assert discordance_warning(normal, {"pancreas": 0.27, "pancreas_head": 0.49}) is None


@pytest.mark.skipif(not (MODEL / "config.json").exists(), reason="the demo model is absent")
def test_demo_case_run_screens_the_pancreatic_head_and_warns_when_discordant():
    from inference.iir.decoding import SamplingConfig
    from inference.iir.loop import IIRSettings
    from inference.pipeline import AnalysisRequest, Pipeline
    from inference.run_record import RunRecord

    pipe = Pipeline.from_model_dir(MODEL, IIRSettings(max_rounds=3, sampling=SamplingConfig(max_new_tokens=160)))
    run = pipe.analyze(AnalysisRequest(ct_path=CASE / "ct.nii.gz", masks_path=CASE / "organs.nii.gz",
                                       parts_path=CASE / "parts.nii.gz", task="report"))
    examined = {o.mask_name for r in run.rounds for o in r.organs}
    assert "pancreas" in examined, examined
    assert {"pancreas", "pancreas_head", "pancreas_body", "pancreas_tail"} <= set(run.classifier_screen)
    assert all(0.0 <= p <= 1.0 for p in run.classifier_screen.values())
    # the shipped models (v0.4, v0.5b) put the head's lesion at P > 0.85 on this case
    assert run.classifier_screen["pancreas_head"] > 0.5
    warned = [w for w in run.warnings if w.startswith(DISCORDANT)]
    assert bool(warned) == reads_normal(run.conclusion), (run.conclusion.answer, warned)
    again = RunRecord.from_dict(run.to_dict())
    assert again.classifier_screen == run.classifier_screen
