#!/bin/sh
# TumorChain Workstation launcher: runs the bundled program (its own Python, Qt, VTK and torch) from
# wherever the bundle was unpacked or installed (/opt/tumorchain-workstation for the .deb).
#   tumorchain-workstation [--demo] [PATH] ...   the workstation
#   tumorchain ...                               the command line (same program, "cli" mode)
set -e
self="$(readlink -f "$0")"
here="$(dirname "$self")"
# Qt wants a UTF-8 locale; a bare environment (a service, env -i) has none
export LANG="${LANG:-C.UTF-8}"
# nothing reaches the network at run time (the program sets these as well)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 USE_HUB_KERNELS=NO
# the segmentation runtime (installers/build_totalseg_runtime.sh) or a TotalSegmentator environment
# unpacked beside the bundle by the site's IT (optional; a weights pack installs the runtime per user)
if [ -z "${TUMORCHAIN_TOTALSEG_PYTHON:-}" ] && [ -z "${TUMORCHAIN_TOTALSEG_RUNTIME:-}" ]; then
  if [ -x "$here/totalseg-runtime/tumorchain-totalseg" ]; then
    export TUMORCHAIN_TOTALSEG_RUNTIME="$here/totalseg-runtime"
  elif [ -x "$here/totalseg/bin/python" ]; then
    export TUMORCHAIN_TOTALSEG_PYTHON="$here/totalseg/bin/python"
  fi
fi
case "$(basename "$0")" in
  tumorchain) exec "$here/lib/tumorchain-workstation" cli "$@" ;;
esac
# first start (no settings kept yet, nothing asked for): open the demo case with the demo model
if [ $# -eq 0 ] && [ -z "${TUMORCHAIN_PROFILE_DIR:-}" ] \
   && [ ! -e "${XDG_CONFIG_HOME:-$HOME/.config}/TumorChain/Workstation.conf" ]; then
  set -- --demo
fi
exec "$here/lib/tumorchain-workstation" "$@"
