"""The demo model's one build command runs end to end (cohort, tokenizer, LLM, visual pre-training,
training, export) on a shrunken recipe, and the workstation's loader opens what it writes."""
from __future__ import annotations

import json

import pytest
import torch

from tests.tiny_models import one_torch_thread

pytestmark = pytest.mark.slow


def test_demo_build_end_to_end_on_a_tiny_patch_token_recipe(tmp_path):
    """The paper's own Gamma (patch tokens, no conv stem; demo model v0.1's recipe): stage 0 is the
    patch-level lesion pre-training."""
    from inference.pipeline import load_model
    from training.demo_model.build import build, load_recipe

    recipe = load_recipe()
    recipe["cohort"] = {"cases": 10, "shape": [64, 64, 32], "workers": 1}
    recipe["tokenizer"] = {"vocab_size": 600}
    recipe["llm"] = {"hidden": 32, "intermediate": 64, "layers": 1, "heads": 4, "kv_heads": 2}
    vision = {k: v for k, v in recipe["model"]["vision"].items() if not k.startswith("stem_")}
    vision.update(img_size=[16, 64, 64], hidden_size=32, mlp_dim=64, num_layers=1)
    recipe["model"] = dict(recipe["model"], vision=vision, n_organ_tokens=4, projector_hidden=48, gamma_mode="tokens")
    recipe["train"] = dict(recipe["train"], num_epochs=1, logging_steps=1, freeze_encoder=False)
    recipe["pretrain"] = {"epochs": 1, "lr": 3e-3, "batch": 4, "threshold": 0.1, "pos_weight": 16.0}
    with one_torch_thread():
        summary = build(tmp_path / "model", 0, tmp_path / "work", recipe, log=lambda *_: None, skip_eval=True)
        model = load_model(tmp_path / "model", device="cpu")
    assert model.config.vision.img_size == (16, 64, 64)
    assert model.config.vision.stem_channels == () and model.config.gamma_mode == "tokens"
    saved = json.loads((tmp_path / "model" / "eval_summary.json").read_text())
    assert saved["train"]["global_step"] == summary["train"]["global_step"] > 0
    assert len(saved["visual_pretraining"]["loss"]) == 1
    assert (tmp_path / "model" / "EVAL.md").read_text().startswith("# Demo model")
    from inference.model.model_card import load_model_card  # the export writes the card (issue 19)

    card = load_model_card(tmp_path / "model")
    assert not card.is_default and [s.id for s in card.steps("tnm")] == ["T", "N", "M"]



