"""Training throughput: samples per second of the tiny configuration on CPU (one process, plain
Trainer, vs two processes through DeepSpeed ZeRO-2 over gloo, measured in the same run), and on a
GPU when one is present, a 3B-sized random TumorChain (Qwen2-3B-shaped LLM, M3D-sized encoder) with
ZeRO-2 in bf16: samples/s and peak memory per GPU.

    python benchmarks/bench_training.py [--steps 20] [--gpu-steps 10] [--skip-gpu]

Prints figures; never part of the pass/fail tests. Builds its data in a temp folder (synthetic
cohort, BPE tokenizer, random LLMs): nothing is downloaded.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def assets(root: Path, cases: int = 8):
    from inference.model.config import TumorChainConfig, VisionConfig
    from training.cohort.generate import generate_cohort
    from training.demo_model.tiny_llm import make_tiny_llm
    from training.demo_model.tokenizer import fixed_texts, manifest_texts, train_tokenizer

    generate_cohort(root / "cohort", cases, 11, (128, 128, 64), None, 1, log=None)
    tok = train_tokenizer(itertools.chain(manifest_texts([root / "cohort" / "train.jsonl"]), fixed_texts()), 1536)
    llm = make_tiny_llm(tok, root / "llm", seed=0)
    recipe = json.loads((REPO / "training/demo_model/recipe.json").read_text())
    cfg = TumorChainConfig.from_dict(dict(recipe["model"]))  # the demo model's sizes
    cfg.save(root / "tiny.json")
    return tok, llm, root / "tiny.json"


def tiny_cpu(root: Path, steps: int) -> dict:
    from training.config import TrainConfig
    from training.trainer import run_training

    _, llm, cfg_path = assets(root)
    common = dict(train_manifest=str(root / "cohort/train.jsonl"), llm=str(llm), model_config=str(cfg_path),
                  cache_dir=str(root / "cache"), device="cpu", bf16=False, dataloader_workers=0, num_threads=1,
                  per_device_batch_size=4, gradient_accumulation_steps=1, logging_steps=steps, save_steps=10**6,
                  learning_rate=1e-3)
    # warm the case cache so both runs time training only
    run_training(TrainConfig(output_dir=str(root / "warm"), max_steps=1, **common), log_fn=lambda *_: None)
    one = run_training(TrainConfig(output_dir=str(root / "one"), max_steps=steps, **common), log_fn=lambda *_: None)
    port = _free_port()
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(port), "-m", "training.cli", "train", "--deepspeed", "zero2", "--output-dir",
            str(root / "ds"), "--max-steps", str(steps)]
    for k, v in common.items():
        flag = "--" + k.replace("_", "-")
        args += ([flag] if v is True else [f"--no-{flag[2:]}"] if v is False else [flag, str(v)])
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    ds = json.loads((root / "ds" / "train_summary.json").read_text())
    return {"steps": steps, "single_process_samples_per_s": one["train_samples_per_second"],
            "zero2_2proc_samples_per_s": ds["train_samples_per_second"], "zero2_launch_wall_s": round(wall, 1)}


def gpu_3b(root: Path, steps: int) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from inference.model.config import TumorChainConfig
    from inference.model.llm_loader import LoadedLLM
    from inference.model.modeling_tumorchain import TumorChainModel
    from training.config import TrainConfig
    from training.trainer import run_training

    tok, _, _ = assets(root, cases=4)
    # Qwen2.5-3B's text sizes, random weights
    qcfg = Qwen2Config(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                       num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=32768,
                       tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with torch.device("cuda"):
        llm = Qwen2ForCausalLM(qcfg).to(torch.bfloat16)
    model = TumorChainModel(TumorChainConfig(), LoadedLLM(llm, "qwen2", False, sum(p.numel() for p in llm.parameters())), tok)
    model.to("cuda", torch.bfloat16)
    cfg = TrainConfig(train_manifest=str(root / "cohort/train.jsonl"), llm="(built in memory)", output_dir=str(root / "gpu"),
                      cache_dir=str(root / "cache_gpu"), deepspeed="zero2", max_steps=steps, logging_steps=steps,
                      save_steps=10**6, gradient_checkpointing=True, dataloader_workers=4)
    torch.cuda.reset_peak_memory_stats()
    s = run_training(cfg, log_fn=lambda *_: None, model=model)
    return {"params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 2), "steps": steps,
            "samples_per_s": s["train_samples_per_second"], "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
            "gpu": torch.cuda.get_device_name(0)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--gpu-steps", type=int, default=10)
    p.add_argument("--skip-gpu", action="store_true")
    p.add_argument("--skip-cpu", action="store_true", help="only the GPU figure (benchmarks/gpu_checks.sh)")
    args = p.parse_args()
    import torch

    with tempfile.TemporaryDirectory(prefix="tumorchain-bench-") as tmp:
        root = Path(tmp)
        result = {"torch_threads": torch.get_num_threads()}
        if not args.skip_cpu:
            cpu = tiny_cpu(root / "cpu", args.steps)
            print(f"tiny config, CPU: {cpu['single_process_samples_per_s']:.2f} samples/s in one process; "
                  f"{cpu['zero2_2proc_samples_per_s']:.2f} samples/s in two ZeRO-2 processes (gloo) "
                  f"= {cpu['zero2_2proc_samples_per_s'] / cpu['single_process_samples_per_s']:.2f}x; "
                  f"{cpu['steps']} steps of 4 samples per process")
            result["cpu_tiny"] = cpu
        if torch.cuda.is_available() and not args.skip_gpu:
            gpu = gpu_3b(root / "gpu", args.gpu_steps)
            print(f"3B-sized TumorChain, ZeRO-2 bf16 on {gpu['gpu']}: {gpu['samples_per_s']:.2f} samples/s, "
                  f"peak {gpu['peak_memory_gib']} GiB per GPU ({gpu['params_b']} B parameters)")
            result["gpu_3b_zero2"] = gpu
        else:
            print("GPU: none here; the 3B-sized ZeRO-2 figure needs a CUDA machine (run this script there)")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
