"""Tiny random Hugging Face checkpoints for the model tests: built in a temp folder, no downloads."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch

from inference.model.config import TumorChainConfig, VisionConfig

@contextmanager
def one_torch_thread():
    """Tiny models run fastest on one thread; on a shared, busy CI machine extra OpenMP threads
    spin and make them many times slower. Restores the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


WORDS = ("the liver spleen pancreas kidney is are normal abnormal lesion a an of in with question answer "
         "thus , . : ? yes no requires greater attention to").split()


def tiny_tokenizer(folder: Path):
    """A whitespace word-level tokenizer over WORDS, saved to folder (tokenizer.json + config)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>", "<eos>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    tok.save_pretrained(str(folder))
    return tok


def tiny_qwen25_vl(folder: Path, vocab_size: int = 64, hidden: int = 32, tie: bool = False, seed: int = 0) -> Path:
    """A Qwen2.5-VL-shaped checkpoint (text + vision tower) saved with save_pretrained."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
                         bos_token_id=None, eos_token_id=2, pad_token_id=1),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=hidden,
                           fullatt_block_indexes=[0], window_size=16, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        tie_word_embeddings=tie,
    )
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    model.save_pretrained(str(folder))
    tiny_tokenizer(folder)
    return folder


def tiny_qwen2(folder: Path, vocab_size: int | None = None, hidden: int = 32, seed: int = 0) -> Path:
    """A plain Qwen2 causal LM; vocab defaults to exactly the tokenizer's size (so adding the
    placeholder tokens must grow the embeddings)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    tok = tiny_tokenizer(folder)
    cfg = Qwen2Config(vocab_size=vocab_size or len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      tie_word_embeddings=True, bos_token_id=None, eos_token_id=2, pad_token_id=1)
    Qwen2ForCausalLM(cfg).eval().save_pretrained(str(folder))
    return folder


def tiny_config(gamma_mode: str = "tokens", n_organ_tokens: int = 4, img_size=(8, 64, 64), patch=(4, 16, 16)) -> TumorChainConfig:
    """Vision 32 wide, 2 layers; grid (2, 4, 4) by default -> Lg = 4 global tokens after 2x2x2 pooling."""
    return TumorChainConfig(
        vision=VisionConfig(img_size=img_size, patch_size=patch, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=4),
        n_organ_tokens=n_organ_tokens, gamma_mode=gamma_mode, projector_hidden=48,
    )


def tiny_model(folder: Path, config: TumorChainConfig | None = None, llm: str = "qwen2_5_vl"):
    """A TumorChainModel on CPU/float32 over a tiny LLM checkpoint written into folder."""
    from inference.model import TumorChainModel

    llm_folder = tiny_qwen25_vl(folder / "vl") if llm == "qwen2_5_vl" else tiny_qwen2(folder / "q2")
    torch.manual_seed(0)
    return TumorChainModel.build(llm_folder, config=config or tiny_config(), device="cpu", dtype=torch.float32)


def as_published_layout(folder: Path, language_model_keys: bool) -> Path:
    """Rewrite a tiny Qwen2.5-VL folder the way checkpoints on the Hub look: text settings flat at
    the top of config.json (transformers 4.4x), and optionally the newer "model.language_model.*"
    / "model.visual.*" key layout of transformers >= 4.52."""
    import json

    from safetensors.torch import load_file, save_file

    cfg = json.loads((folder / "config.json").read_text())
    text = cfg.pop("text_config")
    text.pop("model_type", None)
    rope = text.pop("rope_parameters")
    cfg.update(text)
    cfg["rope_scaling"] = {"type": "mrope", "mrope_section": rope["mrope_section"]}
    cfg["rope_theta"] = rope["rope_theta"]
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    if language_model_keys:
        state = load_file(str(folder / "model.safetensors"))
        renamed = {}
        for key, value in state.items():
            if key.startswith("visual."):
                key = "model." + key
            elif key.startswith("model."):
                key = "model.language_model." + key[len("model."):]
            renamed[key] = value
        save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