def test_demo_build_with_a_masked_gamma_recipe(tmp_path):
    """The shipped recipe (v0.2), shrunken: conv stem + masked Gamma; stage 0 trains on organ labels
    through the organ tokens, and the built model analyzes with masked organ tokens."""
    from inference.pipeline import load_model
    from training.demo_model.build import build, load_recipe

    recipe = load_recipe()
    recipe["cohort"] = {"cases": 10, "shape": [64, 64, 32], "workers": 1}
    recipe["tokenizer"] = {"vocab_size": 600}
    recipe["llm"] = {"hidden": 32, "intermediate": 64, "layers": 1, "heads": 4, "kv_heads": 2}
    vision = dict(recipe["model"]["vision"], img_size=[16, 64, 64], hidden_size=32, mlp_dim=64, num_layers=1,
                  stem_channels=[4, 8], stem_strides=[[1, 2, 2], [1, 2, 2]])
    recipe["model"] = dict(recipe["model"], vision=vision, n_organ_tokens=4, projector_hidden=48, gamma_mode="masked")
    recipe["train"] = dict(recipe["train"], num_epochs=1, logging_steps=1)
    recipe["pretrain"] = dict(recipe["pretrain"], epochs=2, lr=3e-3)
    with one_torch_thread():
        summary = build(tmp_path / "model", 0, tmp_path / "work", recipe, log=lambda *_: None, skip_eval=True)
        model = load_model(tmp_path / "model", device="cpu")
    pre = summary["visual_pretraining"]
    assert len(pre["loss"]) == 2 and all(l > 0 for l in pre["loss"]) and "heldout_organ_auc" in pre
    aucs = pre["heldout_organ_auc"]  # stage 0 keeps its best held-out epoch (earliest of ties)
    assert aucs[pre["kept_epoch"] - 1] == max(aucs) and pre["kept_auc"] == max(aucs)
    assert model.config.gamma_mode == "masked" and "organ_pool" in model.parts

    # a second build that changes only the training recipe and the tokenizer (so the LLM too) reuses
    # stage 0 and starts from the new LLM with stage 0's visual parts; a pre-training change redoes it
    from inference.model.modeling_tumorchain import TumorChainModel

    logs: list[str] = []
    recipe["train"] = dict(recipe["train"], learning_rate=5e-4)
    recipe["tokenizer"] = {"vocab_size": 560}
    with one_torch_thread():
        again = build(tmp_path / "model2", 0, tmp_path / "work", recipe, log=logs.append, skip_eval=True)
    assert any(m.startswith("stage 0: reusing") for m in logs)
    assert again["visual_pretraining"] == pre | {"reused": True}  # EVAL.md says so
    stage0 = TumorChainModel.from_pretrained(tmp_path / "work" / "pretrained_0", device="cpu")
    start = TumorChainModel.from_pretrained(tmp_path / "work" / "start_0", device="cpu")
    assert len(start.tokenizer) < len(stage0.tokenizer) == len(model.tokenizer)
    for part in ("vision_encoder", "organ_pool", "projector", "classifier"):
        a, b = getattr(stage0, part).state_dict(), getattr(start, part).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    logs.clear()
    recipe["pretrain"] = dict(recipe["pretrain"], epochs=1)
    with one_torch_thread():
        third = build(tmp_path / "model3", 0, tmp_path / "work", recipe, log=logs.append, skip_eval=True)
    assert not any(m.startswith("stage 0: reusing") for m in logs) and len(third["visual_pretraining"]["loss"]) == 1


def test_tiny_recipe_builds_and_evaluates_from_scratch_through_the_cli(tmp_path):
    """The README's tiny from-scratch build (training/demo_model/recipe_tiny.json) runs to the end through
    the real command: its guard cohort leaves a split empty (once a crash after minutes of work), the
    held-out cases are scored on each of the recipe's three grids, and the bundled demo case, whose seed
    the recipe fixes, is checked against a regeneration and evaluated."""
    import subprocess
    import sys
    from pathlib import Path

    from training.demo_model.build import load_recipe

    repo = Path(__file__).resolve().parents[1]
    recipe = load_recipe(repo / "training" / "demo_model" / "recipe_tiny.json")
    env = dict(__import__("os").environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "training.demo_model.build", "--recipe",
                           str(repo / "training" / "demo_model" / "recipe_tiny.json"), "--out", str(tmp_path / "model"),
                           "--work", str(tmp_path / "work")], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "model" / "eval_summary.json").read_text())
    grids = summary["heldout_grids"]
    assert [g["shape"] for g in grids] == [g["shape"] for g in recipe["eval"]["grids"]]
    assert summary["heldout"] == grids[0] and all(g["n_samples"] > 0 for g in grids)
    cases = {g["cases"] for g in grids}
    assert cases == {recipe["eval"]["max_cases"]}  # the same held-out cases on every grid
    shapes = json.loads((tmp_path / "work" / "cohort_0" / "cohort_summary.json").read_text())["grids"]
    assert shapes == recipe["cohort"]["grids"]
    assert summary["demo_case"]["seed"] == recipe["demo_case"]["seed"] and all(summary["demo_case"]["identical"].values())
    assert {r["mode"] for r in summary["demo_case_eval"]["answers"]} == {"iir", "no_iir"}
    assert summary["guard"]["n_samples"] > 0
    text = (tmp_path / "model" / "EVAL.md").read_text()
    assert text.count("## Held-out test split on the") == 3 and "Bundled demo case: seed" in text
