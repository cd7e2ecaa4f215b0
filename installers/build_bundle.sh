#!/usr/bin/env bash
# Builds the self-contained Linux bundle of TumorChain Workstation from PyPI packages:
#   dist/tumorchain-workstation-<version>-linux[-cuda].tar.gz   unpack anywhere, run ./tumorchain-workstation
#   dist/tumorchain-workstation_<version>_amd64.deb            installs into /opt, menu entry + icon
# The bundle carries its own Python, torch, Qt, VTK, the demo model and the demo case; the target
# machine needs no Python (only the usual desktop libraries: OpenGL, X11/xcb, fontconfig).
#
# Usage: bash installers/build_bundle.sh [--cuda] [--no-deb] [--out DIR] [--totalseg-runtime DIR]
#   --cuda     torch with CUDA (PyPI's default Linux wheel, ~3 GB more) instead of the CPU build
#   --no-deb   only the tarball
#   --totalseg-runtime DIR   ship a segmentation runtime (installers/build_totalseg_runtime.sh) inside
#              the bundle as totalseg-runtime/ (the launcher uses it); by default it travels in a pack
# Environment:
#   BUNDLE_VENV   build virtual environment (default /tmp/bundle-venv[-cuda]); never the project's .venv
#   PYTHON        interpreter for it (default python3.11; needs its shared libpython, as pyenv/Debian have)
#   TORCH_SPEC    default torch==2.13.0
# Takes ~10-15 min on 2 cores the first time (PyInstaller's analysis of torch and transformers).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cuda=0 deb=1 out="$root/dist" ts_runtime=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) cuda=1 ;;
    --no-deb) deb=0 ;;
    --out) out="$2"; shift ;;
    --totalseg-runtime) ts_runtime="$(cd "$2" && pwd)"; shift ;;
    *) echo "usage: $0 [--cuda] [--no-deb] [--out DIR] [--totalseg-runtime DIR]" >&2; exit 2 ;;
  esac
  shift
done
variant=$([ "$cuda" = 1 ] && echo "-cuda" || echo "")
venv="${BUNDLE_VENV:-/tmp/bundle-venv$variant}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
version="$("$python" -c "import tomllib,sys; print(tomllib.load(open(sys.argv[1],'rb'))['project']['version'])" "$root/pyproject.toml")"
name="tumorchain-workstation-$version-linux$variant"
work="$out/.build$variant"
t0=$(date +%s)
say() { echo "[build_bundle $(( $(date +%s) - t0 ))s] $*"; }

# 1. the build environment: core + app dependencies from pyproject.toml, PyInstaller, and torch
deps="$("$python" - "$root/pyproject.toml" <<'PY'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(d for d in p["dependencies"] + p["optional-dependencies"]["app"] if not d.startswith("torch")))
PY
)"
stamp="$venv/.bundle-deps"
want="$(printf '%s\n%s\n%s\n' "$deps" "$torch_spec" "cuda=$cuda" | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "setting up $venv"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  if [ "$cuda" = 1 ]; then
    # PyPI's Linux torch wheel is the CUDA build; --no-find-links skips a local CPU wheel
    "$venv/bin/python" -m pip install -q --no-find-links "$torch_spec"
  else
    # the CPU build: from a local find-links wheel when pip has one (as here), else PyTorch's CPU index
    "$venv/bin/python" -m pip install -q "$torch_spec" 2>/dev/null \
      || "$venv/bin/python" -m pip install -q "$torch_spec" --index-url https://download.pytorch.org/whl/cpu
  fi
  mapfile -t dep_list <<<"$deps"
  "$venv/bin/python" -m pip install -q "${dep_list[@]}" "pyinstaller>=6.10,<7"
  echo "$want" > "$stamp"
fi
"$venv/bin/python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# 2. PyInstaller onedir (installers/bundle/tumorchain.spec)
say "PyInstaller (onedir)"
rm -rf "$work"
mkdir -p "$work"
(cd "$root" && "$venv/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$work/dist" \
  --workpath "$work/pyi" installers/bundle/tumorchain.spec)

