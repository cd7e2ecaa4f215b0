"""Model folders that must be refused with one ModelError naming the file (and tensor), before any
analysis: custom code (auto_map), missing / unexpected / mismatched / non-finite / wrong-dtype
weights, damaged safetensors files and out-of-range config sizes (README: "Model folders").

No prompt may appear (input() is replaced by a recorder answering "y", stdin is empty) and no code
of the folder may run (its module would write a marker file)."""
from __future__ import annotations

import builtins
import io
import json
import shutil
import struct
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from inference.errors import ModelError
from inference.model import TumorChainModel

from tiny_models import one_torch_thread, tiny_config, tiny_model


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_torch_thread():
        yield


@pytest.fixture(autouse=True)
def prompts(monkeypatch, tmp_path):
    """Every input() call is recorded and answered "y" (what would run custom code); stdin is empty;
    transformers' module cache points into tmp_path, so nothing lands in the home folder."""
    asked: list[str] = []

    def fake_input(prompt=""):
        asked.append(prompt)
        return "y"

    monkeypatch.setattr(builtins, "input", fake_input)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    yield asked
    assert asked == [], f"a prompt appeared: {asked[:1]}"


@pytest.fixture(scope="module")
def saved_vl(tmp_path_factory):
    """A saved TumorChain folder whose LLM is Qwen2.5-VL's text model (our own loading path)."""
    root = tmp_path_factory.mktemp("refuse_vl")
    tiny_model(root, tiny_config(n_organ_tokens=3)).save_pretrained(root / "saved")
    return root / "saved"


@pytest.fixture(scope="module")
def saved_q2(tmp_path_factory):
    """A saved TumorChain folder whose LLM is a plain Qwen2 (AutoModelForCausalLM.from_pretrained; tied lm_head)."""
    root = tmp_path_factory.mktemp("refuse_q2")
    tiny_model(root, tiny_config(n_organ_tokens=3), llm="qwen2").save_pretrained(root / "saved")
    return root / "saved"


def copy_of(folder: Path, tmp_path: Path, name: str = "case") -> Path:
    out = tmp_path / name
    shutil.copytree(folder, out)
    return out


def refused(folder: Path, *needles: str) -> str:
    """from_pretrained raises ModelError; its one-line message contains every needle."""
    with pytest.raises(ModelError) as info:
        TumorChainModel.from_pretrained(folder, device="cpu", dtype=torch.float32)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def edit_tensors(path: Path, change) -> None:
    state = load_file(str(path))
    change(state)
    save_file(state, str(path), metadata={"format": "pt"})


def test_valid_folders_load(saved_vl, saved_q2):
    for folder in (saved_vl, saved_q2):
        TumorChainModel.from_pretrained(folder, device="cpu", dtype=torch.float32)


# ------------------------------------------------------------------------------------- custom code
EVIL_MODULE = '''
from pathlib import Path
Path({marker!r}).write_text("the folder's code ran")
from transformers import PretrainedConfig, PreTrainedTokenizerFast
class EvilConfig(PretrainedConfig):
    model_type = "evil_lm"
class EvilTokenizer(PreTrainedTokenizerFast):
    pass
'''


def plant_code(folder: Path) -> Path:
    marker = folder.parent / "custom_code_ran"
    (folder / "evil.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    return marker


@pytest.mark.parametrize("model_type", ["evil_lm", "qwen2"])
def test_llm_config_with_auto_map_is_refused_and_never_run(saved_q2, tmp_path, model_type):
    """Unknown model_type: transformers would prompt "[y/N]" and, answered y, import evil.py.
    Known model_type: transformers would silently ignore auto_map; we refuse the folder either way."""
    folder = copy_of(saved_q2, tmp_path)
    marker = plant_code(folder / "llm")

    def add_auto_map(cfg):
        cfg["model_type"] = model_type
        cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}

    edit_json(folder / "llm" / "config.json", add_auto_map)
    refused(folder, str(folder / "llm" / "config.json"), "custom code", "auto_map")
    assert not marker.exists()


