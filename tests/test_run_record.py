"""run.json (tumorchain.run/1): round trip, validation errors that name the file and field, hashes."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from inference.errors import InputError
from inference.iir.conclusion import parse_conclusion
from inference.iir.rounds import ExaminedOrgan, Round, RoundTimings, SkippedOrgan
from inference.run_record import SCHEMA, CaseInfo, ModelInfo, RunRecord, RunSettings, SegmentationInfo
from inference.weight_hash import model_weight_hash
from inference.segmentation.organ_masks import OrganMasks, mask_hash

H = "a" * 64


def _record() -> RunRecord:
    r1 = Round(index=1, prompt="<ct>\nWhere is the lesion?\nAnswer:\n", text="The pancreas. Thus, the answer is head.",
               token_ids=[5, 6, 0], stop_reason="eos", named_organs=["pancreas"], next_organs=["pancreas"],
               skipped_organs=[SkippedOrgan("gallbladder", "no gallbladder mask in this case", 4)],
               timings=RoundTimings(prefill_ms=12.5, decode_ms=40.0, prompt_tokens=270, generated_tokens=3,
                                    context_tokens=273, tokens_per_s=50.0))
    r2 = Round(index=2, prompt="\nThe question requires greater attention to pancreas.<organ_feature>\nAnswer:\n",
               text="Pancreatic head mass. Thus, the answer is pancreatic head.", token_ids=[7, 0], stop_reason="eos",
               organs=[ExaminedOrgan(111, "pancreas_head", "pancreatic head", 7, "pancreas", 0.83, 64,
                                     fallback="no pancreas_head mask in this case; used the pancreas mask",
                                     voxels=5120)],
               timings=RoundTimings(organ_tokens_ms=3.0, prefill_ms=2.0, decode_ms=20.0, prompt_tokens=80,
                                    generated_tokens=2, context_tokens=355, tokens_per_s=50.0))
    return RunRecord(
        case=CaseInfo("case_1", "/data/case_1.nii.gz", H, [512, 512, 90], [0.8, 0.8, 2.5], series_uid="1.2.3"),
        segmentation=SegmentationInfo("precomputed:seg.nii.gz", "b" * 64, "/data/seg.nii.gz", ["liver", "pancreas"],
                                      {"scheme": "totalseg"}),
        model=ModelInfo("/models/demo", "demo", "c" * 64, ["model.safetensors", "llm/model.safetensors"], "qwen2",
                        "float32", "cpu"),
        question="Where is the lesion?", task="localization",
        settings=RunSettings(4, True, 512, 0.0, 1.0, 0, 0),
        rounds=[r1, r2], stop_reason="no_new_organ", conclusion=parse_conclusion(r2.text),
        timings={"load_ct_ms": 100.0, "encode_ms": 50.0, "iir_ms": 75.0, "total_ms": 300.0},
        warnings=["series picked by size"], tool_version="0.1.0",
    )


def test_round_trip_through_a_file(tmp_path):
    rec = _record()
    path = rec.save(tmp_path / "deep" / "run.json")
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA == "tumorchain.run/1"
    assert data["rounds"][1]["organs"][0]["mask_name"] == "pancreas"
    back = RunRecord.load(path)
    assert back.to_dict() == rec.to_dict()
    assert back.rounds[1].mask_labels == [7] and back.rounds[1].timings.total_ms == 25.0
    assert back.conclusion.answer == "pancreatic head" and back.conclusion.found
    assert not list(tmp_path.rglob("*.tmp"))


def _broken(mutate):
    d = _record().to_dict()
    mutate(d)
    return d


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d.update(schema="tumorchain.run/2"), "from another version of TumorChain"),
    (lambda d: d.update(schema="something/1"), "is not a TumorChain run record"),
    (lambda d: d.pop("rounds"), "record.rounds: missing"),
    (lambda d: d.update(rounds=[]), "at least one round"),
    (lambda d: d["rounds"][1]["organs"][0].update(abnormal_prob="high"),
     "rounds[1].organs[0].abnormal_prob: expected int or float or null, got str"),
    (lambda d: d["rounds"][0]["timings"].update(prefill_ms=None), "rounds[0].timings.prefill_ms"),
    (lambda d: d["rounds"][0].update(index=3), "indices must be 1..2"),
    (lambda d: d["case"].update(content_hash="xyz"), "case.content_hash: expected a 64-digit"),
    (lambda d: d["settings"].update(max_rounds=True), "settings.max_rounds: expected int, got bool"),
    (lambda d: d.update(stop_reason="tired"), "stop_reason: 'tired'"),
    (lambda d: d["case"].update(shape=[1, 2]), "need 3 entries"),
    (lambda d: d["conclusion"].pop("found"), "conclusion.found: missing"),
])
def test_invalid_records_name_the_file_and_the_field(tmp_path, mutate, fragment):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_broken(mutate)))
    with pytest.raises(InputError) as err:
        RunRecord.load(path)
    assert fragment in str(err.value) and str(path) in str(err.value)


def test_unreadable_files(tmp_path):
    bad = tmp_path / "run.json"
    bad.write_text("{ not json")
    with pytest.raises(InputError, match=r"not JSON \(line 1"):
        RunRecord.load(bad)
    with pytest.raises(InputError, match="no such run record"):
        RunRecord.load(tmp_path / "missing.json")
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="record: expected dict, got list"):
        RunRecord.load(bad)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write the run record"):
        _record().save(blocker / "run.json")


def test_optional_fields_take_their_defaults():
    d = _record().to_dict()
    for k in ("warnings", "created", "tool_version"):
        d.pop(k)
    d["rounds"][0].pop("skipped_organs")
    rec = RunRecord.from_dict(copy.deepcopy(d))
    assert rec.warnings == [] and rec.rounds[0].skipped_organs == []


def test_mask_hash_follows_every_voxel_and_the_grid():
    organs = np.zeros((20, 20, 10), np.uint8)
    organs[5:10, 5:10, 2:6] = 5
    affine = np.diag([1.0, 1.0, 2.5, 1.0])
    base = mask_hash(organs, None, affine)
    assert mask_hash(organs.copy(), None, affine.copy()) == base and len(base) == 64
    changed = organs.copy()
    changed[0, 0, 0] = 1
    assert mask_hash(changed, None, affine) != base
    assert mask_hash(organs, np.zeros_like(organs), affine) != base
    assert mask_hash(organs, None, np.diag([1.0, 1.0, 3.0, 1.0])) != base
    masks = OrganMasks(organs=np.asfortranarray(organs), affine=affine, backend="x")
    assert masks.content_hash() == base and masks.content_hash() is masks.content_hash()  # any memory order; once


def test_model_weight_hash_covers_every_safetensors_file(tmp_path):
    from safetensors.numpy import save_file

    (tmp_path / "llm").mkdir()
    save_file({"w": np.ones((4, 4), np.float32)}, str(tmp_path / "model.safetensors"))
    save_file({"w": np.zeros((2,), np.float32)}, str(tmp_path / "llm" / "model.safetensors"))
    (tmp_path / "config.json").write_text("{}")
    digest, files = model_weight_hash(tmp_path)
    assert files == ["llm/model.safetensors", "model.safetensors"] and len(digest) == 64
    assert model_weight_hash(tmp_path)[0] == digest
    save_file({"w": np.full((2,), 2.0, np.float32)}, str(tmp_path / "llm" / "model.safetensors"))
    assert model_weight_hash(tmp_path)[0] != digest
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .safetensors weight files"):
        model_weight_hash(tmp_path / "empty")


@pytest.mark.parametrize("text, reasoning, answer, found", [
    ("The mass lies in the head. Thus, the answer is pancreatic head.", "The mass lies in the head.", "pancreatic head", True),
    ("A. Thus, the answer is B. More text. Therefore, the answer is T3N0M0.", "A. Thus, the answer is B. More text.", "T3N0M0", True),
    ("Segment IV lesion.\nThus, the answer is: segment 4a.", "Segment IV lesion.", "segment 4a", True),
    ("No summary sentence here.", "No summary sentence here.", "", False),
    ("Cut off. Thus, the answer is", "Cut off.", "", False),
])
def test_conclusion_parsing(text, reasoning, answer, found):
    c = parse_conclusion(text)
    assert (c.reasoning, c.answer, c.found, c.summary) == (reasoning, answer, found, "")


def test_conclusion_of_the_papers_answer_form():
    c = parse_conclusion("Reasoning Process: The local view of the pancreas places the lesion in the head. "
                         "Summary: The lesion arises from the pancreatic head. Thus, the answer is B. pancreatic head.")
    assert c.reasoning == "The local view of the pancreas places the lesion in the head."
    assert c.summary == "The lesion arises from the pancreatic head."
    assert c.answer == "B. pancreatic head" and c.found
