#!/usr/bin/env bash
# Create the separate TotalSegmentator environment (.venv-totalseg at the repo root by default).
#
# Why a separate env: TotalSegmentator 2.18 requires fury<2, which pins vtk<9.4, while the
# workstation's viewer needs a current VTK (>=9.4). The workstation runs TotalSegmentator as a
# subprocess with this env's python (inference/segmentation/totalseg_backend.py), the way 3D
# Slicer's TotalSegmentator extension and MITK do; this env never imports our Qt/VTK code.
#
# Usage:
#   bash installers/setup_totalseg_env.sh [ENV_DIR]
# Environment:
#   TOTALSEG_ENV_DIR   target folder (default: <repo>/.venv-totalseg; ENV_DIR argument wins)
#   PYTHON             interpreter to create the env with (default: python3.11, else python3)
#   TORCH_SPEC         torch requirement (default: torch==2.13.0)
#
# GPU machines: TotalSegmentator runs on the GPU when the env's torch sees one (device "auto").
# PyPI's Linux torch wheels are CUDA builds, so a plain run gets one; where pip is configured with a
# CPU wheel (as on the CI machines, via find-links) or another CUDA version is needed, install the
# wanted build into the env FIRST and then run this script, which keeps any torch that satisfies
# TORCH_SPEC (and pins it while resolving TotalSegmentator):
#   python3.11 -m venv .venv-totalseg
#   .venv-totalseg/bin/pip install torch==2.13.0 --index-url <PyTorch's CUDA wheel index for your driver>
#   bash installers/setup_totalseg_env.sh
# Check: .venv-totalseg/bin/python -c "import torch; print(torch.cuda.is_available())"
#
# Machines without Python (the bundle): installers/build_totalseg_runtime.sh freezes this env with the
# worker into the segmentation runtime, which a weights pack carries (README "Segmentation runtime").
#
# Weights are NOT downloaded here (nothing reaches the network at run time). Place them offline:
# see inference/segmentation/totalseg_weights.py or run the workstation once for the message.
#
# Idempotent: when the env already has the pinned versions it returns in about a second.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${1:-${TOTALSEG_ENV_DIR:-$REPO_ROOT/.venv-totalseg}}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
TOTALSEG_SPEC="totalsegmentator==2.18.0"
if [[ -z "${PYTHON:-}" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

start=$(date +%s)
py="$ENV_DIR/bin/python"

if [[ -x "$py" ]] && "$py" - "$TOTALSEG_SPEC" "$TORCH_SPEC" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    if not req.specifier.contains(version(req.name), prereleases=True):
        sys.exit(1)
import importlib.util
# present on disk (cheap: importing them would load torch; the install step below proves imports)
if not all(importlib.util.find_spec(m) for m in ("totalsegmentator.python_api", "nnunetv2")):
    sys.exit(1)
PY
then
    echo "TotalSegmentator env already complete at $ENV_DIR ($(( $(date +%s) - start )) s)"
    exit 0
fi

if [[ ! -x "$py" ]]; then
    echo "Creating $ENV_DIR with $PYTHON (first run takes a few minutes)..."
    if ! "$PYTHON" -m venv "$ENV_DIR" 2>/dev/null; then
        # Debian ships venv separately; install it when we may.
        if [[ "$(id -u)" = 0 ]] && command -v apt-get >/dev/null; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$ENV_DIR"; "$PYTHON" -m venv "$ENV_DIR"
        else
            echo "error: '$PYTHON -m venv' failed; install python3-venv (Debian: sudo apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
fi

"$py" -m pip install -q --upgrade pip setuptools wheel packaging
# torch first, alone: keeps an existing CUDA build when it satisfies the spec.
"$py" -m pip install -q "$TORCH_SPEC"
# Hold the installed torch fixed while resolving TotalSegmentator: otherwise the newest torchvision
# (pulled in by timm) drags in a newer, multi-GB CUDA torch over the one chosen above.
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$py" -c "from importlib.metadata import version; print('torch==' + version('torch'))" > "$constraints"
"$py" -m pip install -q "$TOTALSEG_SPEC" -c "$constraints"
# Prove the pieces we rely on import (the worker needs python_api; tests fake nnUNet prediction).
"$py" -c "import totalsegmentator.python_api, nnunetv2, nibabel; from importlib.metadata import version as v; print('totalsegmentator', v('totalsegmentator'), 'nnunetv2', v('nnunetv2'), 'torch', v('torch'))"

echo "TotalSegmentator env ready at $ENV_DIR in $(( $(date +%s) - start )) s ($(du -sh "$ENV_DIR" | cut -f1))"