# Debug symbols of torch's and VTK's own libraries: ~200 MB of the bundle (torch 654 -> 535 MB, VTK
# 364 -> 264 MB; the bundled app analyzes the demo case afterwards). Only these: PyInstaller's
# strip option also strips the auditwheel-patched libraries of numpy/scipy (OpenBLAS), which then
# fail to load ("ELF load command address/offset not page-aligned").
internal="$work/dist/tumorchain-workstation/_internal"
strip --strip-unneeded "$internal"/torch/lib/*.so "$internal"/vtkmodules/*.so

# 3. the bundle folder: launchers at the top, the program under lib/, desktop files under share/
stage="$work/$name"
mkdir -p "$stage/share/applications" "$stage/share/icons/hicolor/scalable/apps"
mv "$work/dist/tumorchain-workstation" "$stage/lib"
install -m 755 "$root/installers/linux/launcher.sh" "$stage/tumorchain-workstation"
ln -s tumorchain-workstation "$stage/tumorchain"
install -m 644 "$root/installers/linux/tumorchain-workstation.desktop" "$stage/share/applications/"
install -m 644 "$root/installers/linux/tumorchain-workstation.svg" "$stage/share/icons/hicolor/scalable/apps/"
if [ -n "$ts_runtime" ]; then
  [ -x "$ts_runtime/tumorchain-totalseg" ] || { echo "error: $ts_runtime holds no tumorchain-totalseg" >&2; exit 1; }
  cp -a "$ts_runtime" "$stage/totalseg-runtime"  # ~1 GB more; the launcher exports TUMORCHAIN_TOTALSEG_RUNTIME
fi
torch_version="$("$venv/bin/python" -c "import torch; print(torch.__version__)")"
cat > "$stage/BUILD-INFO.txt" <<INFO
TumorChain Workstation $version, Linux x86-64 bundle
built $(date -u +%Y-%m-%dT%H:%M:%SZ) from commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
torch $torch_version; Python $("$venv/bin/python" -c "import platform; print(platform.python_version())")
Run: ./tumorchain-workstation [--demo]    Command line: ./tumorchain --help
Offline weights: ./tumorchain weights import PACK   (or Edit > Import Weights Pack)
Research software, not a medical device.
INFO

# 4. what takes the space
size_report="$out/$name.sizes.txt"
mkdir -p "$out"
{
  echo "unpacked: $(du -sh "$stage" | cut -f1) ($(du -sb "$stage" | cut -f1) bytes)"
  echo "largest parts of lib/_internal:"
  # awk, not head: head exits after 25 lines and sort, still writing, dies of SIGPIPE (exit 141 under pipefail)
  du -sb "$stage/lib/_internal"/* | sort -rn | awk 'NR <= 25 {printf "  %8.1f MB  %s\n", $1/1e6, $2}' | sed "s#$stage/##"
} > "$size_report"
cat "$size_report"

# 5. the tarball
say "tarball"
tar -C "$work" -czf "$out/$name.tar.gz" "$name"

# 6. the .deb: /opt/tumorchain-workstation, commands in /usr/bin, menu entry and icon in /usr/share
if [ "$deb" = 1 ]; then
  say ".deb"
  pkg="$work/deb"
  rm -rf "$pkg"
  mkdir -p "$pkg/DEBIAN" "$pkg/opt" "$pkg/usr/bin" "$pkg/usr/share/applications" "$pkg/usr/share/icons/hicolor/scalable/apps"
  cp -a "$stage" "$pkg/opt/tumorchain-workstation"
  ln -s /opt/tumorchain-workstation/tumorchain-workstation "$pkg/usr/bin/tumorchain-workstation"
  ln -s /opt/tumorchain-workstation/tumorchain "$pkg/usr/bin/tumorchain"
  cp "$stage/share/applications/tumorchain-workstation.desktop" "$pkg/usr/share/applications/"
  cp "$stage/share/icons/hicolor/scalable/apps/tumorchain-workstation.svg" "$pkg/usr/share/icons/hicolor/scalable/apps/"
  pkg_name="tumorchain-workstation$variant"
  cat > "$pkg/DEBIAN/control" <<CONTROL
Package: $pkg_name
Version: $version
Section: science
Priority: optional
Architecture: amd64
Installed-Size: $(du -sk "$pkg" | cut -f1)
Depends: libc6 (>= 2.28), libgl1, libegl1, libglx-mesa0 | libglx0, libfontconfig1, libfreetype6, libdbus-1-3, libglib2.0-0, libx11-6, libx11-xcb1, libxext6, libxrender1, libxi6, libsm6, libice6, libxkbcommon0, libxkbcommon-x11-0, libxcb1, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, libxcb-image0, libxcb-render-util0, libxcb-randr0, libxcb-shape0, libxcb-xfixes0, libxcb-xkb1, libxcb-shm0, libxcb-sync1, libxcb-glx0, libxcb-xinerama0
Conflicts: $([ "$cuda" = 1 ] && echo tumorchain-workstation || echo tumorchain-workstation-cuda)
Replaces: $([ "$cuda" = 1 ] && echo tumorchain-workstation || echo tumorchain-workstation-cuda)
Maintainer: TumorChain Workstation developers <tumorchain@localhost>
Homepage: https://github.com/tumorchain/workstation
Description: TumorChain Workstation: traceable CT tumor analysis (research software)
 Abdominal CT tumor analysis with organ-guided iterative interleaved reasoning
 (after Li et al., TumorChain), with its own Python, torch ($torch_version), Qt and
 VTK, the demo model and the demo case. Runs offline. Not a medical device.
CONTROL
  cat > "$pkg/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q /usr/share/applications || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
exit 0
POST
  cp "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/postrm"
  chmod 755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/postrm"
  deb_file="$out/${pkg_name}_${version}_amd64.deb"
  # zstd: 3-4x faster to build than xz on 2 cores at a similar size; dpkg >= 1.21.18 (Debian 12) reads it
  dpkg-deb --root-owner-group -Zzstd -z10 --build "$pkg" "$deb_file" >/dev/null
  rm -rf "$pkg"
  echo "deb: $deb_file ($(du -h "$deb_file" | cut -f1))"
fi
rm -rf "$work/pyi" "$work/dist"  # PyInstaller's work files (~240 MB); the unpacked bundle stays in $stage
echo "tarball: $out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1))"
say "done"
