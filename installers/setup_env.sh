#!/usr/bin/env bash
# Creates or updates the project's virtual environment (.venv) with the extras asked for.
# Usage: bash installers/setup_env.sh [EXTRAS]   e.g. "app", "app,training,test"
# Idempotent: a second run with the same extras and an unchanged pyproject.toml does nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-app}"
venv="${TUMORCHAIN_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian ships venv separately; install it when we may.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$venv"; "$python" -m venv "$venv"
    else
      echo "error: '$python -m venv' failed; install python3-venv (Debian: sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi

stamp="$venv/.tumorchain-installed"
hash="$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
# the stamp holds "HASH extra1,extra2,..."; extras already installed for this pyproject are kept,
# so the demo ("app") after the tests ("app,training,test") installs nothing
have=""
if [ -f "$stamp" ] && [ "$(cut -d' ' -f1 "$stamp")" = "$hash" ]; then
  have="$(cut -s -d' ' -f2 "$stamp")"
fi
missing=0
for e in ${extras//,/ }; do
  case ",$have," in *",$e,"*) ;; *) missing=1 ;; esac
done
if [ "$missing" = 0 ]; then
  exit 0
fi
extras="$(printf '%s\n' ${have//,/ } ${extras//,/ } | sort -u | paste -sd, -)"
want="$hash $extras"
echo "Setting up $venv with extras [$extras] (first run takes a few minutes)..."
"$venv/bin/python" -m pip install -q --upgrade pip
# torch first and pinned: a CPU build where no CUDA is wanted (TORCH_SPEC overrides, e.g. for a CUDA wheel)
"$venv/bin/python" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
"$venv/bin/python" -m pip install -q -e "$root[$extras]"
echo "$want" > "$stamp"
