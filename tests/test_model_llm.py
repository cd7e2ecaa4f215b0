"""The LLM: Qwen2.5-VL's language model alone (no vision tower read), plain Qwen2, placeholders,
position ids, KV-cache consistency, devices, offline mode and load errors."""
from __future__ import annotations

import json
import os

import pytest
import torch

import inference.model.llm_loader as llm_loader
from inference.errors import ModelError
from inference.model.devices import Placement, check_fits, memory_errors_as_model_error, pick_device

from tiny_models import one_torch_thread, as_published_layout, tiny_config, tiny_model, tiny_qwen2, tiny_qwen25_vl

CPU = Placement(torch.device("cpu"), torch.float32)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def vl_folder(tmp_path_factory):
    return tiny_qwen25_vl(tmp_path_factory.mktemp("vl") / "vl")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("llm"), tiny_config(n_organ_tokens=3))


def test_qwen25_vl_language_model_loads_without_reading_the_vision_tower(vl_folder, monkeypatch):
    from safetensors import safe_open

    read: list[str] = []

    class RecordingSafeOpen:
        """safetensors.safe_open that records every tensor actually read from disk."""

        def __init__(self, *args, **kwargs):
            self._file = safe_open(*args, **kwargs)

        def __enter__(self):
            self._f = self._file.__enter__()
            return self

        def __exit__(self, *exc):
            return self._file.__exit__(*exc)

        def keys(self):
            return self._f.keys()

        def get_slice(self, key):
            return self._f.get_slice(key)

        def get_tensor(self, key):
            read.append(key)
            return self._f.get_tensor(key)

    monkeypatch.setattr(llm_loader, "safe_open", RecordingSafeOpen)
    loaded = llm_loader.load_llm(vl_folder, CPU)

    with safe_open(str(vl_folder / "model.safetensors"), framework="pt") as f:
        all_keys = list(f.keys())
    visual = [k for k in all_keys if k.startswith(("visual.", "model.visual."))]
    assert visual, "the tiny checkpoint must contain a vision tower for this test to mean anything"
    assert read and not any("visual" in k for k in read)
    assert sorted(loaded.skipped_keys) == sorted(visual)
    assert sorted(read) == sorted(k for k in all_keys if k not in visual)
    assert not any("visual" in name for name, _ in loaded.model.named_parameters())
    assert loaded.uses_mrope and loaded.model_type == "qwen2_5_vl"


@pytest.mark.parametrize("tie, layout", [(False, None), (True, None), (True, "flat"), (False, "language_model")])
def test_text_path_logits_equal_the_full_hf_model(tmp_path, tie, layout):
    """Also for checkpoints laid out as published: flat config.json, and "model.language_model.*" keys."""
    from safetensors import safe_open
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = tiny_qwen25_vl(tmp_path / "vl", tie=tie, seed=3)
    full = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(folder), local_files_only=True).eval()
    if layout is not None:
        as_published_layout(folder, language_model_keys=layout == "language_model")
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    assert ("lm_head.weight" in keys) is (not tie)
    if layout == "language_model":
        assert any(k.startswith("model.language_model.layers.") for k in keys)
    loaded = llm_loader.load_llm(folder, CPU)
    ours = loaded.model
    assert loaded.skipped_keys and all("visual" in k for k in loaded.skipped_keys)
    ids = torch.tensor([[3, 17, 5, 9, 22, 40, 2, 11]])
    with torch.no_grad():
        expected = full(input_ids=ids).logits
        got_default = ours(input_ids=ids).logits
        pos = torch.arange(ids.shape[1])[None].expand(3, 1, -1)  # explicit M-RoPE ids, t = h = w
        got_explicit = ours(input_ids=ids, position_ids=pos).logits
    assert torch.allclose(got_default, expected, atol=1e-5)
    assert torch.allclose(got_explicit, expected, atol=1e-5)
    if tie:
        assert ours.lm_head.weight.data_ptr() == ours.model.embed_tokens.weight.data_ptr()


def test_plain_qwen2_loads_grows_embeddings_and_matches_hf(tmp_path):
    from transformers import Qwen2ForCausalLM

    from inference.model import TumorChainModel

    folder = tiny_qwen2(tmp_path / "q2")
    reference = Qwen2ForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
    vocab = reference.config.vocab_size
    model = TumorChainModel.build(folder, config=tiny_config(), device="cpu")
    assert not model.uses_mrope and model.llm_model_type == "qwen2"
    assert model.llm.get_input_embeddings().weight.shape[0] == vocab + 2  # rows for <ct>, <organ_feature>
    assert {model.ct_token_id, model.organ_token_id} == {vocab, vocab + 1}
    assert tuple(model.position_ids(5, 4).shape) == (1, 4)
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        ours = model.llm_forward(model.embed_text(ids), model.position_ids(0, 5)).logits
        expected = reference(input_ids=ids).logits
    assert torch.allclose(ours[..., :vocab], expected, atol=1e-5)


