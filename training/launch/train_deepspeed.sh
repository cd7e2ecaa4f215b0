#!/usr/bin/env bash
# One machine through the DeepSpeed launcher (it sets LOCAL_RANK etc.), or several with a hostfile:
#   training/launch/train_deepspeed.sh --config run.yaml --deepspeed zero2
#   HOSTFILE=training/launch/hostfile.example training/launch/train_deepspeed.sh --config run.yaml --deepspeed zero3
# Every node needs the same code, Python environment and data paths (or node-local copies), and
# passwordless ssh from this node (pdsh) for the multi-node form.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
if [[ -n "${HOSTFILE:-}" ]]; then
  exec deepspeed --hostfile "$HOSTFILE" --master_port "${MASTER_PORT:-29500}" --module training.cli train "$@"
fi
exec deepspeed --num_gpus "${NUM_GPUS:-$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))')}" \
  --module training.cli train "$@"
