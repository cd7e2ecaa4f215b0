"""Load every file (and every folder of several files) of pydicom's and nibabel's bundled test data.

Run as a script in its own process (the test caps its address space): prints one JSON object with
each item's outcome (loaded | refused | hang | crash) and the peak RSS.
"""
from __future__ import annotations

import json
import resource
import shutil
import signal
import sys
import time
from pathlib import Path

import nibabel
import pydicom

from inference.ct_io.geometry_sanity import affine_problem
from inference.ct_io.load import load_ct
from inference.errors import InputError

SKIP_SUFFIXES = {".py", ".pyc"}


def corpus_roots() -> list[Path]:
    nib = Path(nibabel.__file__).parent
    return [Path(pydicom.__file__).parent / "data", *sorted(p for p in nib.rglob("data") if p.parent.name == "tests")]


class _Hang(Exception):
    pass


def _alarm(*_):
    raise _Hang


def _try(target: Path, name: str) -> dict:
    signal.alarm(30)
    start = time.perf_counter()
    try:
        v = load_ct(target, memory_limit_bytes=2 << 30)
        out = {"kind": "loaded", "shape": list(v.hu.shape), "dtype": str(v.hu.dtype),
               "affine_problem": affine_problem(v.affine)}
    except InputError as exc:
        # the message must name the file (or, for a folder, the folder) that is wrong
        out = {"kind": "refused", "msg": str(exc), "names_it": name in str(exc)}
    except _Hang:
        out = {"kind": "hang"}
    except BaseException as exc:  # noqa: BLE001 - the sweep reports what escaped
        out = {"kind": "crash", "msg": f"{type(exc).__name__}: {exc}"}
    finally:
        signal.alarm(0)
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


def sweep(work: Path) -> dict:
    signal.signal(signal.SIGALRM, _alarm)
    results, n = [], 0
    for root in corpus_roots():
        items = sorted(root.rglob("*"))
        for f in items:  # each file alone in a folder of its own, as a user would pick it
            if not f.is_file() or f.suffix in SKIP_SUFFIXES or "__pycache__" in f.parts:
                continue
            n += 1
            d = work / f"item{n:04d}"
            d.mkdir()
            shutil.copy(f, d / f.name)
            results.append({"item": str(f.relative_to(root.parent)), **_try(d / f.name, f.name)})
            shutil.rmtree(d)
        for f in [root, *items]:  # each folder of several files, as a DICOM series folder
            if not f.is_dir() or "__pycache__" in f.parts or sum(x.is_file() for x in f.iterdir()) < 2:
                continue
            n += 1
            d = work / f"folder{n:04d}"
            shutil.copytree(f, d, ignore=shutil.ignore_patterns("__pycache__"))
            results.append({"item": str(f.relative_to(root.parent)) + "/", **_try(d, d.name)})
            shutil.rmtree(d)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"results": results, "peak_rss_bytes": peak}


if __name__ == "__main__":
    print(json.dumps(sweep(Path(sys.argv[1]))))
