"""The newest build output a slow test runs against (the Linux bundle, the segmentation runtime): found
in the dist folder, built on request (an environment variable set to 1), else the test skips saying how."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest


def newest(paths) -> Path | None:
    found = sorted(paths, key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def built_or_skip(find: Callable[[], Path | None], script: Path, dist: Path, build_env: str, what: str) -> Path:
    """``find()``, or run ``script --out dist`` first when ``build_env`` is "1"; skip when there is none."""
    found = find()
    if found is None and os.environ.get(build_env) == "1":
        t0 = time.monotonic()
        subprocess.run(["bash", str(script), "--out", str(dist)], check=True)
        print(f"{what} built in {time.monotonic() - t0:.0f} s")
        found = find()
    if found is None:
        pytest.skip(f"no {what} in {dist}: build it with `bash {script.relative_to(script.parents[1])}` "
                    f"(or set {build_env}=1 to have this test build it)")
    return found


def built_runtime(dist: Path) -> Path | None:
    """The newest segmentation runtime folder (installers/build_totalseg_runtime.sh) in ``dist``."""
    return newest(p for p in dist.glob("totalseg-runtime-*-linux*") if p.is_dir())
