"""Test doubles for the IIR tests: a byte-level BPE tokenizer trained in memory, a tiny random
Qwen2 LM, visual token providers, a scripted round generator and a plain organ-name matcher.
Nothing is downloaded."""
from __future__ import annotations

import re
import threading
import time
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from inference.errors import Cancelled
from inference.iir.decoding import Generation

CORPUS = [
    "The liver shows a hypodense lesion in segment 4. Thus, the answer is T3.",
    "The pancreas head has an ill-defined mass; the spleen is normal. Thus, the answer is pancreatic head.",
    "No enlarged lymph nodes. The stomach wall is thickened. Thus, the answer is T2N0M0.",
    "The question requires greater attention to liver. Answer:\n",
    "Café au lait → größer, naïve résumé; 肝脏 病变 ✓",
]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run ~30x slower with 2 OpenMP threads on a shared 2-core box (spin waits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@lru_cache(maxsize=1)
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE (so multi-byte characters span several tokens) with the TumorChain specials."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=["<|endoftext|>", "<ct>", "<organ_feature>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   additional_special_tokens=["<ct>", "<organ_feature>"])


def tiny_llm(seed: int = 0, hidden: int = 64, layers: int = 2) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tiny_tokenizer()), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=4096, tie_word_embeddings=False)
    llm = Qwen2ForCausalLM(cfg).eval()
    # sharpen the random logits so greedy picks are far from ties (cached vs uncached is exact)
    with torch.no_grad():
        llm.lm_head.weight.mul_(8.0)
    return llm


def visual(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, n, k, generator=g)


class FakeFeatures:
    """CaseFeatures with fixed random tokens; ``voxels`` maps label id -> mask voxels."""

    def __init__(self, voxels: dict[int, int], k: int = 64, n_global: int = 6, n_organ: int = 3,
                 probs: dict[int, float] | None = None):
        self.voxels, self.k, self.n_global, self.n_organ = voxels, k, n_global, n_organ
        self.probs = probs or {}
        self.organ_calls: list[int] = []

    def global_tokens(self):
        return visual(self.n_global, self.k, 1)

    def mask_voxels(self, label_id: int) -> int:
        return self.voxels.get(label_id, 0)

    def organ_tokens(self, mask_label: int):
        self.organ_calls.append(mask_label)
        t = visual(self.n_organ, self.k, 100 + mask_label)
        t[0, 0, 0] = float(mask_label)  # lets abnormal_prob tell the organ apart
        return t

    def abnormal_prob(self, organ_tokens) -> float:
        return self.probs.get(int(organ_tokens[0, 0, 0]), 0.5)


class ScriptedGenerator:
    """RoundGenerator that answers round r with ``answers[r-1]``, streamed a word at a time.

    Records the segments and visuals each round received; checks ``cancel`` before each word
    (one word = one "token step") and sleeps ``step_s`` per word.
    """

    def __init__(self, answers: list[str], step_s: float = 0.0):
        self.answers = answers
        self.step_s = step_s
        self.calls: list[tuple[list, list]] = []
        self.words_emitted = 0

    def generate(self, segments, visuals, on_text=None, cancel: threading.Event | None = None) -> Generation:
        self.calls.append((list(segments), list(visuals)))
        text = self.answers[len(self.calls) - 1]
        words = re.findall(r"\S+\s*", text)
        for w in words:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled by the user")
            if self.step_s:
                time.sleep(self.step_s)
            self.words_emitted += 1
            if on_text is not None:
                on_text(w)
        return Generation(ids=list(range(len(words))), text=text, stop_reason="eos", prefill_tokens=10,
                          prefill_ms=1.0, decode_ms=2.0, context_tokens=10 * len(self.calls))


_NEG = re.compile(r"\b(no|without|not)\b[^.;]*$", re.IGNORECASE)


def simple_matcher(text: str, table, include_negated: bool = True) -> list[int]:
    """Label ids whose display name (or name with spaces) occurs in ``text``, in order of first
    mention; a mention in a clause that starts with no/without/not counts as negated."""
    hits: list[tuple[int, int]] = []
    low = text.lower()
    for lab in table:
        for name in {lab.display.lower(), lab.name.replace("_", " ").lower()}:
            for m in re.finditer(r"\b" + re.escape(name) + r"\b", low):
                clause = low[max(low.rfind(".", 0, m.start()), low.rfind(";", 0, m.start())) + 1:m.start()]
                if not include_negated and _NEG.search(clause):
                    continue
                hits.append((m.start(), lab.id))
                break
    hits.sort()
    seen: list[int] = []
    for _, lid in hits:
        if lid not in seen:
            seen.append(lid)
    return seen


def write_tiny_model(folder) -> Path:
    """A real TumorChainModel (tiny ViT, tiny random Qwen2, the test tokenizer) saved to folder/model."""
    from inference.model.config import TumorChainConfig, VisionConfig
    from inference.model.modeling_tumorchain import TumorChainModel

    folder = Path(folder)
    tiny_llm().save_pretrained(folder / "base")
    tiny_tokenizer().save_pretrained(folder / "base")
    cfg = TumorChainConfig(vision=VisionConfig(hidden_size=32, mlp_dim=64, num_layers=1, num_heads=2),
                           n_organ_tokens=4)
    torch.manual_seed(0)
    TumorChainModel.build(folder / "base", cfg, device="cpu", dtype="float32").save_pretrained(folder / "model")
    return folder / "model"


def write_case(folder, organs=(1, 5, 7), shape=(48, 40, 24)) -> tuple:
    """A small synthetic abdomen: folder/ct.nii.gz (int16 HU, 4 x 4 x 5 mm) and folder/organs.nii.gz
    (merged ids: spleen 1, liver 5, pancreas 7 as boxes inside a body ellipse)."""
    import nibabel as nib
    import numpy as np

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    i, j, _ = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    body = ((i - shape[0] / 2) / (shape[0] * 0.45)) ** 2 + ((j - shape[1] / 2) / (shape[1] * 0.4)) ** 2 < 1
    hu = np.where(body, 40, -1000).astype(np.int16)
    labels = np.zeros(shape, np.uint8)
    boxes = {1: (slice(30, 38), slice(12, 20)), 5: (slice(8, 20), slice(10, 26)), 7: (slice(20, 30), slice(18, 24))}
    for lid in organs:
        si, sj = boxes[lid]
        labels[si, sj, 6:18] = lid
        hu[si, sj, 6:18] = 50 + lid
    affine = np.diag([4.0, 4.0, 5.0, 1.0])
    nib.save(nib.Nifti1Image(hu, affine), folder / "ct.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), folder / "organs.nii.gz")
    return folder / "ct.nii.gz", folder / "organs.nii.gz"
