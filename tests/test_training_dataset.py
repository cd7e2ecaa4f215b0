"""Training builds exactly what inference feeds: the same ids, the same organ tokens, the same loss."""
from __future__ import annotations

import pytest
import torch

from tests.tiny_models import one_torch_thread
from tests.training_assets import tiny_assets

pytestmark = pytest.mark.slow  # builds the tiny cohort and model (~10-20 s)


def _model_and_dataset(tmp_path, **over):
    from training.build_model import training_model
    from training.data_setup import build_datasets

    a = tiny_assets()
    cfg = a.train_config(tmp_path / "run", **over)
    model, _ = training_model(cfg)
    return model, build_datasets(cfg, model, log_fn=None), cfg


def test_sequence_equals_inference_training_sequence(tmp_path):
    """Our replay of the IIR loop gives the ids of inference's own training_sequence (prompts.py)."""
    from inference.iir.prompts import OrganRef, training_sequence
    from inference.labels import merged_labels
    from training.manifest import load_manifest

    model, ds, cfg = _model_and_dataset(tmp_path)
    table = merged_labels()
    samples = {s.id: s for s in load_manifest(cfg.train_manifest)}
    multi = 0
    for ex in ds.examples:
        s = samples[ex.sample_id]
        rounds = [(r.answer, [OrganRef(table.by_name(n).id, table.by_name(n).display, table.by_name(n).id)
                              for n in r.attend]) for r in s.chain]
        ref = training_sequence(model.tokenizer, s.question, rounds, model.config.n_global_tokens,
                                model.config.n_organ_tokens)
        assert torch.equal(ex.input_ids, ref.input_ids), s.id
        assert torch.equal(ex.labels, ref.labels()), s.id
        assert [sl[0] for sl in ex.slots.tolist()] == [sl.start for sl in ref.slots]
        multi += len(s.chain) > 2
    assert multi > 0  # some samples have three rounds
    # answers (and their end-of-answer id) are the only labelled tokens; never a placeholder
    ex = ds.examples[0]
    lab = ex.labels[ex.labels != -100]
    assert lab.numel() > 10 and model.ct_token_id not in lab and model.organ_token_id not in lab
    assert int(ex.labels[ex.labels != -100][-1]) == model.tokenizer.eos_token_id


def _model_config_with(a, tmp_path, **fields):
    import json

    from inference.model import TumorChainConfig

    cfg = json.loads(a.model_config.read_text())
    cfg.update(fields)
    path = tmp_path / "model_config.json"
    TumorChainConfig.from_dict(cfg).save(path)
    return path


@pytest.mark.parametrize("gamma_mode", ["tokens", "crop"])
def test_joint_forward_matches_inference_forward(tmp_path, gamma_mode):
    """LM loss of the training forward == TumorChainModel.forward on visual tokens made by inference
    (preprocess, encode_case, Gamma organ_tokens) for the same sample. In crop mode both sides
    re-encode each organ's box from the native CT: training trains what inference runs."""
    from inference.ct_io import load_ct
    from inference.preprocess import preprocess
    from inference.segmentation.expert import make_expert
    from training.collate import Collator
    from training.joint_model import TumorChainForTraining
    from training.manifest import load_manifest

    with one_torch_thread():
        model, ds, cfg = _model_and_dataset(
            tmp_path, model_config=str(_model_config_with(tiny_assets(), tmp_path, gamma_mode=gamma_mode)),
            cache_dir=str(tmp_path / f"cache_{gamma_mode}"))
        assert model.config.gamma_mode == gamma_mode
        model.eval()
        samples = {s.id: s for s in load_manifest(cfg.train_manifest)}
        ex_i = max(range(len(ds)), key=lambda i: int((ds.examples[i].slots[:, 1] == 1).sum()))
        ex = ds.examples[ex_i]
        s = samples[ex.sample_id]
        batch = Collator(model.tokenizer.pad_token_id)([ds[ex_i]])
        n_organs = batch["organ_weights"].shape[0]
        # crop mode: each organ's box is a volume of its own, encoded beside the case
        assert batch["volumes"].shape[0] == 1 + (n_organs if gamma_mode == "crop" else 0)
        wrapper = TumorChainForTraining(model, cls_loss_weight=1.0)
        with torch.no_grad():
            wrapper(**batch)
        parts = wrapper.last_parts

        ct = load_ct(s.ct_file)
        mi = preprocess(ct, make_expert("precomputed", path=s.masks_file, parts_path=s.parts_file).segment(ct),
                        shape=model.config.vision.img_size)
        with torch.no_grad():
            enc = model.encode_case(mi.volume)
            organs = [model.organ_tokens(enc, mi.mask(label), volume=mi, label=label)
                      for _, kind, label in ex.slots.tolist() if kind == 1]
            out = model(ex.input_ids[None], model.global_tokens(enc), torch.cat(organs), labels=ex.labels[None])
        assert len(organs) >= 1
        assert abs(float(out.loss) - float(parts.lm_loss)) < 1e-5
        # the classifier target rows use the same Gamma tokens
        cls = ex.cls.tolist()
        with torch.no_grad():
            logits = torch.cat([model.organ_logits(model.organ_tokens(enc, mi.mask(lab), volume=mi, label=lab))
                                for lab, _ in cls])
        ref = torch.nn.functional.cross_entropy(logits, torch.tensor([t for _, t in cls]))
        assert abs(float(ref) - float(parts.cls_loss)) < 1e-5


