"""The shipped demo model still does what its build measured: on a fixed held-out guard set (cases
regenerated from seeds at test time), organ position and tumor position stay at least at the figures
in resources/demo_model/eval_summary.json minus its margin, well above chance, and IIR is not worse
than a single round without it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tiny_models import one_torch_thread

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "resources" / "demo_model"
pytestmark = pytest.mark.slow


def _chance(sample) -> float:
    """Uniform guessing: 1 / options for multiple choice; 1 / sub-regions of the organ for tumor position."""
    from inference.labels import merged_labels

    if sample.options:
        return 1.0 / len(sample.options)
    table = merged_labels()
    organ = table.by_name(sample.roi_organs[0])
    return 1.0 / max(len(table.substructures(organ.id)), 1)


@pytest.fixture(scope="module")
def guard(tmp_path_factory):
    """The guard set's accuracies per mode, evaluated once for both tests."""
    tmp_path = tmp_path_factory.mktemp("guard")
    from inference.pipeline import Pipeline, load_model
    from training.cohort.generate import generate_cohort
    from training.evaluate import evaluate_samples
    from training.manifest import load_manifest

    summary = json.loads((MODEL / "eval_summary.json").read_text())
    g = summary["guard"]
    generate_cohort(tmp_path / "guard", g["cases"], g["seed"], tuple(g.get("shape", (128, 128, 64))), None, 1, log=None)
    samples = [s for split in ("train", "val", "test") for s in load_manifest(tmp_path / "guard" / f"{split}.jsonl")
               if s.subtask in g["subtasks"]]
    assert sum(s.subtask == "organ_position" for s in samples) == g["counts"]["organ_position"]  # same cases as the build
    with one_torch_thread():
        model = load_model(MODEL, device="cpu")
        res = evaluate_samples(Pipeline(model, MODEL), samples, max_rounds=g["max_rounds"],
                               max_new_tokens=g["max_new_tokens"])
    acc = {m: {k: v["accuracy"] for k, v in t["columns"].items() if v["n"]} for m, t in res["modes"].items()}
    return g, samples, acc


def test_demo_model_does_not_regress_on_the_guard_set(guard):
    g, _, acc = guard
    margin = g["margin"]
    for mode, recorded in g["accuracy"].items():
        for col, value in recorded.items():
            if col != "avg":
                assert acc[mode][col] >= value - margin, (mode, col, acc[mode][col], value)


def _check_well_above_chance(guard, col: str) -> None:
    _, samples, acc = guard
    chance = sum(_chance(s) for s in samples if s.subtask == col) / sum(s.subtask == col for s in samples)
    assert acc["iir"][col] >= chance + 0.2, (col, acc["iir"][col], chance)
    assert acc["iir"][col] >= acc["no_iir"][col], (col, acc)


def test_demo_model_finds_the_organ_well_above_chance_and_iir_not_worse(guard):
    _check_well_above_chance(guard, "organ_position")


def test_demo_model_finds_the_sub_region_well_above_chance_and_iir_not_worse(guard):
    _check_well_above_chance(guard, "tumor_position")
