#!/usr/bin/env bash
# The GPU checks of issue 17, as one short script for a lent GPU machine (never part of the tests):
#   1. the 3B random-weight IIR run in bf16 on CUDA: TTFT per round with and without prefix-cache
#      reuse, decode tokens/s against the measured bandwidth bound, peak memory;
#   2. an M3D-LaMed-Phi-3-4B-shaped random checkpoint through convert_lamed and the pipeline:
#      conversion, load, encoder, crop re-encoding per organ, TTFT per round, tokens/s, peak memory;
#   3. the training benchmark's 3B ZeRO-2 figure (one GPU process: samples/s, peak memory).
# Each step has its own time limit, so one slow step still leaves the others' figures.
#   bash benchmarks/gpu_checks.sh [OUT_DIR]        (about 8-10 minutes on one H100)
set -u
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-artifacts/gpu_checks}}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
export PYTHONPATH="$PWD" TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'transformers', transformers.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu.txt" 2>&1

timeout 200 "$PY" benchmarks/bench_iir.py --size 3b --device cuda --dtype bfloat16 --new-tokens 40 \
    --repeats 3 --no-encoder > "$OUT/bench_iir_3b_bf16.txt" 2>&1
echo "bench_iir 3b: exit $?" >> "$OUT/status.txt"

timeout 300 "$PY" benchmarks/bench_m3d_lamed.py --size phi3-4b --device cuda --dtype bfloat16 \
    --new-tokens 64 --rounds 3 --tmp "${TMPDIR:-/tmp}" > "$OUT/bench_m3d_lamed_phi3_4b.txt" 2>&1
echo "bench_m3d_lamed phi3-4b: exit $?" >> "$OUT/status.txt"

timeout 180 "$PY" benchmarks/bench_training.py --skip-cpu --gpu-steps 10 > "$OUT/bench_training_3b_zero2.txt" 2>&1
echo "bench_training 3b zero2: exit $?" >> "$OUT/status.txt"
cat "$OUT"/gpu.txt "$OUT"/status.txt
tail -n 25 "$OUT"/bench_*.txt
