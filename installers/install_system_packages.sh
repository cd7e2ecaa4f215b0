#!/usr/bin/env bash
# Installs the Debian packages the workstation and its GUI tests need (Xvfb, OpenGL, Qt's xcb libs).
# Runs only as root; elsewhere prints what to install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mapfile -t pkgs < <(grep -v '^\s*#' "$root/installers/apt-packages.txt" | grep -v '^\s*$')
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "warning: missing system packages (install them with sudo apt-get install): ${missing[*]}" >&2
fi
