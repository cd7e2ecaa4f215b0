"""Single-process training through the Hugging Face Trainer: the loss falls, freeze flags hold,
LoRA trains only adapters (plus projector and classifier) and export merges it into a plain LLM."""
from __future__ import annotations

import json

import pytest
import torch

from tests.training_assets import tiny_assets

pytestmark = pytest.mark.slow


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_train_freeze_and_export(tmp_path):
    from inference.model.modeling_tumorchain import TumorChainModel
    from training.export import export_checkpoint
    from training.trainer import run_training

    a = tiny_assets()
    cfg = a.train_config(tmp_path / "run", max_steps=8, freeze_encoder=True, save_steps=4)
    summary = run_training(cfg, log_fn=lambda *_: None)
    losses = [h["loss"] for h in summary["log"]]
    assert len(losses) == 8 and all("lm_loss" in h and "cls_loss" in h for h in summary["log"])
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # it learns
    log_lines = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert json.loads(log_lines[0])["step"] == 1
    out = tmp_path / "exported"
    result = export_checkpoint(tmp_path / "run" / "checkpoint-8", out)
    assert result["verified_logits_shape"][-1] > 100
    m = TumorChainModel.from_pretrained(out, device="cpu")
    built = _built(a)  # what run_training started from
    # the frozen encoder is bit-identical to the start; the projector moved
    enc_trained = dict(m.vision_encoder.named_parameters())
    assert all(torch.equal(p, enc_trained[n]) for n, p in built.vision_encoder.named_parameters())
    assert not torch.equal(m.projector.linear1.weight, built.projector.linear1.weight)


def _cfg(a):
    from inference.model import TumorChainConfig

    return TumorChainConfig.load(a.model_config)


def _built(a):
    """The model as run_training built it (same seed, same construction order)."""
    from transformers import set_seed

    from inference.model.modeling_tumorchain import TumorChainModel

    set_seed(0)
    return TumorChainModel.build(a.llm, _cfg(a), device="cpu")


def test_lora_trains_adapters_and_export_merges(tmp_path):
    """LoRA with gradient checkpointing: adapters train, export folds them into plain weights."""
    from inference.model.modeling_tumorchain import TumorChainModel
    from training.export import export_checkpoint
    from training.trainer import run_training

    a = tiny_assets()
    cfg = a.train_config(tmp_path / "run", max_steps=4, lora=True, lora_r=4, lora_alpha=8, learning_rate=1e-2,
                         save_steps=4, lora_targets=["q_proj", "v_proj", "not_a_module"], gradient_checkpointing=True)
    summary = run_training(cfg, log_fn=lambda *_: None)
    assert summary["global_step"] == 4
    w = _weights(tmp_path / "run" / "checkpoint-4")
    assert any("lora_A" in k for k in w)
    out = tmp_path / "merged"
    export_checkpoint(tmp_path / "run" / "checkpoint-4", out)
    merged = TumorChainModel.from_pretrained(out, device="cpu")
    assert not any("lora" in n for n, _ in merged.llm.named_parameters())
    base = _built(a)
    q_merged = merged.llm.model.layers[0].self_attn.q_proj.weight
    q_base = base.llm.model.layers[0].self_attn.q_proj.weight
    k_merged = merged.llm.model.layers[0].self_attn.k_proj.weight
    k_base = base.llm.model.layers[0].self_attn.k_proj.weight
    assert not torch.allclose(q_merged, q_base)  # the adapter was folded in
    assert torch.equal(k_merged, k_base)  # no adapter there: untouched


def test_config_defaults_are_table5_and_flags_override(tmp_path):
    import argparse

    from training.config import TrainConfig, add_config_arguments, config_from_args

    cfg = TrainConfig()
    assert (cfg.optimizer, cfg.learning_rate, cfg.lr_scheduler, cfg.weight_decay, cfg.warmup_ratio, cfg.bf16,
            cfg.gradient_accumulation_steps, cfg.per_device_batch_size, cfg.dataloader_workers, cfg.num_epochs,
            cfg.cls_loss_weight) == ("adamw_torch", 3e-5, "cosine", 0.0, 0.03, True, 2, 2, None, 1.0, 1.0)
    (tmp_path / "run.yaml").write_text("learning_rate: 1.0e-4\nlora: true\nlora_r: 16\n")
    p = argparse.ArgumentParser()
    add_config_arguments(p)
    args = p.parse_args(["--config", str(tmp_path / "run.yaml"), "--lora-r", "8", "--no-bf16",
                         "--lora-targets", "q_proj", "v_proj"])
    cfg = config_from_args(args)
    assert (cfg.learning_rate, cfg.lora, cfg.lora_r, cfg.bf16, cfg.lora_targets) == (1e-4, True, 8, False, ["q_proj", "v_proj"])
    (tmp_path / "bad.json").write_text('{"learning_rat": 1}')
    from inference.errors import InputError

    with pytest.raises(InputError, match="bad.json.*learning_rat"):
        TrainConfig.load(tmp_path / "bad.json")


def test_default_dataloader_workers_follow_the_cores(monkeypatch):
    """Table 5's 16 workers per process, but never more than the cores each process has beside its own:
    16 workers on a 2-core machine only fight the training threads."""
    from training import config
    from training.config import TrainConfig, workers_for_cores

    assert [workers_for_cores(c) for c in (1, 2, 4, 17, 64)] == [0, 1, 3, 16, 16]
    assert workers_for_cores(32, processes_per_node=4) == 7 and workers_for_cores(2, processes_per_node=4) == 0
    monkeypatch.setattr(config, "available_cores", lambda: 2)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert TrainConfig().workers == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert TrainConfig().workers == 0
    assert TrainConfig(dataloader_workers=5).workers == 5  # a setting wins
    with pytest.raises(ValueError, match="dataloader_workers"):
        TrainConfig(dataloader_workers=-1)


