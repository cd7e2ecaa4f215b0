#!/usr/bin/env bash
# One machine, N GPUs (or CPU processes), DDP or DeepSpeed through the Hugging Face Trainer.
#   training/launch/train_torchrun.sh 8 --config run.yaml --deepspeed zero2
# NPROC defaults to the number of visible GPUs. Extra arguments go to `tumorchain-train train`.
set -euo pipefail
NPROC="${1:-$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))')}"
shift || true
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
export NCCL_ASYNC_ERROR_HANDLING=1 TORCH_NCCL_ASYNC_ERROR_HANDLING=1
exec torchrun --standalone --nproc_per_node "$NPROC" -m training.cli train "$@"
