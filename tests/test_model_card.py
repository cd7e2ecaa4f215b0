"""The model card: the shipped demo model's card states the question forms its training data asked
(checked against samples the cohort generator writes now), a folder without a card falls back to the
documented default and says so, a broken card is refused naming the file and the field, and the
training-domain check tells a phantom from a real CT and a trained spacing from another."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from inference.ct_volume import CTVolume
from inference.errors import InputError
from inference.model.model_card import CARD_FILE, domain_check, load_model_card

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "resources" / "demo_model"
DEMO_CASE = ROOT / "resources" / "demo_case"


@pytest.fixture(scope="module")
def cohort_samples():
    """Samples of 16 freshly generated cohort cases (every subtask appears), and the demo case's."""
    from training.cohort.case import generate_case
    from training.cohort.generate import case_seed
    from training.cohort.vqa import case_samples
    from training.manifest import load_manifest

    out = []
    for i in range(16):
        out += case_samples(generate_case(case_seed(7, i), f"c{i}", shape=(64, 64, 32)).truth, ".")
    return out + load_manifest(DEMO_CASE / "samples.jsonl")


def test_every_question_the_cohort_asks_follows_a_form_of_the_card(cohort_samples):
    from training.demo_model.model_card import demo_card
    from inference.model.model_card import card_from_dict

    card = card_from_dict(demo_card({"cases": 1, "shape": [128, 128, 64], "spacing": None}))
    subtasks = {s.subtask for s in cohort_samples}
    assert {"T", "N", "M", "shape", "boundary", "density", "count", "others", "organ_position",
            "tumor_position", "report"} <= subtasks
    for s in cohort_samples:
        assert card.match_question(s.question), f"{s.subtask}: {s.question!r} follows no form of the card"
    # and the card's own steps ask exactly such questions, option lists included
    steps = {st.id: st for task in card.tasks.values() for st in task}
    for s in cohort_samples:
        if s.subtask in ("shape", "boundary", "density"):
            assert set(s.options) == set(steps[s.subtask].options)
        if s.subtask in ("T", "N", "M"):
            organ = next(o for o in ("liver", "pancreas", "stomach", "colorectum", "esophagus")
                         if s.roi_organs and s.roi_organs[0] == o)
            trained = steps[s.subtask].options["by_organ"][organ]
            # an organ with two staging systems (pancreas: exocrine N0-N2, NET N0-N1) offers the common one
            assert set(s.options) <= set(trained) or organ == "pancreas"


def test_the_shipped_card_is_the_builders_card():
    from training.demo_model.model_card import demo_card

    shipped = json.loads((DEMO_MODEL / CARD_FILE).read_text())
    rebuilt = demo_card({"cases": 360, "shape": [128, 128, 64], "spacing": None,
                         "generator_version": shipped["domain"]["description"].split("generator ")[1].split(":")[0]},
                        version=shipped["version"])
    assert rebuilt["tasks"] == shipped["tasks"] and rebuilt["question_forms"] == shipped["question_forms"]
    assert rebuilt["domain"]["grids"] == shipped["domain"]["grids"] == [{"shape": [128, 128, 64],
                                                                        "spacing_mm": [3.0, 3.0, 4.0]}]
    card = load_model_card(DEMO_MODEL)
    assert not card.is_default and card.domain.source == "synthetic_phantom"
    assert [s.id for s in card.steps("tnm")] == ["T", "N", "M"]
    assert [s.id for s in card.steps("attributes")] == ["shape", "boundary", "density", "count", "others"]
    assert [s.id for s in card.steps("localization")] == ["organ", "sub_region"]


def test_the_builds_export_writes_the_card(tmp_path):
    """build() calls write_model_card after exporting (training/demo_model/build.py); the writer
    takes the cohort summary as the build has it, fine grid included."""
    from training.demo_model.model_card import write_model_card

    summary = {"cases": 10, "shape": [128, 128, 64], "spacing": None, "fine_shape": [192, 192, 80], "fine_every": 3}
    path = write_model_card(tmp_path, summary, "0.5")
    card = load_model_card(tmp_path)
    assert path.name == CARD_FILE and card.version == "0.5"
    assert [g.spacing_mm for g in card.domain.grids] == [(3.0, 3.0, 4.0), (2.0, 2.0, 3.2)]
    assert "write_model_card(out," in (ROOT / "training" / "demo_model" / "build.py").read_text()