def test_classifier_runs_on_every_batch(tmp_path):
    """A batch without organ rows still puts the classifier in the graph (no rank waits for another)."""
    from training.collate import Collator
    from training.joint_model import TumorChainForTraining

    with one_torch_thread():
        model, ds, _ = _model_and_dataset(tmp_path, cls_organs="roi")
        batch = Collator(model.tokenizer.pad_token_id)([ds[0]])
        for key in ("organ_weights", "organ_case", "cls_row", "cls_target"):
            batch[key] = batch[key][:0]
        keep = batch["slot_kind"] == 0
        for key in ("slot_sample", "slot_start", "slot_kind", "slot_row"):
            batch[key] = batch[key][keep]
        batch["input_ids"] = torch.where(batch["input_ids"] == model.organ_token_id, 0, batch["input_ids"])
        out = TumorChainForTraining(model)(**batch)
        out["loss"].backward()
        assert model.classifier.fc.weight.grad is not None
        assert model.vision_encoder.patch_embedding.position_embeddings.grad is not None


def test_case_grouped_sampler_is_a_deterministic_permutation():
    from training.sampler import CaseGroupedSampler

    keys = [f"c{i % 5}" for i in range(37)]
    s = CaseGroupedSampler(keys, batch_size=4, seed=1)
    a, b = list(s), list(s)
    assert a == b and sorted(a) == list(range(37))
    s.set_epoch(1)
    assert list(s) != a
    batches = [a[i:i + 4] for i in range(0, len(a), 4)]
    single = sum(len({keys[j] for j in bt}) == 1 for bt in batches)
    assert single >= len(batches) - 4  # at most the short remainders mix cases


def test_cache_entry_is_safetensors_and_keyed_by_geometry(tmp_path):
    from training.case_cache import CaseCache, Geometry
    from training.manifest import load_manifest

    a = tiny_assets()
    s = load_manifest(a.manifest)[0]
    g1 = Geometry((16, 64, 64), (4, 16, 16), 4)
    g2 = Geometry((16, 64, 64), (4, 16, 16), 2)
    c1, c2 = CaseCache(tmp_path, g1), CaseCache(tmp_path, g2)
    p1 = c1.ensure(s.case_id, s.ct_file, s.masks_file, s.parts_file)
    p2 = c2.path_for(s.case_id, s.ct_file, s.masks_file, s.parts_file)
    assert p1 != p2 and p1.suffix == ".safetensors"
    case = c1.load(p1)
    assert tuple(case.volume.shape) == (1, 16, 64, 64) and 0.0 <= float(case.volume.min()) <= float(case.volume.max()) <= 1.0
    w = case.organ_weights(5)  # liver: every row sums to 1 (an average of patches)
    assert w.shape == (4, 64) and torch.allclose(w.sum(dim=1), torch.ones(4))
