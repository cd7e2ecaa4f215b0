"""The real DeepSpeed ZeRO-2 engine on CPU (gloo), two processes: the loss falls, a checkpoint
resumes to the same loss, and the export (zero_to_fp32 consolidation) loads in inference/."""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training_assets import tiny_assets

pytestmark = [
    pytest.mark.deepspeed,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed (training extra)"),
]
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(a, out: Path, steps: int, resume: str | None = None) -> list[dict]:
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(_free_port()), "-m", "training.cli", "train",
            "--train-manifest", str(a.manifest), "--llm", str(a.llm), "--model-config", str(a.model_config),
            "--output-dir", str(out), "--cache-dir", str(a.root / "case_cache"), "--device", "cpu",
            "--deepspeed", "zero2", "--learning-rate", "3e-3", "--max-steps", str(steps), "--logging-steps", "1",
            "--save-steps", "3", "--per-device-batch-size", "2", "--gradient-accumulation-steps", "1",
            "--warmup-ratio", "0", "--dataloader-workers", "0", "--num-threads", "1", "--no-bf16"]
    if resume:
        args += ["--resume-from-checkpoint", resume]
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_zero2_two_processes_resume_and_export(tmp_path):
    from inference.model.modeling_tumorchain import TumorChainModel
    from training.export import export_checkpoint

    a = tiny_assets()
    log = [h for h in _launch(a, tmp_path / "run", steps=6) if "loss" in h]
    losses = [h["loss"] for h in log]
    assert len(losses) == 6
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2  # it learns through the ZeRO-2 engine
    ckpt = tmp_path / "run" / "checkpoint-3"
    assert (ckpt / "global_step3").is_dir()  # a DeepSpeed checkpoint, sharded optimizer states

    # resume from step 3 in a fresh folder: step 4 must see the same loss as the first run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    os.symlink(ckpt, resumed / "checkpoint-3")
    log2 = [h for h in _launch(a, resumed, steps=6, resume="latest") if "loss" in h]
    first = {h["step"]: h["loss"] for h in log}
    again = {h["step"]: h["loss"] for h in log2}
    assert min(again) == 4
    assert abs(again[4] - first[4]) <= 1e-6, (again, first)

    out = tmp_path / "exported"
    result = export_checkpoint(tmp_path / "run" / "checkpoint-6", out)
    assert "zero_to_fp32" in result["weights_from"]
    m = TumorChainModel.from_pretrained(out, device="cpu")
    assert result["verified_logits_shape"] == [1, 1, m.llm.config.vocab_size]
    assert m.config.vision.patch_size == (4, 16, 16)