def test_bf16_model_keeps_rope_frequencies_in_float32(tmp_path, model):
    from inference.model import TumorChainModel

    folder = tiny_qwen25_vl(tmp_path / "vl")  # same seed and sizes as the float32 `model` fixture
    half = TumorChainModel.build(folder, config=tiny_config(n_organ_tokens=3), device="cpu", dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half.vision_encoder.norm.weight.dtype == torch.bfloat16
    assert next(half.llm.parameters()).dtype == torch.bfloat16
    assert half.llm.model.rotary_emb.inv_freq.dtype == torch.float32
    ids = torch.tensor([[3, 17, 5, 9, 22, 11]])
    with torch.no_grad():
        low = half.forward(ids).logits.float()
        ref = model.forward(ids).logits
    assert torch.allclose(low, ref, atol=0.05 * ref.abs().max().item())


def test_placeholders_are_single_special_tokens_and_get_the_visual_tokens(model):
    k = model.config.llm_hidden_size
    text = model.ct_placeholder() + " question is the liver normal ? " + model.organ_placeholder() + " answer"
    ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    lg, ll = model.config.n_global_tokens, model.config.n_organ_tokens
    assert (ids == model.ct_token_id).sum() == lg and (ids == model.organ_token_id).sum() == ll
    g, o = torch.randn(1, lg, k), torch.randn(1, ll, k)
    with torch.no_grad():
        embeds, pos = model.embed_inputs(ids, g, o), model.position_ids(7, ids.shape[1])
        text_embeds = model.embed_text(ids)
    ct_slots = (ids[0] == model.ct_token_id).nonzero().flatten()
    organ_slots = (ids[0] == model.organ_token_id).nonzero().flatten()
    assert torch.equal(embeds[0, ct_slots], g[0]) and torch.equal(embeds[0, organ_slots], o[0])
    others = torch.ones(ids.shape[1], dtype=torch.bool)
    others[ct_slots] = False
    others[organ_slots] = False
    assert torch.equal(embeds[0, others], text_embeds[0, others])
    assert tuple(pos.shape) == (3, 1, ids.shape[1]) and pos[:, 0, 0].tolist() == [7, 7, 7]
    assert torch.equal(pos[0], pos[2]) and pos[0, 0, -1].item() == 7 + ids.shape[1] - 1
    with pytest.raises(ValueError, match="organ"):
        model.embed_inputs(ids, g, None)
    with pytest.raises(ValueError, match="<ct>"):
        model.embed_inputs(ids, None, o)
    # a batch of two sequences takes its runs in sequence order (the trainer's path)
    g2, o2 = torch.randn(2, lg, k), torch.randn(2, ll, k)
    with torch.no_grad():
        both = model.embed_inputs(torch.cat([ids, ids]), g2, o2)
    assert torch.equal(both[1, ct_slots], g2[1]) and torch.equal(both[1, organ_slots], o2[1])
    assert tuple(model.position_ids(0, 5, batch=2).shape) == (3, 2, 5)


def test_kv_cache_continuation_equals_one_full_pass(model):
    """Prefill a prompt with visual tokens, then feed the rest with start = cache length:
    the logits equal those of a single pass over everything (what IIR decoding relies on)."""
    torch.manual_seed(0)
    k = model.config.llm_hidden_size
    g, o = torch.randn(1, model.config.n_global_tokens, k), torch.randn(1, model.config.n_organ_tokens, k)
    first = model.tokenizer(model.ct_placeholder() + " is the liver normal ?", add_special_tokens=False,
                            return_tensors="pt").input_ids
    second = model.tokenizer("no . requires greater attention to the liver " + model.organ_placeholder() + " thus",
                             add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        full = model.forward(torch.cat([first, second], dim=1), g, o).logits
        out1 = model.forward(first, g, None, use_cache=True)
        out2 = model.forward(second, None, o, start=first.shape[1], cache=out1.cache,
                             use_cache=True)
    assert torch.allclose(torch.cat([out1.logits, out2.logits], dim=1), full, atol=1e-5)


def test_offline_mode_is_on():
    import huggingface_hub.constants

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True


def test_device_choice_without_gpu():
    if torch.cuda.is_available():
        assert pick_device() == Placement(torch.device("cuda"), torch.bfloat16)
    else:
        assert pick_device() == Placement(torch.device("cpu"), torch.float32)
        with pytest.raises(ModelError, match="no CUDA GPU"):
            pick_device("cuda")
    assert pick_device("cpu", "bf16").dtype == torch.bfloat16


def test_out_of_memory_messages_name_model_size_and_memory(monkeypatch, tmp_path):
    import inference.model.devices as devices

    monkeypatch.setattr(devices, "free_memory", lambda device: 2 * 2**30)
    with pytest.raises(ModelError) as info:
        check_fits("the language model", tmp_path, 3_090_000_000, torch.bfloat16, torch.device("cpu"))
    message = str(info.value)
    assert "3.09 B parameters" in message and "bfloat16" in message and "5.8 GiB" in message
    assert "2.0 GiB free" in message and str(tmp_path) in message
    for error in (MemoryError(), RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")):
        with pytest.raises(ModelError, match="ran out of memory.*7.00 B parameters"):
            with memory_errors_as_model_error("the language model", tmp_path, 7_000_000_000, torch.float32,
                                              torch.device("cpu")):
                raise error
    with pytest.raises(RuntimeError, match="unrelated"):  # other errors pass through unchanged
        with memory_errors_as_model_error("x", tmp_path, 1, torch.float32, torch.device("cpu")):
            raise RuntimeError("unrelated")


def test_bad_llm_folders_are_model_errors_naming_the_problem(tmp_path, vl_folder):
    with pytest.raises(ModelError, match="model folder not found"):
        llm_loader.load_llm(tmp_path / "nope", CPU)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="missing config.json"):
        llm_loader.load_llm(tmp_path / "empty", CPU)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="malformed config.json"):
        llm_loader.load_llm(bad, CPU)
    pickles = tmp_path / "pickles"
    pickles.mkdir()
    (pickles / "config.json").write_text((vl_folder / "config.json").read_text())
    (pickles / "pytorch_model.bin").write_bytes(b"\x80\x04not loaded")
    with pytest.raises(ModelError, match="only pickle weights"):
        llm_loader.load_llm(pickles, CPU)
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "config.json").write_text((vl_folder / "config.json").read_text())
    (shards / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(ModelError, match="missing weight shard"):
        llm_loader.load_llm(shards, CPU)