def test_tokenizer_config_with_auto_map_is_refused_and_never_run(saved_vl, tmp_path):
    folder = copy_of(saved_vl, tmp_path)
    marker = plant_code(folder)

    def add_auto_map(cfg):
        cfg["tokenizer_class"] = "EvilTokenizer"
        cfg["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}

    edit_json(folder / "tokenizer_config.json", add_auto_map)
    refused(folder, str(folder / "tokenizer_config.json"), "custom code")
    assert not marker.exists()


# ------------------------------------------------------------------------------------- weights
def _nan(state):
    state["model.norm.weight"][0] = float("nan")


def _inf(state):
    state["model.layers.1.mlp.up_proj.weight"][3, 2] = float("inf")


def _int8(state):
    state["model.norm.weight"] = state["model.norm.weight"].to(torch.int8)


def _shape(state):
    state["model.norm.weight"] = torch.ones(31)


def _missing(state):
    del state["model.norm.weight"]


def _unexpected(state):
    state["model.layers.0.mlp.extra.weight"] = torch.zeros(4)


def _empty(state):
    state.clear()


LLM_DAMAGE = [  # (damage, what the message must say besides the file)
    (_nan, ["model.norm.weight", "NaN or infinite"]),
    (_inf, ["model.layers.1.mlp.up_proj.weight", "NaN or infinite"]),
    (_int8, ["model.norm.weight", "I8"]),
    (_shape, ["model.norm.weight", "(31,)"]),
    (_missing, ["model.norm.weight"]),
    (_unexpected, ["model.layers.0.mlp.extra.weight"]),
    (_empty, ["lacks"]),
]


@pytest.mark.parametrize("llm", ["vl", "q2"])
@pytest.mark.parametrize("damage, needles", LLM_DAMAGE, ids=[d.__name__.strip("_") for d, _ in LLM_DAMAGE])
def test_damaged_llm_weights_are_model_errors_naming_file_and_tensor(saved_vl, saved_q2, tmp_path, llm, damage, needles):
    folder = copy_of(saved_vl if llm == "vl" else saved_q2, tmp_path)
    weights = folder / "llm" / "model.safetensors"
    edit_tensors(weights, damage)
    where = str(folder / "llm") if damage in (_missing, _empty) else str(weights)  # a missing tensor has no file
    refused(folder, where, *needles)


@pytest.mark.parametrize("damage, needles", [
    (lambda s: s["projector.linear1.weight"].__setitem__((0, 0), float("inf")), ["projector.linear1.weight", "NaN or infinite"]),
    (lambda s: s.__setitem__("classifier.fc.bias", s["classifier.fc.bias"].to(torch.int8)), ["classifier.fc.bias", "I8"]),
    (lambda s: s.__setitem__("organ_pool.linear.weight", torch.zeros(2, 2)), ["organ_pool.linear.weight"]),
], ids=["inf", "int8", "unexpected"])
def test_damaged_part_weights_are_model_errors_naming_file_and_tensor(saved_vl, tmp_path, damage, needles):
    folder = copy_of(saved_vl, tmp_path)
    edit_tensors(folder / "model.safetensors", damage)
    refused(folder, str(folder / "model.safetensors"), *needles)


# ------------------------------------------------------------------------------------- damaged files
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-100])


