"""A byte-level BPE tokenizer trained on the cohort's own text (``tokenizers`` library).

Byte-level, like Qwen's: any text encodes and decodes back exactly (a user's question with words
the cohort never used still works), while the cohort's vocabulary gets whole-word tokens. Special
tokens: <|endoftext|> (end of answer and eos), <|pad|>, and the two visual placeholders.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from inference.iir.prompts import PROMPTS_DIR
from inference.labels import merged_labels

EOS, PAD = "<|endoftext|>", "<|pad|>"
CT_TOKEN, ORGAN_TOKEN = "<ct>", "<organ_feature>"
SPECIALS = [EOS, PAD, CT_TOKEN, ORGAN_TOKEN]


def manifest_texts(manifests: Iterable[str | Path]) -> Iterator[str]:
    """Questions, options and every chain round's answer of the manifests."""
    for path in manifests:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                d = json.loads(line)
                yield d["question"]
                yield from d.get("options") or []
                for rnd in d["chain"]:
                    yield rnd["answer"]


def fixed_texts() -> Iterator[str]:
    """Prompt pieces, task questions and organ names, so every prompt the app builds tokenizes well."""
    for name in ("iir_template.json", "tasks.json"):
        data = json.loads((PROMPTS_DIR / name).read_text(encoding="utf-8"))
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack += list(item.values())
            elif isinstance(item, list):
                stack += item
            elif isinstance(item, str):
                yield item
    for label in merged_labels():
        yield f"The question requires greater attention to {label.display}."
        yield label.name.replace("_", " ")


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path | None = None):
    """Train the BPE and wrap it as a transformers PreTrainedTokenizerFast (saved when out_dir)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=int(vocab_size), special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD,
                                   extra_special_tokens=[CT_TOKEN, ORGAN_TOKEN], model_max_length=4096)
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast
