#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian machine and runs the whole suite.
# Extra arguments go to pytest (e.g. -k viewer, -x).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash installers/install_system_packages.sh
bash installers/setup_env.sh "app,training,test"
bash installers/setup_totalseg_env.sh
export PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p artifacts
run=(.venv/bin/python -m pytest "$@")
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null; then
  # GUI tests render for real: give them an X server with a 24-bit screen.
  exec xvfb-run -a -s "-screen 0 1920x1200x24 -nolisten tcp" "${run[@]}"
fi
exec "${run[@]}"
