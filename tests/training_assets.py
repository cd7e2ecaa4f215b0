"""Tiny training assets shared by the training tests, built once per test process in a temp folder:
a 3-case synthetic cohort (64x64x32 voxels), a BPE tokenizer trained on its text, a tiny Qwen2 and
a tiny TumorChain config (16x64x64 input, 4x16x16 patches: 8 global tokens, 4 organ tokens)."""
from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from inference.model.config import TumorChainConfig, VisionConfig


@dataclass(frozen=True)
class TinyAssets:
    root: Path
    cohort: Path
    llm: Path
    model_config: Path

    @property
    def manifest(self) -> Path:
        return self.cohort / "train.jsonl"

    def train_config(self, out: Path, **over):
        from training.config import TrainConfig

        base = dict(train_manifest=str(self.manifest), llm=str(self.llm), model_config=str(self.model_config),
                    output_dir=str(out), cache_dir=str(self.root / "case_cache"), device="cpu", learning_rate=3e-3,
                    max_steps=4, logging_steps=1, save_steps=1000, dataloader_workers=0, num_threads=1,
                    per_device_batch_size=2, gradient_accumulation_steps=1, warmup_ratio=0.0, bf16=False)
        base.update(over)
        return TrainConfig(**base)


def tiny_model_config() -> TumorChainConfig:
    return TumorChainConfig(
        vision=VisionConfig(img_size=(16, 64, 64), patch_size=(4, 16, 16), hidden_size=32, mlp_dim=64,
                            num_layers=1, num_heads=4),
        pool_size=(2, 2, 2), n_organ_tokens=4, projector_hidden=48)


@lru_cache(maxsize=1)
def tiny_assets() -> TinyAssets:
    from training.cohort.generate import generate_cohort
    from training.demo_model.tiny_llm import make_tiny_llm
    from training.demo_model.tokenizer import fixed_texts, manifest_texts, train_tokenizer

    root = Path(tempfile.mkdtemp(prefix="tumorchain-train-test-"))
    atexit.register(shutil.rmtree, root, True)
    cohort = root / "cohort"
    generate_cohort(cohort, 3, 3, (64, 64, 32), None, 1, log=None)
    texts = itertools.chain(manifest_texts([cohort / f"{s}.jsonl" for s in ("train", "val", "test")]), fixed_texts())
    tok = train_tokenizer(texts, 600)
    llm = make_tiny_llm(tok, root / "llm", seed=0, hidden=32, intermediate=64, layers=2, heads=4, kv_heads=2)
    cfg_path = root / "tumorchain_config.json"
    tiny_model_config().save(cfg_path)
    return TinyAssets(root, cohort, llm, cfg_path)
