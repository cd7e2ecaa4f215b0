"""A standard task runs as the model card's trained questions (inference/iir/task_plan.py): each step
a chain of the real IIR loop (scripted answers), composed into one answer whose parts name their
rounds; and through the real pipeline with a tiny model, run.json records the steps, the card, the
training-domain check and whether a typed question follows a trained form."""
from __future__ import annotations

from pathlib import Path

import pytest

from inference.errors import InputError
from inference.iir.loop import IIRLoop, IIRSettings
from inference.iir.task_plan import pick_option, run_task
from inference.labels import merged_labels
from inference.model.model_card import load_model_card
from tests.iir_fakes import FakeFeatures, ScriptedGenerator

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "resources" / "demo_model"
TABLE = merged_labels()
PRESENT = {"liver": 5, "pancreas": 7, "stomach": 6, "spleen": 1, "pancreas_head": 111, "pancreas_body": 112}


def said(reasoning: str, answer: str) -> str:
    return f"Reasoning Process: {reasoning} Summary: so. Thus, the answer is {answer}."


# each step: round 1 (global view) names the organ, round 2 (its tokens) answers
ANSWERS = {
    "organ": [said("A focal abnormality is suspected in the pancreas.", "B. pancreas"),
              said("On the local views, the pancreas shows a 33 mm hypodense lesion.", "B. pancreas")],
    "sub_region": [said("A lesion is seen in the pancreas; the pancreatic head and pancreatic body need the local view.",
                        "pancreatic body"),
                   said("On the local views, the pancreatic head holds the lesion centre.", "pancreatic head")],
    "T": [said("A tumor is seen in the pancreas.", "B. T2"), said("The local view of the pancreas shows 45 mm.", "C. T3")],
    "N": [said("The primary tumor lies in the pancreas.", "A. N0"), said("Around the pancreas, one node.", "B. N1")],
    "M": [said("The primary tumor lies in the pancreas.", "A. M0"), said("Beyond the pancreas, nothing.", "A. M0")],
    "shape": [said("A lesion in the pancreas.", "A. round"), said("The pancreas shows bulges.", "C. lobulated")],
    "boundary": [said("A lesion in the pancreas.", "A. well-defined"), said("The pancreas margin.", "B. ill-defined")],
    "density": [said("A lesion in the pancreas.", "A. hypodense"), said("The pancreas lesion.", "A. hypodense")],
    "count": [said("In the pancreas, two lesions.", "2"), said("The pancreas shows one lesion.", "1")],
    "others": [said("In the pancreas, none.", "none"), said("The pancreas shows duct dilatation.", "duct dilatation")],
}


def asker(answers=ANSWERS):
    """ask(step id, question) running the real IIR loop on scripted answers; rounds numbered through the run."""
    rounds, asked = [], []
    features = FakeFeatures({lid: 500 for lid in PRESENT.values()}, probs={7: 0.9, 5: 0.1})

    def ask(step_id: str, question: str):
        asked.append((step_id, question))
        loop = IIRLoop(ScriptedGenerator(list(answers[step_id])), features, IIRSettings(max_rounds=3), table=TABLE)
        offset = len(rounds)

        def on_round(rnd):
            rnd.index += offset
            rnd.step = step_id
            rounds.append(rnd)

        return loop.run(question, on_round=on_round)

    return ask, asked, rounds


@pytest.fixture(scope="module")
def card():
    return load_model_card(DEMO_MODEL)


def test_tnm_with_an_organ_asks_t_n_and_m_and_composes_the_stage(card):
    ask, asked, rounds = asker()
    out = run_task(card, "tnm", "pancreas", ask, TABLE, list(PRESENT))
    assert [a[0] for a in asked] == ["T", "N", "M"]
    assert asked[0][1] == "What is the T stage of the pancreas tumor? Options: A. T1 B. T2 C. T3"
    assert asked[1][1] == "What is the N stage of the pancreas tumor? Options: A. N0 B. N1 C. N2"
    assert out.conclusion.answer == "T3 N1 M0" and out.conclusion.found
    assert [s.rounds for s in out.steps] == [[1, 2], [3, 4], [5, 6]]
    assert [r.index for r in rounds] == list(range(1, 7)) and [r.step for r in rounds] == list("TTNNMM")
    # each part traceable to its rounds; each chain starts with a global-view round (no organ tokens)
    assert "T3 from rounds 1-2" in out.conclusion.summary and "M0 from rounds 5-6" in out.conclusion.summary
    assert [bool(r.organs) for r in rounds] == [False, True] * 3
    assert all(o.name == "pancreas" for r in rounds for o in r.organs)


def test_tnm_without_an_organ_first_asks_where_the_lesion_is(card):
    ask, asked, _ = asker()
    out = run_task(card, "tnm", None, ask, TABLE, list(PRESENT))
    assert [a[0] for a in asked] == ["organ", "T", "N", "M"]
    # the options: the card's candidate organs this case has masks for (display names), then "no lesion"
    assert asked[0][1] == "Which organ harbours the dominant lesion? Options: A. liver B. pancreas C. stomach D. no lesion"
    assert out.steps[0].value == "pancreas" and out.conclusion.answer == "T3 N1 M0"
    assert out.question.startswith("TNM stage prediction of the pancreas: Which organ")


def test_no_lesion_found_asks_no_stage(card):
    # the options name the organs, so round 2 examines them all
    answers = dict(ANSWERS, organ=[said("No definite focal mass is seen.", "D. no lesion"),
                                   said("On the local views, every candidate shows no focal lesion.", "D. no lesion")])
    ask, asked, _ = asker(answers)
    out = run_task(card, "tnm", None, ask, TABLE, list(PRESENT))
    assert [a[0] for a in asked] == ["organ"]
    assert out.conclusion.answer == "no lesion located" and not out.conclusion.found
    assert out.notes and "were not asked" in out.notes[0]


