"""M3D-LaMed folders: converted offline, loaded through the project, checked against an independent
re-implementation of M3D's forward pass written here from its published code (BAAI-DCAI/M3D:
multimodal_encoder/vit.py on MONAI 1.3's blocks, multimodal_projector/spatial_pooling_projector.py,
lamed_arch.prepare_inputs_for_multimodal, dataset/multi_dataset.py's prompt), then run through
the IIR pipeline, the reports and the trainer. No downloads: tests/m3d_lamed_fixture.py writes a
tiny folder with the published key names, config fields and sharded safetensors + index."""
from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from inference.errors import ModelError
from tests.m3d_lamed_fixture import (IMAGE_SIZE, LLM_HIDDEN, PATCH_SIZE, VIT_HEADS, llm_config, read_state,
                                     write_lamed_folder, write_shards)
from tests.tiny_models import one_torch_thread

QUESTION = "is there a lesion in the liver ?"


@pytest.fixture(autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


def _convert(tmp_path, kind="phi3", bos=True, organ_tokens=4, spm=False):
    from inference.model.convert_lamed import convert_lamed

    src = write_lamed_folder(tmp_path / f"M3D-LaMed-{kind}", kind=kind, bos=bos, spm=spm)
    dst = tmp_path / f"converted-{kind}"
    report = convert_lamed(src, dst, hints={"num_heads": VIT_HEADS}, n_organ_tokens=organ_tokens)
    return src, dst, report


# ------------------------------------------------------------------ the independent reference
def _layer_norm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def reference_vit(s: dict, image: torch.Tensor) -> torch.Tensor:
    """MONAI 1.3 ViT, perceptron patches ("b c (h p1) (w p2) (d p3) -> b (h w d) (p1 p2 p3 c)"),
    class token first, pre-norm blocks (SABlock without qkv bias, MLPBlock with erf GELU), final norm;
    ViT3DTower keeps the patch tokens (select_feature "patch")."""
    b, c = image.shape[:2]
    (p1, p2, p3), (d, h, w) = PATCH_SIZE, image.shape[2:]
    x = image.reshape(b, c, d // p1, p1, h // p2, p2, w // p3, p3)
    x = torch.einsum("bcxiyjzk->bxyzijkc", x).reshape(b, (d // p1) * (h // p2) * (w // p3), p1 * p2 * p3 * c)
    x = x @ s["patch_embedding.patch_embeddings.1.weight"].T + s["patch_embedding.patch_embeddings.1.bias"]
    x = x + s["patch_embedding.position_embeddings"]
    x = torch.cat([s["cls_token"].expand(b, -1, -1), x], dim=1)
    n_blocks = len({k.split(".")[1] for k in s if k.startswith("blocks.")})
    for i in range(n_blocks):
        p = f"blocks.{i}."
        y = _layer_norm(x, s[p + "norm1.weight"], s[p + "norm1.bias"])
        qkv = (y @ s[p + "attn.qkv.weight"].T).reshape(b, x.shape[1], 3, VIT_HEADS, -1)
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))  # (b, heads, n, hd)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, x.shape[1], -1)
        x = x + y @ s[p + "attn.out_proj.weight"].T + s[p + "attn.out_proj.bias"]
        y = _layer_norm(x, s[p + "norm2.weight"], s[p + "norm2.bias"])
        y = y @ s[p + "mlp.linear1.weight"].T + s[p + "mlp.linear1.bias"]
        y = 0.5 * y * (1.0 + torch.erf(y / math.sqrt(2.0)))
        x = x + y @ s[p + "mlp.linear2.weight"].T + s[p + "mlp.linear2.bias"]
    return _layer_norm(x, s["norm.weight"], s["norm.bias"])[:, 1:]


def reference_spp(s: dict, tokens: torch.Tensor) -> torch.Tensor:
    """SpatialPoolingProjector(pooling "spatial", size 2, layer_type "mlp", layer_num 2)."""
    grid = [i // p for i, p in zip(IMAGE_SIZE, PATCH_SIZE)]
    b, _, dim = tokens.shape
    x = tokens.transpose(1, 2).reshape(b, dim, *grid)
    x = F.avg_pool3d(x, kernel_size=2, stride=2).flatten(2).transpose(1, 2)
    x = x @ s["projector.0.weight"].T + s["projector.0.bias"]
    x = F.gelu(x)
    return x @ s["projector.2.weight"].T + s["projector.2.bias"]


def reference_logits(src, kind: str, image: torch.Tensor, question: str) -> torch.Tensor:
    """M3D-LaMed's forward: ids of "<im_patch>" x 256 + " " + question, embeddings with the image
    features written over positions 1 .. Lg (lamed_arch), a plain transformers LLM on top."""
    from transformers import (LlamaConfig, LlamaForCausalLM, LlamaTokenizer, Phi3Config, Phi3ForCausalLM,
                              PreTrainedTokenizerFast)

    state = read_state(src)
    vit = {k[len("model.vision_tower.vision_tower."):]: v for k, v in state.items()
           if k.startswith("model.vision_tower.vision_tower.")}
    proj = {k[len("model.mm_projector."):]: v for k, v in state.items() if k.startswith("model.mm_projector.")}
    features = reference_spp(proj, reference_vit(vit, image))
    tok = (LlamaTokenizer if (src / "tokenizer.model").is_file() else PreTrainedTokenizerFast).from_pretrained(
        str(src))  # by class: the folder's config.json names remote code
    cfg_cls, model_cls = (Phi3Config, Phi3ForCausalLM) if kind == "phi3" else (LlamaConfig, LlamaForCausalLM)
    llm = model_cls(cfg_cls(**llm_config(kind, len(tok)))).eval()
    llm.load_state_dict({k: v for k, v in state.items() if not k.startswith(("model.vision_tower", "model.mm_projector",
                                                                             "model.seg_"))})
    n = features.shape[1]
    ids = tok("<im_patch>" * n + " " + question, return_tensors="pt")["input_ids"]
    embeds = llm.get_input_embeddings()(ids)
    embeds = torch.cat([embeds[:, :1], features, embeds[:, n + 1:]], dim=1)
    with torch.no_grad():
        return llm(inputs_embeds=embeds).logits


def project_logits(dst, image: torch.Tensor, question: str) -> torch.Tensor:
    """The same pass through the project: from_pretrained, encode, global tokens, round 1's segments."""
    from inference.iir.interleaved_input import SequenceBuilder
    from inference.iir.prompt_style import prompt_style
    from inference.model.modeling_tumorchain import TumorChainModel

    m = TumorChainModel.from_pretrained(dst, device="cpu", dtype="float32")
    with torch.no_grad():
        gt = m.global_tokens(m.encode_case(image))
        segs = prompt_style(m.config, m.tokenizer).first_round(question, gt.shape[1])
        seq = SequenceBuilder(m.tokenizer, m.config.ct_token, m.config.organ_token).build(segs)
        return m(seq.input_ids[None], gt).logits


@pytest.mark.parametrize("kind,bos,spm", [("phi3", True, False), ("llama", True, False), ("phi3", False, False),
                                          ("llama", True, True)])
def test_converted_forward_equals_m3d_reimplementation(tmp_path, kind, bos, spm):
    """spm: the tokenizer as M3D's slow tokenizer saves it (tokenizer.model only, sentencepiece)."""
    src, dst, report = _convert(tmp_path, kind, bos, spm=spm)
    image = torch.rand(1, 1, *IMAGE_SIZE, generator=torch.Generator().manual_seed(3))
    ref = reference_logits(src, kind, image, QUESTION)
    ours = project_logits(dst, image, QUESTION)
    assert ours.shape[1] == ref.shape[1]
    # the converted vocabulary has two more rows (our placeholders): compare the original ones
    torch.testing.assert_close(ours[..., :ref.shape[-1]], ref, atol=2e-5, rtol=1e-4)
    assert report.n_tensors["skipped"] == 5 and report.llm_type == kind
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["projector_type"] == "m3d_spp" and cfg["preprocessing"] == "m3d" and cfg["organ_classifier"] is False
    assert any("SegVol" in n and "skipped" in n for n in cfg["source_notes"])
    llm_cfg = json.loads((dst / "llm" / "config.json").read_text())
    assert llm_cfg["model_type"] == kind and "auto_map" not in llm_cfg and "mm_hidden_size" not in llm_cfg


def test_a_changed_weight_changes_the_logits(tmp_path):
    """The comparison above can fail: perturb one projector weight after conversion."""
    from safetensors.torch import load_file, save_file

    src, dst, _ = _convert(tmp_path)
    image = torch.rand(1, 1, *IMAGE_SIZE, generator=torch.Generator().manual_seed(3))
    state = load_file(str(dst / "model.safetensors"))
    state["projector.projector.2.bias"] = state["projector.projector.2.bias"] + 0.05
    save_file(state, str(dst / "model.safetensors"))
    ref = reference_logits(src, "phi3", image, QUESTION)
    ours = project_logits(dst, image, QUESTION)
    assert not torch.allclose(ours[..., :ref.shape[-1]], ref, atol=1e-3)


@pytest.mark.parametrize("change,named", [
    ("drop", "model.layers.1.mlp.down_proj.weight"),
    ("drop", "model.vision_tower.vision_tower.blocks.1.attn.qkv.weight"),
    ("drop", "model.mm_projector.projector.2.bias"),
    ("add", "model.mm_projector.projector.4.weight"),
    ("add", "model.vision_tower.vision_tower.blocks.7.norm1.weight"),
    ("add", "model.layers.9.input_layernorm.weight"),
    ("add", "visual.stray.weight"),
    ("shape", "model.mm_projector.projector.0.weight"),
])
def test_missing_extra_or_misshaped_tensor_fails_naming_it(tmp_path, change, named):
    from inference.model.convert_lamed import convert_lamed

    src = write_lamed_folder(tmp_path / "src")
    state = read_state(src)
    if change == "drop":
        del state[named]
    elif change == "add":
        state[named] = torch.zeros(4)
    else:
        state[named] = torch.zeros(3, 3)
    write_shards(src, state, 2)
    with pytest.raises(ModelError, match=named.replace(".", r"\.")):
        convert_lamed(src, tmp_path / "dst", hints={"num_heads": VIT_HEADS}, n_organ_tokens=4)
    assert not (tmp_path / "dst").exists()  # checked before anything is written


def test_refusals_name_the_file(tmp_path):
    from inference.model.convert_lamed import convert_lamed

    src = write_lamed_folder(tmp_path / "src")
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(cfg | {"proj_pooling_type": "sequence"}))
    with pytest.raises(ModelError, match=r"config\.json: proj_pooling_type"):
        convert_lamed(src, tmp_path / "a", hints={"num_heads": VIT_HEADS})
    (src / "config.json").write_text(json.dumps(cfg | {"model_type": "llava"}))
    with pytest.raises(ModelError, match="not an M3D-LaMed model"):
        convert_lamed(src, tmp_path / "b", hints={"num_heads": VIT_HEADS})
    (src / "config.json").write_text(json.dumps(cfg))
    (src / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelError, match="missing weight shard"):
        convert_lamed(src, tmp_path / "c", hints={"num_heads": VIT_HEADS})


def test_vision_only_converter_picks_the_tower_not_segvol(tmp_path):
    """convert_m3d used to refuse 'several vision encoders' on an M3D-LaMed checkpoint."""
    from inference.model.convert_m3d import convert

    src = write_lamed_folder(tmp_path / "src")
    report = convert(src, tmp_path / "vit.safetensors", {"num_heads": VIT_HEADS})
    assert report.source_prefix == "model.vision_tower.vision_tower."


def test_m3d_preprocessing_is_minmax_and_foreground_crop():
    from inference.preprocess import preprocess
    from tests.test_preprocess import phantom

    ct, masks = phantom()
    mi = preprocess(ct, masks, shape=IMAGE_SIZE, scheme="m3d")
    ours = preprocess(ct, masks, shape=IMAGE_SIZE)
    assert mi.scheme == "m3d" and float(mi.volume.min()) >= 0.0 and float(mi.volume.max()) <= 1.0
    assert not torch.allclose(mi.volume, ours.volume)  # no soft-tissue window
    # a voxel at the CT's maximum maps to 1, at its minimum to 0 (min-max over the whole volume)
    hu = ct.hu.astype("float32")
    lo, hi = float(hu.min()), float(hu.max())
    assert mi._intensity(hu).max() == pytest.approx(1.0) and mi._intensity(hu).min() == pytest.approx(0.0)
    assert mi._intensity(hu)[0, 0, 0] == pytest.approx((hu[0, 0, 0] - lo) / (hi - lo))


def test_pipeline_runs_the_organ_guided_loop_and_records_it(tmp_path):
    """Zero-shot run: round 1 with M3D's prompt, round 2 re-encodes the liver's box (crop, pooled like
    the global tokens) and appends it; run.json says M3D preprocessing, no organ classifier, SegVol skipped;
    the CLI's and the reports' text say "no organ classifier in this model"; no deprecation warning."""
    from inference.iir.decoding import SamplingConfig
    from inference.iir.loop import IIRSettings
    from inference.pipeline import Pipeline
    from inference.run_record import RunRecord
    from tests.test_preprocess import phantom

    _, dst, _ = _convert(tmp_path)
    ct, masks = phantom()
    settings = IIRSettings(max_rounds=2, sampling=SamplingConfig(max_new_tokens=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        pipe = Pipeline.from_model_dir(dst, settings=settings, device="cpu", dtype="float32")
        record = pipe.analyze_volume(ct, masks, QUESTION)
    assert len(record.rounds) == 2, "the question names the liver, so round 2 examines it"
    r1, r2 = record.rounds
    assert r1.timings.prompt_tokens == 1 + 8 + len(QUESTION.split())  # BOS, Lg, the question
    assert [o.name for o in r2.organs] == ["liver"]
    assert r2.organs[0].abnormal_prob is None and r2.organs[0].n_tokens == 4
    assert "greater attention to liver" in r2.prompt
    saved = RunRecord.load(record.save(tmp_path / "run.json"))
    assert saved.model.organ_classifier is False and saved.model.preprocessing.startswith("m3d: ")
    assert any("SegVol" in n for n in saved.model.notes)
    assert saved.rounds[1].organs[0].abnormal_prob is None

    from inference.iir.rounds import NO_CLASSIFIER, abnormal_text

    assert abnormal_text(None) == NO_CLASSIFIER == "no organ classifier in this model"
    # a second question about the case re-encodes neither the case nor the liver's box
    calls = []
    encode = pipe.model.encode_case
    pipe.model.encode_case = lambda volume: calls.append(volume.shape) or encode(volume)
    again = pipe.analyze_volume(ct, masks, QUESTION)
    assert calls == [] and again.rounds[1].organs[0].name == "liver"
    assert again.rounds[1].text == r2.text  # greedy: the same tokens from the cached organ tokens

    from app.model_card_dialog import model_card_markdown  # the workstation's model card says it too

    card = model_card_markdown(dst)
    assert "no organ classifier in this model" in card and "SegVol segmentation module skipped" in card


def test_crop_round_tokens_come_from_the_pooled_crop(tmp_path):
    """Gamma on a converted model: the organ's box is re-encoded and pooled like the global tokens
    (what M3D's projector was trained on), Ll of those pooled cells are projected."""
    from inference.model.modeling_tumorchain import TumorChainModel
    from inference.model.projector import pool_patch_grid
    from inference.preprocess import preprocess
    from tests.test_preprocess import phantom

    _, dst, _ = _convert(tmp_path)
    m = TumorChainModel.from_pretrained(dst, device="cpu", dtype="float32")
    ct, masks = phantom()
    mi = preprocess(ct, masks, shape=IMAGE_SIZE, scheme="m3d")
    liver = mi.mask(masks.table.by_name("liver").id)
    with torch.no_grad():
        enc = m.encode_case(mi.volume)
        tokens, sel = m.organ_selection(enc, liver, mi)
        crop = m.crop_input(liver, mi)
        pooled = pool_patch_grid(m.encode_case(crop.volume).tokens, enc.grid, m.config.pool_size)
    assert sel.grid == m.config.pooled_grid and sel.box is not None
    torch.testing.assert_close(tokens, (sel.weights @ pooled[0])[None])
    assert m.organ_tokens(enc, liver, mi).shape == (1, 4, LLM_HIDDEN)


@pytest.mark.slow
def test_a_converted_folder_is_a_starting_point_for_fine_tuning(tmp_path):
    """training/ loads the converted folder (no classifier: language loss only), trains a few steps
    on the tiny cohort with M3D's prompt layout and organ pooling, and the export loads back."""
    from safetensors.torch import load_file

    from inference.model.modeling_tumorchain import TumorChainModel
    from tests.training_assets import tiny_assets
    from training.export import export_checkpoint
    from training.trainer import run_training

    _, dst, _ = _convert(tmp_path)
    a = tiny_assets()
    cfg = a.train_config(tmp_path / "run", model=str(dst), llm=None, model_config=None, max_steps=3, save_steps=3,
                         per_device_batch_size=1, max_samples=6, cache_dir=str(tmp_path / "cache"))
    summary = run_training(cfg, log_fn=lambda *_: None)
    assert len(summary["log"]) == 3 and all(math.isfinite(h["loss"]) for h in summary["log"])
    assert all(h["cls_loss"] == 0.0 for h in summary["log"])  # no classifier in an M3D-LaMed model
    out = tmp_path / "exported"
    export_checkpoint(tmp_path / "run" / "checkpoint-3", out)
    m = TumorChainModel.from_pretrained(out, device="cpu")
    assert m.config.projector_type == "m3d_spp" and not m.has_organ_classifier
    before = load_file(str(dst / "model.safetensors"))["projector.projector.0.weight"]
    assert not torch.equal(m.projector.projector[0].weight, before)  # the projector trained


def test_a_task_run_exports_every_report_format_without_classifier_numbers(tmp_path):
    """The standard task path (the default card, no model_card.json in a converted folder) and the
    exports: key images, captions and provenance name the organs without inventing a P(abnormal)."""
    import pypdf

    from inference.iir.decoding import SamplingConfig
    from inference.iir.loop import IIRSettings
    from inference.pipeline import Pipeline
    from inference.report import Review, export_report
    from tests.test_preprocess import phantom

    _, dst, _ = _convert(tmp_path)
    ct, masks = phantom()
    settings = IIRSettings(max_rounds=2, sampling=SamplingConfig(max_new_tokens=3))
    pipe = Pipeline.from_model_dir(dst, settings=settings, device="cpu", dtype="float32")
    record = pipe.analyze_volume(ct, masks, None, task="attributes", organ="liver")
    assert record.model_card["source"] == "default"  # a converted folder has no card: the built-in prompts
    examined = [r for r in record.rounds if r.organs]
    assert examined and all(o.abnormal_prob is None for r in examined for o in r.organs)
    review = Review.for_run(record, reviewer="Dr Test")
    exp = export_report(record, review, ct, masks, tmp_path / "out", formats={"json", "html", "pdf"})
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["organ_images"] and all(o["abnormal_prob"] is None and not o["flagged"]
                                          for o in report["organ_images"])
    html = exp.paths["html"].read_text()
    assert "no organ classifier in this model" in html and "P(abnormal) 0." not in html
    pdf = " ".join(p.extract_text() for p in pypdf.PdfReader(exp.paths["pdf"]).pages)
    assert "no organ classifier in this model" in " ".join(pdf.split())