def test_a_folder_without_a_card_gets_the_default_and_says_so(tmp_path):
    from inference.iir.prompts import task_question

    card = load_model_card(tmp_path)
    assert card.is_default and "no model_card.json" in card.note
    assert card.steps("tnm")[0].template == task_question("tnm")
    assert card.match_question("anything at all?") == ""  # no forms declared: nothing can be said
    assert domain_check(card, _ct((1.0, 1.0, 1.0), (100, 100, 10))) == []


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(schema="other/1"), "schema"),
    (lambda d: d["tasks"].update(segmentation={"steps": []}), "tasks.segmentation"),
    (lambda d: d["tasks"]["tnm"]["steps"][0].pop("template"), "tasks.tnm.steps[0].template"),
    (lambda d: d["tasks"]["attributes"]["steps"][0].update(options=["only one"]), "tasks.attributes.steps[0].options"),
    (lambda d: d["domain"]["grids"][0].update(spacing_mm=[3, -3, 4]), "domain.grids[0].spacing_mm"),
])
def test_a_broken_card_is_refused_naming_the_file_and_field(tmp_path, mutate, field):
    data = json.loads((DEMO_MODEL / CARD_FILE).read_text())
    mutate(data)
    (tmp_path / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        load_model_card(tmp_path)
    assert str(tmp_path / CARD_FILE) in str(err.value) and field.split("[")[0] in str(err.value)


def test_not_json_is_refused(tmp_path):
    (tmp_path / CARD_FILE).write_text("{not json")
    with pytest.raises(InputError, match=re.escape(str(tmp_path / CARD_FILE))):
        load_model_card(tmp_path)


def _ct(spacing, shape, description="") -> CTVolume:
    return CTVolume(hu=np.zeros(shape, np.int16), affine=np.diag([*spacing, 1.0]), source_path=Path("x.nii.gz"),
                    series_description=description)


def test_domain_check_phantom_spacing_and_field_of_view():
    card = load_model_card(DEMO_MODEL)
    phantom = "tumorchain synthetic CT HU"
    assert domain_check(card, _ct((3.0, 3.0, 4.0), (128, 128, 64), phantom)) == []
    real = domain_check(card, _ct((3.0, 3.0, 4.0), (128, 128, 64), "ABDOMEN PORTAL VENOUS"))
    assert len(real) == 1 and "synthetic phantoms" in real[0]
    fine = domain_check(card, _ct((2.0, 2.0, 3.2), (192, 192, 80), phantom))  # the demo case's grid
    assert len(fine) == 1 and "2 x 2 x 3.2 mm" in fine[0] and "3 x 3 x 4 mm" in fine[0]
    clinical = domain_check(card, _ct((0.78, 0.78, 1.25), (512, 512, 120), "ABDOMEN"))
    assert len(clinical) == 3 and "field of view" in clinical[2]
    # whole millimetres keep their zeros: the real test CT's 30 slices at 3 mm are 90 mm, not "9 mm"
    short = domain_check(card, _ct((3.0, 3.0, 3.0), (122, 101, 30), "ABDOMEN"))
    assert "field of view 366 x 303 x 90 mm" in short[-1] and "384 x 384 x 256 mm" in short[-1], short


def test_a_typed_question_is_matched_against_the_forms():
    card = load_model_card(DEMO_MODEL)
    assert card.match_question("What is the T stage of the pancreas tumor? Options: A. T1 B. T2 C. T3")
    assert card.match_question("what is the   N stage of the pancreatic head tumor?")
    assert card.match_question("Which organ harbours the dominant lesion?")
    assert card.match_question("Predict the TNM stage of the pancreas tumor in this abdominal CT.") is None
    assert card.match_question("Is there a lesion in the liver?") is None
