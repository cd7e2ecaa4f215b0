"""save_pretrained / from_pretrained round trips and the errors of a damaged model folder."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from inference.errors import ModelError
from inference.model import TumorChainConfig, TumorChainModel

from tiny_models import one_torch_thread, tiny_config, tiny_model

SHAPE = (8, 64, 64)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_torch_thread():
        yield


def run_case(model: TumorChainModel, volume: torch.Tensor, mask: torch.Tensor):
    """Everything a case goes through: visual tokens, classifier, LLM logits on an interleaved prompt."""
    text = model.ct_placeholder() + " is the liver normal ? " + model.organ_placeholder() + " answer"
    ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        enc = model.encode_case(volume)
        g, o = model.global_tokens(enc), model.organ_tokens(enc, mask)
        logits = model.forward(ids, g, o).logits
        return ids, g, o, model.organ_logits(o), logits


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("saveload")
    model = tiny_model(root, tiny_config(n_organ_tokens=3))
    model.save_pretrained(root / "saved")
    return model, root / "saved"


@pytest.mark.parametrize("llm", ["qwen2_5_vl", "qwen2"])
def test_round_trip_reproduces_every_output(tmp_path, llm):
    model = tiny_model(tmp_path, tiny_config(n_organ_tokens=3), llm=llm)
    with torch.no_grad():  # make sure projector/classifier are not at some trivial init
        for p in [*model.projector.parameters(), *model.classifier.parameters()]:
            p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "saved")
    loaded = TumorChainModel.from_pretrained(tmp_path / "saved", device="cpu")

    assert loaded.config.to_dict() == model.config.to_dict()
    assert (loaded.ct_token_id, loaded.organ_token_id) == (model.ct_token_id, model.organ_token_id)
    assert loaded.uses_mrope == model.uses_mrope and loaded.llm_model_type in (llm, "qwen2_5_vl_text")
    ref_state, new_state = model.state_dict(), loaded.state_dict()
    assert set(ref_state) == set(new_state)
    assert all(torch.equal(ref_state[k], new_state[k]) for k in ref_state)
    torch.manual_seed(0)
    volume = torch.rand(1, 1, *SHAPE)
    mask = torch.zeros(SHAPE, dtype=torch.bool)
    mask[2:6, 10:40, 20:50] = True
    for a, b in zip(run_case(model, volume, mask), run_case(loaded, volume, mask)):
        assert torch.equal(a, b)


def test_saved_folder_layout(saved):
    model, folder = saved
    assert {"config.json", "model.safetensors", "llm"} <= {p.name for p in folder.iterdir()}
    assert (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "tumorchain" and config["n_global_tokens"] == model.config.n_global_tokens
    assert config["vision"]["img_size"] == [8, 64, 64] and config["llm_hidden_size"] == 32
    parts = load_file(str(folder / "model.safetensors"))
    assert {k.split(".")[0] for k in parts} == {"vision_encoder", "projector", "classifier"}  # no LLM here
    llm_config = json.loads((folder / "llm" / "config.json").read_text())
    assert llm_config["model_type"] == "qwen2_5_vl_text"
    assert not any("visual" in k for k in load_file(str(folder / "llm" / "model.safetensors")))
    # and the saved LLM folder is a regular HF causal-LM folder
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(folder / "llm"), local_files_only=True)
    assert torch.equal(hf.lm_head.weight, model.llm.lm_head.weight)


def test_damaged_folders_are_model_errors_naming_the_file(saved, tmp_path):
    _, folder = saved
    with pytest.raises(ModelError, match="model folder not found"):
        TumorChainModel.from_pretrained(tmp_path / "nothing")

    def damaged(name, damage):
        copy = tmp_path / name
        shutil.copytree(folder, copy)
        damage(copy)
        return copy

    cases = [
        ("no_config", lambda f: (f / "config.json").unlink(), "missing config.json"),
        ("bad_json", lambda f: (f / "config.json").write_text("{"), "malformed config.json"),
        ("not_ours", lambda f: (f / "config.json").write_text('{"model_type": "llama"}'), "not a TumorChain config"),
        ("no_weights", lambda f: (f / "model.safetensors").unlink(), "missing model.safetensors"),
        ("no_llm", lambda f: shutil.rmtree(f / "llm"), "missing llm/config.json"),
        ("garbage_weights", lambda f: (f / "model.safetensors").write_bytes(b"garbage"), "not a readable safetensors"),
    ]
    for name, damage, message in cases:
        with pytest.raises(ModelError, match=message) as info:
            TumorChainModel.from_pretrained(damaged(name, damage), device="cpu")
        assert name in str(info.value)

    def missing_tensor(f):
        state = load_file(str(f / "model.safetensors"))
        del state["projector.linear2.bias"]
        save_file(state, str(f / "model.safetensors"))

    with pytest.raises(ModelError, match="missing 1 projector tensor"):
        TumorChainModel.from_pretrained(damaged("missing_tensor", missing_tensor), device="cpu")

    def other_sizes(f):
        cfg = TumorChainConfig.load(f / "config.json")
        cfg.projector_hidden = 16
        cfg.save(f / "config.json")

    with pytest.raises(ModelError, match=r"projector.linear1.weight has shape \(48, 32\)"):
        TumorChainModel.from_pretrained(damaged("other_sizes", other_sizes), device="cpu")
