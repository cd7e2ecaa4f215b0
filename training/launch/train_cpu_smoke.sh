#!/usr/bin/env bash
# Two CPU processes, DeepSpeed ZeRO-2 over gloo: the CI check of the distributed path on any laptop.
#   training/launch/train_cpu_smoke.sh --train-manifest cohort/train.jsonl --llm LLM --model-config cfg.json --output-dir runs/smoke
set -euo pipefail
cd "$(dirname "$0")/../.."
export DS_ACCELERATOR=cpu OMP_NUM_THREADS=1
exec python -m torch.distributed.run --standalone --nproc_per_node 2 -m training.cli train \
  --device cpu --deepspeed zero2 --no-bf16 --num-threads 1 --dataloader-workers 0 "$@"
