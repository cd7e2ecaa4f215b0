"""A tiny Qwen2 causal LM with random (seeded) weights, written as a Hugging Face folder."""
from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_llm(tokenizer, out_dir: str | Path, seed: int, hidden: int = 128, intermediate: int = 352,
                  layers: int = 4, heads: int = 4, kv_heads: int = 2, max_positions: int = 4096) -> Path:
    """Qwen2ForCausalLM sized by the arguments, vocabulary = the tokenizer's; returns the folder."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(int(seed))
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=max_positions,
        rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, use_cache=True,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