def test_train_help_describes_every_flag():
    """`tumorchain-train train --help`: every setting has a flag with its own description (and its default)."""
    import contextlib
    import io
    from dataclasses import fields

    from training.cli import main
    from training.config import FIELD_HELP, TrainConfig

    assert set(FIELD_HELP) == {f.name for f in fields(TrainConfig)}
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(out.getvalue().split())  # argparse wraps lines
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        assert " ".join(FIELD_HELP[f.name].split()) in text, f.name
    assert "(default: 3e-05)" in text and "(default: 16)" not in text


def _masked_model_config(a, tmp_path):
    """The tiny model config with a 2-layer conv stem and masked Gamma, saved under tmp_path."""
    from inference.model import TumorChainConfig

    cfg_dict = json.loads(a.model_config.read_text())
    cfg_dict["vision"].update(stem_channels=[4, 6], stem_strides=[[1, 2, 2], [1, 2, 2]])
    cfg_dict["gamma_mode"] = "masked"
    path = tmp_path / "masked_config.json"
    TumorChainConfig.from_dict(cfg_dict).save(path)
    return path


def test_masked_gamma_trains_through_the_trainer_and_matches_inference(tmp_path):
    """gamma_mode 'masked': the cache keeps the stem-voxel weights, the training forward pools the
    stem features as inference does (same organ tokens), the loss falls, organ_pool learns and is
    exported."""
    from inference.model.modeling_tumorchain import TumorChainModel
    from training.export import export_checkpoint
    from training.trainer import run_training

    a = tiny_assets()
    cfg_path = _masked_model_config(a, tmp_path)
    cfg = a.train_config(tmp_path / "run", max_steps=8, model_config=str(cfg_path), cache_dir=str(tmp_path / "cache"))
    summary = run_training(cfg, log_fn=lambda *_: None)
    losses = [h["loss"] for h in summary["log"]]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    out = tmp_path / "exported"
    export_checkpoint(tmp_path / "run" / "checkpoint-8", out)
    m = TumorChainModel.from_pretrained(out, device="cpu")
    assert m.config.gamma_mode == "masked" and "organ_pool" in m.parts

    # the cached, collated weights give exactly inference's organ tokens for the same organ
    from inference.ct_io import load_ct
    from inference.labels import merged_labels
    from inference.preprocess import preprocess
    from inference.segmentation.expert import make_expert
    from training.case_cache import CaseCache, Geometry
    from training.manifest import load_manifest

    sample = load_manifest(a.manifest)[0]
    cache = CaseCache(tmp_path / "cache", Geometry.from_model_config(m.config))
    case = cache.load(next((tmp_path / "cache").glob(f"{sample.case_id}-*.safetensors")))
    ct = load_ct(sample.ct_file)
    model_input = preprocess(ct, make_expert("precomputed", path=sample.masks_file, parts_path=sample.parts_file).segment(ct),
                             shape=m.config.vision.img_size)
    label = merged_labels().by_name("liver").id
    rows, cols, vals = (torch.from_numpy(x) for x in case.masked[label])
    with torch.no_grad():
        enc = m.encode_case(case.volume[None])
        train_side = m.projector(m.organ_inputs(None, enc.features, None, None, torch.tensor([label]), rows.long(),
                                                cols.long(), vals))
        infer_side = m.organ_tokens(enc, model_input.mask(label), label=label)
    assert tuple(train_side.shape) == (1, m.config.n_organ_tokens, m.config.llm_hidden_size)
    assert torch.allclose(train_side, infer_side, atol=1e-5)


def test_frozen_encoder_cache_runs_the_encoder_once_per_case_and_changes_nothing(tmp_path):
    """With the encoder frozen, its outputs per case are kept (up to the cap) instead of recomputed
    every batch; the training run's losses are the same as without the cache."""
    from training.joint_model import FrozenEncoderCache
    from training.trainer import run_training

    calls = []

    class Encoder(torch.nn.Module):
        def forward_with_features(self, v):
            calls.append(v.shape[0])
            return v.flatten(1)[:, :6].reshape(-1, 2, 3) * 2, v[:, :, :1] + 1

    cache = FrozenEncoderCache(max_bytes=3 * (6 + 4) * 4)  # room for three cases
    vols = torch.rand(4, 1, 2, 2, 2)
    t, f = cache.encode(Encoder(), vols[:2], torch.tensor([10, 11]))
    t2, f2 = cache.encode(Encoder(), vols[[1, 0, 2, 3]], torch.tensor([11, 10, 12, 13]))
    assert calls == [2, 2]  # the second call ran only the two new cases
    assert torch.equal(t2[:2], t[[1, 0]]) and torch.equal(f2[:2], f[[1, 0]])
    assert torch.equal(t2[3], vols[3].flatten()[:6].reshape(2, 3) * 2)
    assert len(cache.store) == 3  # the fourth case did not fit under the cap
    cache.encode(Encoder(), vols[[3]], torch.tensor([13]))
    assert calls == [2, 2, 1]

    a = tiny_assets()
    cfg_path = _masked_model_config(a, tmp_path)
    losses = []
    for mb in (0, 64):
        cfg = a.train_config(tmp_path / f"run{mb}", max_steps=4, model_config=str(cfg_path),
                             cache_dir=str(tmp_path / "cache"), freeze_encoder=True, frozen_encoder_cache_mb=mb)
        losses.append([h["loss"] for h in run_training(cfg, log_fn=lambda *_: None)["log"]])
    assert len(losses[0]) == 4 and losses[0] == pytest.approx(losses[1], rel=1e-5)