def _huge_header_length(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(struct.pack("<Q", 2**40) + data[8:])


def _pickle(path: Path) -> None:
    state = load_file(str(path))
    path.unlink()
    torch.save(state, str(path))


def _four_tib_tensor(path: Path) -> None:
    header = json.dumps({"model.norm.weight": {"dtype": "F32", "shape": [2**20, 2**20],
                                               "data_offsets": [0, 4 * 2**40]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)


def _span_mismatch(path: Path) -> None:  # a header whose shape x dtype disagrees with its byte span
    header = json.dumps({"model.norm.weight": {"dtype": "F32", "shape": [32], "data_offsets": [0, 64]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)


FILE_DAMAGE = [
    (_truncate, "truncated"),
    (_huge_header_length, "header length 1099511627776"),
    (_pickle, "pickle"),
    (_four_tib_tensor, "truncated"),
    (_span_mismatch, "data span is 64 bytes"),
]


@pytest.mark.parametrize("llm", ["vl", "q2"])
@pytest.mark.parametrize("damage, needle", FILE_DAMAGE, ids=[d.__name__.strip("_") for d, _ in FILE_DAMAGE])
def test_damaged_safetensors_files_are_one_model_error(saved_vl, saved_q2, tmp_path, llm, damage, needle):
    folder = copy_of(saved_vl if llm == "vl" else saved_q2, tmp_path)
    damage(folder / "llm" / "model.safetensors")
    refused(folder, str(folder / "llm" / "model.safetensors"), "not a readable safetensors file", needle)


# ------------------------------------------------------------------------------------- config sizes
@pytest.mark.parametrize("key, value", [("vocab_size", 2**31), ("hidden_size", -128), ("num_hidden_layers", 0),
                                        ("intermediate_size", "64")])
def test_out_of_range_llm_config_sizes_are_refused(saved_vl, tmp_path, key, value):
    folder = copy_of(saved_vl, tmp_path)
    edit_json(folder / "llm" / "config.json", lambda cfg: cfg.__setitem__(key, value))
    refused(folder, str(folder / "llm" / "config.json"), key)


@pytest.mark.parametrize("key, value", [("hidden_size", -128), ("num_layers", 2**31)])
def test_out_of_range_vision_config_sizes_are_refused(saved_vl, tmp_path, key, value):
    folder = copy_of(saved_vl, tmp_path)
    edit_json(folder / "config.json", lambda cfg: cfg["vision"].__setitem__(key, value))
    refused(folder, str(folder / "config.json"), f"vision.{key}")


def test_pool_size_zero_and_foreign_llm_subfolder_are_refused(saved_vl, tmp_path):
    folder = copy_of(saved_vl, tmp_path, "pool")
    edit_json(folder / "config.json", lambda cfg: cfg.__setitem__("pool_size", [0, 2, 2]))
    refused(folder, str(folder / "config.json"), "pool_size")
    folder = copy_of(saved_vl, tmp_path, "elsewhere")
    edit_json(folder / "config.json", lambda cfg: cfg.__setitem__("llm_subfolder", "../other_llm"))
    refused(folder, str(folder / "config.json"), "llm_subfolder")


def test_llm_width_other_than_the_config_says_is_refused(saved_vl, tmp_path):
    folder = copy_of(saved_vl, tmp_path)
    edit_json(folder / "config.json", lambda cfg: cfg.__setitem__("llm_hidden_size", 48))
    refused(folder, str(folder / "config.json"), "llm_hidden_size is 48", "32 wide")


def test_tokenizer_larger_than_the_saved_embeddings_is_refused(saved_q2, tmp_path):
    """The saved Qwen2 has exactly one embedding row per token; dropping the rows of the placeholder
    tokens would otherwise be "repaired" by resizing, i.e. random rows."""
    folder = copy_of(saved_q2, tmp_path)

    def fewer_rows(state):
        state["model.embed_tokens.weight"] = state["model.embed_tokens.weight"][:-2].clone()

    edit_tensors(folder / "llm" / "model.safetensors", fewer_rows)
    edit_json(folder / "llm" / "config.json", lambda cfg: cfg.__setitem__("vocab_size", cfg["vocab_size"] - 2))
    refused(folder, "tokenizer needs", "rows")


# ------------------------------------------------------------------------------------- other readers
def test_m3d_conversion_refuses_non_finite_and_integer_encoder_tensors(tmp_path):
    from inference.model.config import VisionConfig
    from inference.model.convert_m3d import convert
    from inference.model.vision_encoder import VisionEncoder3D

    cfg = VisionConfig(img_size=(8, 64, 64), patch_size=(4, 16, 16), hidden_size=32, mlp_dim=64, num_layers=2, num_heads=4)
    state = {f"vision_encoder.{k}": v.clone() for k, v in VisionEncoder3D(cfg).state_dict().items()}
    hints = {"num_heads": 4, "img_size": (8, 64, 64), "patch_size": (4, 16, 16)}
    src = tmp_path / "m3d.safetensors"
    state["vision_encoder.norm.weight"][1] = float("nan")
    save_file(state, str(src))
    with pytest.raises(ModelError, match=r"m3d\.safetensors: tensor vision_encoder\.norm\.weight holds NaN"):
        convert(src, tmp_path / "out.safetensors", hints)
    state["vision_encoder.norm.weight"] = torch.ones(32, dtype=torch.int8)
    save_file(state, str(src))
    with pytest.raises(ModelError, match=r"vision_encoder\.norm\.weight is int8"):
        convert(src, tmp_path / "out.safetensors", hints)
    _huge_header_length(src)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        convert(src, tmp_path / "out.safetensors", hints)


def test_training_checkpoint_reader_refuses_a_truncated_file(tmp_path):
    from training.checkpoint_io import load_state_dict, save_state_dict

    path = tmp_path / "model.safetensors"
    save_state_dict({"a": torch.ones(64), "b": torch.zeros(8)}, path)
    assert set(load_state_dict(path)) == {"a", "b"}
    _truncate(path)
    with pytest.raises(ModelError, match="model.safetensors: not a readable safetensors file"):
        load_state_dict(path)
