#!/usr/bin/env bash
# Sets up the workstation and opens it on the bundled demo case with the shipped demo model.
# Without a display (a headless server), runs the same analysis on the command line instead.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash installers/install_system_packages.sh
bash installers/setup_env.sh "app"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/python -m app.main --demo "$@"
fi
echo "No display found: running the demo analysis headless (output in demo_output/)."
mkdir -p demo_output
# the case folder, as the window opens it: CT, organ masks and their sub-regions (parts.nii.gz), so the
# classifier screen sees the pancreatic head as the window does
exec .venv/bin/tumorchain analyze resources/demo_case --model resources/demo_model \
  --task report --out demo_output/run.json "$@"
