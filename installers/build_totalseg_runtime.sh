#!/usr/bin/env bash
# Builds the segmentation runtime: TotalSegmentator's worker frozen with the TotalSegmentator
# environment (PyInstaller onedir), so a hospital machine segments without Python or internet.
#   dist/totalseg-runtime-<totalseg version>-linux[-cuda]/        the runtime folder
#     tumorchain-totalseg  _internal/  RUNTIME-INFO.json
#   dist/totalseg-runtime-<...>.tcpack.tar.gz   (with --pack) a weights pack holding it, gzip-
#                                            compressed (1.2 GB -> about 0.4 GB), for
#                                            `tumorchain weights import` on the target machine
# The workstation runs it where it would run the env's python with totalseg_worker.py
# (inference/segmentation/totalseg_backend.py; found in TUMORCHAIN_TOTALSEG_RUNTIME, beside the
# bundle, or where a pack installs it).
#
# Usage: bash installers/build_totalseg_runtime.sh [--out DIR] [--pack] [--env DIR]
#   --env DIR  the TotalSegmentator environment to freeze (default .venv-totalseg, made by
#              installers/setup_totalseg_env.sh when missing; a CUDA torch there gives a CUDA runtime)
# Environment: RUNTIME_BUILD_VENV  the build interpreter's venv (default /tmp/totalseg-runtime-build):
#   a venv that sees the TotalSegmentator env's packages through a .pth file, plus PyInstaller, so
#   the env itself is never changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/dist" env_dir="$root/.venv-totalseg" pack=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift ;;
    --env) env_dir="$2"; shift ;;
    --pack) pack=1 ;;
    *) echo "usage: $0 [--out DIR] [--pack] [--env DIR]" >&2; exit 2 ;;
  esac
  shift
done
t0=$(date +%s)
say() { echo "[build_totalseg_runtime $(( $(date +%s) - t0 ))s] $*"; }

[ -x "$env_dir/bin/python" ] || bash "$root/installers/setup_totalseg_env.sh" "$env_dir"
env_dir="$(cd "$env_dir" && pwd -P)"
site="$("$env_dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
base_python="$("$env_dir/bin/python" -c 'import sys; print(sys._base_executable)')"

# 1. the build interpreter: the env's own base Python, the env's packages via .pth, PyInstaller
venv="${RUNTIME_BUILD_VENV:-/tmp/totalseg-runtime-build}"
if [ ! -x "$venv/bin/pyinstaller" ] || [ "$(cat "$venv/.env-site" 2>/dev/null)" != "$site" ]; then
  say "setting up $venv"
  rm -rf "$venv"
  "$base_python" -m venv "$venv"
  vsite="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$site" > "$vsite/totalseg-env.pth"
  "$venv/bin/python" -m pip install -q "pyinstaller>=6.10,<7"
  echo "$site" > "$venv/.env-site"
fi
info="$("$venv/bin/python" - <<'PY'
import json, platform, torch
from importlib.metadata import version
print(json.dumps({"totalsegmentator": version("TotalSegmentator"), "nnunetv2": version("nnunetv2"),
                  "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                  "platform": f"{platform.system().lower()}-{platform.machine()}"}))
PY
)"
ts_version="$(echo "$info" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["totalsegmentator"])')"
cuda="$(echo "$info" | "$venv/bin/python" -c 'import json,sys; print("-cuda" if json.load(sys.stdin)["cuda"] else "")')"
name="totalseg-runtime-$ts_version-linux$cuda"
work="$out/.build-totalseg$cuda"

# 2. PyInstaller onedir
say "PyInstaller (onedir) of $name from $env_dir"
rm -rf "$work"
mkdir -p "$work" "$out"
(cd "$root" && "$venv/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$work/dist" \
  --workpath "$work/pyi" installers/totalseg_runtime/totalseg_runtime.spec)
runtime="$work/dist/totalseg-runtime"
# torch's own libraries carry ~120 MB of debug symbols (never numpy/scipy's auditwheel-patched ones)
strip --strip-unneeded "$runtime"/_internal/torch/lib/*.so
# PyInstaller collects torch's libraries a second time at the top of _internal (seen with PyInstaller
# 6.22 and torch 2.13: libtorch_cpu.so, 415 MB unstripped, and 7 more). Nothing needs those copies:
# torch's extensions and libraries find torch/lib through their own RUNPATH, and no other library
# names them (readelf); the frozen test segments a CT without them.
for lib in "$runtime"/_internal/*.so*; do
  if [ -f "$runtime/_internal/torch/lib/$(basename "$lib")" ]; then rm -f "$lib"; fi
done
"$venv/bin/python" - "$runtime/RUNTIME-INFO.json" "$info" <<'PY'
import json, sys, time
info = json.loads(sys.argv[2])
info.update({"format": "tumorchain-totalseg-runtime", "program": "tumorchain-totalseg",
             "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
open(sys.argv[1], "w").write(json.dumps(info, indent=1) + "\n")
PY
rm -rf "${out:?}/$name"
mv "$runtime" "$out/$name"
rm -rf "$work"
say "runtime: $out/$name ($(du -sh "$out/$name" | cut -f1), $(find "$out/$name" -type f | wc -l) files)"

# 3. optionally, a pack holding it (the workstation's own command line writes it)
if [ "$pack" = 1 ]; then
  py="$root/.venv/bin/python"
  [ -x "$py" ] || py=python3
  (cd "$root" && PYTHONPATH="$root" "$py" -m inference.cli weights export --runtime "$out/$name" \
     --out "$out/$name.tcpack.tar.gz")
  say "pack: $out/$name.tcpack.tar.gz ($(du -h "$out/$name.tcpack.tar.gz" | cut -f1))"
fi
say "done"