def test_attributes_are_shape_boundary_density_count_and_others(card):
    ask, asked, _ = asker()
    out = run_task(card, "attributes", "pancreas", ask, TABLE, list(PRESENT))
    assert [a[0] for a in asked] == ["shape", "boundary", "density", "count", "others"]
    assert asked[0][1] == ("What is the shape of the largest lesion in the pancreas? "
                           "Options: A. round B. oval C. lobulated D. irregular")
    assert asked[3][1] == "How many focal lesions are seen in the pancreas?"
    assert out.conclusion.answer == ("shape: lobulated; boundary: ill-defined; density: hypodense; count: 1; "
                                     "other features: duct dilatation")


def test_localization_is_the_organ_then_its_sub_region(card):
    ask, asked, _ = asker()
    out = run_task(card, "localization", None, ask, TABLE, list(PRESENT))
    assert [a[0] for a in asked] == ["organ", "sub_region"]
    assert asked[1][1] == "Where is the lesion located in the pancreas? Identify its sub-region."
    assert out.conclusion.answer == "pancreas, pancreatic head"
    ask, asked, _ = asker()
    out = run_task(card, "localization", "pancreas", ask, TABLE, list(PRESENT))  # the reader named the organ
    assert [a[0] for a in asked] == ["sub_region"] and out.conclusion.answer == "pancreatic head"


def test_an_organ_the_model_was_not_trained_to_stage_is_refused(card):
    ask, asked, _ = asker()
    with pytest.raises(InputError, match="not trained on this question for the spleen"):
        run_task(card, "tnm", "spleen", ask, TABLE, list(PRESENT))
    assert asked == []


def test_without_a_card_the_built_in_prompt_is_asked(tmp_path):
    from inference.iir.prompts import task_question

    default = load_model_card(tmp_path)
    answers = {"tnm": [said("The pancreas.", "T3 N1 M0"), said("The pancreas, locally.", "T3 N1 M0")]}
    ask, asked, _ = asker(answers)
    out = run_task(default, "tnm", "pancreas", ask, TABLE, list(PRESENT))
    assert asked == [("tnm", task_question("tnm", "pancreas"))] and out.conclusion.answer == "T3 N1 M0"


@pytest.mark.parametrize("answer, chosen", [
    ("C. T3", "T3"), ("C", "T3"), ("(B) T2", "T2"), ("t2", "T2"), ("stage T1 it is", "T1"), ("T1 or T2", None),
    ("Z. T9", None), ("", None),
])
def test_pick_option(answer, chosen):
    assert pick_option(answer, ["T1", "T2", "T3"]) == chosen


# -- through the pipeline with a tiny model ------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    import shutil

    from inference.iir.decoding import SamplingConfig
    from inference.pipeline import Pipeline
    from tests.tiny_models import one_torch_thread, tiny_config, tiny_model

    folder = tmp_path_factory.mktemp("tiny")
    with one_torch_thread():
        model = tiny_model(folder, tiny_config(img_size=(8, 64, 64)))
        model.save_pretrained(folder / "model")
    shutil.copy(DEMO_MODEL / "model_card.json", folder / "model" / "model_card.json")
    settings = IIRSettings(max_rounds=2, sampling=SamplingConfig(max_new_tokens=4))
    return Pipeline(model, folder / "model", settings=settings), folder


def _phantom():
    from tests.test_preprocess import phantom

    return phantom()


def test_pipeline_records_the_steps_the_card_and_the_domain(tiny_pipeline):
    from inference.run_record import RunRecord
    from tests.tiny_models import one_torch_thread

    pipe, _ = tiny_pipeline
    ct, masks = _phantom()
    with one_torch_thread():
        record = pipe.analyze_volume(ct, masks, None, task="tnm", organ="liver")
    assert [s["id"] for s in record.steps] == ["T", "N", "M"]
    assert record.steps[0]["question"] == "What is the T stage of the liver tumor? Options: A. T1 B. T2 C. T3"
    spans = [s["rounds"] for s in record.steps]
    assert spans[0][0] == 1 and spans[-1][1] == len(record.rounds)
    assert [r.step for r in record.rounds] == [s["id"] for s in record.steps for _ in range(s["rounds"][0], s["rounds"][1] + 1)]
    assert record.model_card["source"].endswith("model_card.json") and record.question_check["trained"]
    # the phantom of test_preprocess is no cohort phantom, on another grid: outside the domain, said twice
    assert not record.domain["in_domain"] and len(record.domain["reasons"]) >= 2
    assert any(w.startswith("Outside the model's training domain: the model was trained on synthetic phantoms")
               for w in record.warnings)
    again = RunRecord.from_dict(record.to_dict())
    assert again.steps == record.steps and again.domain == record.domain and again.rounds[2].step == "N"


def test_a_typed_question_outside_the_forms_is_warned(tiny_pipeline):
    from tests.tiny_models import one_torch_thread

    pipe, _ = tiny_pipeline
    ct, masks = _phantom()
    with one_torch_thread():
        odd = pipe.analyze_volume(ct, masks, "Is there a lesion in the liver?")
        trained = pipe.analyze_volume(ct, masks, "How many focal lesions are seen in the liver?")
    assert odd.question_check == {"typed": True, "form": None, "trained": False}
    assert any("not one of the forms the model was trained on" in w for w in odd.warnings)
    assert trained.question_check["trained"] and trained.question_check["form"] == "How many focal lesions are seen in the {organ}?"
    assert not any("not one of the forms" in w for w in trained.warnings)
