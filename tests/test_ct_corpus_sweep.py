"""Every file of pydicom's and nibabel's bundled test data loads with sane geometry or is refused
with the project's own error naming the file; none crashes, hangs or grows past 2 GB."""
from __future__ import annotations

import collections
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAP = 3 << 30  # address space: 2 GB of data plus the interpreter and its libraries


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def test_corpus_sweep(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "corpus_sweep.py"), str(tmp_path)], env=env,
        capture_output=True, text=True, timeout=900, preexec_fn=_cap_memory, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    results = out["results"]
    counts = collections.Counter(r["kind"] for r in results)
    print(f"\ncorpus sweep: {len(results)} items, {dict(counts)}, peak RSS {out['peak_rss_bytes'] / 2**20:.0f} MiB")
    assert len(results) > 250  # both corpora were found
    bad = [r for r in results if r["kind"] in ("crash", "hang")]
    assert not bad, bad
    unnamed = [r for r in results if r["kind"] == "refused" and not r["names_it"]]
    assert not unnamed, unnamed
    insane = [r for r in results if r["kind"] == "loaded" and (r["affine_problem"] or r["dtype"] != "int16")]
    assert not insane, insane
    loaded = {r["item"] for r in results if r["kind"] == "loaded"}
    # known-good volumes of both corpora open: nibabel's anatomical NIfTI, pydicom's 5-slice CT series
    assert "data/anatomical.nii" in loaded
    assert any(i.endswith("dicomdirtests/98892001/CT5N/") for i in loaded)
    assert out["peak_rss_bytes"] < 2 << 30
