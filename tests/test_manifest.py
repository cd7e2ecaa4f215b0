"""The JSONL manifest: round trip, and every kind of bad line reported with file and line number."""
from __future__ import annotations

import json

import pytest

from inference.errors import InputError
from training.manifest import ChainRound, Sample, load_manifest, sample_problems, write_manifest


def _sample(i: int = 0, **over) -> dict:
    final = "B. pancreas"
    r1 = "Reasoning Process: A mass is seen in the pancreas. Summary: Pancreas. Thus, the answer is B. pancreas."
    r2 = "Reasoning Process: The local view confirms it. Summary: Pancreas. Thus, the answer is B. pancreas."
    d = {
        "id": f"case_{i}_organ_position", "case_id": f"case_{i}", "ct": "cases/c/ct.nii.gz",
        "masks": "cases/c/organs.nii.gz", "parts": "cases/c/parts.nii.gz", "task": "localization",
        "subtask": "organ_position", "question": "Which organ? Options: A. liver B. pancreas",
        "options": ["liver", "pancreas"], "answer": r2, "final_answer": final,
        "roi_organs": ["liver", "pancreas"], "organ_labels": {"liver": 0, "pancreas": 1},
        "chain": [{"answer": r1, "attend": ["liver", "pancreas"]}, {"answer": r2, "attend": []}],
    }
    d.update(over)
    return d


def _write(path, rows) -> None:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def test_round_trip(tmp_path):
    rows = [_sample(0), _sample(1)]
    _write(tmp_path / "m.jsonl", rows)
    samples = load_manifest(tmp_path / "m.jsonl")
    assert [s.to_dict() for s in samples] == rows
    assert samples[0].ct_file == tmp_path / "cases/c/ct.nii.gz"
    assert samples[0].chain[0] == ChainRound(rows[0]["chain"][0]["answer"], ("liver", "pancreas"))
    out = write_manifest(tmp_path / "again.jsonl", samples)
    assert [s.to_dict() for s in load_manifest(out)] == rows


@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    (json.dumps([1, 2]), "not a JSON object"),
    (_sample(task="segmentation"), "unknown task"),
    (_sample(subtask="T"), "does not belong to task"),
    (_sample(final_answer="A. liver"), "must end with"),
    (_sample(options=["liver"]), "2 to 26"),
    (_sample(question=""), "'question' must be a non-empty str"),
    (_sample(roi_organs=["liver", "pancreas", "kidney_middle"]), "unknown label names"),
    (_sample(organ_labels={"pancreas": 2}), "must be 0 or 1"),
    (_sample(roi_organs=["pancreas", "liver"]), "must list the attended organs"),
    ({k: v for k, v in _sample().items() if k != "parts"}, "missing key 'parts'"),
])
def test_bad_line_is_named_with_its_number(tmp_path, bad, message):
    path = tmp_path / "bad.jsonl"
    _write(path, [_sample(0), "", bad])
    with pytest.raises(InputError) as err:
        load_manifest(path)
    text = str(err.value)
    assert str(path) in text and "line 3:" in text and message in text
    assert "line 1" not in text  # the good line is not blamed


def test_chain_rules(tmp_path):
    d = _sample()
    d["chain"][-1]["attend"] = ["stomach"]
    assert any("attend nothing" in p for p in sample_problems(d))
    d = _sample()
    d["chain"][0]["answer"] = "No conclusion here"
    assert any("must end with 'the answer is" in p for p in sample_problems(d))
    d = _sample()
    d["chain"][-1]["answer"] = d["chain"][0]["answer"].replace("A mass", "One mass")
    assert any("must equal 'answer'" in p for p in sample_problems(d))


def test_many_errors_and_duplicates(tmp_path):
    path = tmp_path / "m.jsonl"
    _write(path, [_sample(0), _sample(0), _sample(1, task="x"), _sample(2, chain=[])])
    with pytest.raises(InputError) as err:
        load_manifest(path)
    text = str(err.value)
    assert "3 bad line(s)" in text and "line 2: duplicate id" in text and "(first on line 1)" in text
    assert "line 3:" in text and "line 4: 'chain' must have at least one round" in text


def test_missing_files_and_empty_manifest(tmp_path):
    with pytest.raises(InputError, match="cannot read manifest"):
        load_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(InputError, match="no samples"):
        load_manifest(tmp_path / "empty.jsonl")
    _write(tmp_path / "m.jsonl", [_sample(0)])
    with pytest.raises(InputError, match=r"line 1: 'ct' file cases/c/ct.nii.gz does not exist"):
        load_manifest(tmp_path / "m.jsonl", check_files=True)


def test_write_refuses_an_invalid_sample(tmp_path):
    good = load_manifest_from([_sample(0)], tmp_path)[0]
    bad = Sample(**{**good.__dict__, "final_answer": "C. stomach"})
    with pytest.raises(ValueError, match="is invalid"):
        write_manifest(tmp_path / "out.jsonl", [bad])
    assert not (tmp_path / "out.jsonl").exists()


def load_manifest_from(rows, tmp_path):
    _write(tmp_path / "src.jsonl", rows)
    return load_manifest(tmp_path / "src.jsonl")


_FSIZE_LIMITED_WRITE = """
import resource, signal, sys
from pathlib import Path
from training.manifest import load_manifest, write_manifest
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
samples = load_manifest(src)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_manifest(dst, samples)
except Exception as exc:
    print(type(exc).__name__, exc)
    sys.exit(3)
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs POSIX resource limits")
def test_a_failing_write_leaves_the_old_manifest_intact(tmp_path):
    """A write that really fails half-way (the file-size limit is hit after 4 KiB, as a full disk
    would be) raises StorageError naming the manifest; the old manifest and nothing else stays."""
    import subprocess
    import sys
    from pathlib import Path

    old = tmp_path / "train.jsonl"
    write_manifest(old, load_manifest_from([_sample(0)], tmp_path))
    before = old.read_bytes()
    _write(tmp_path / "big.jsonl", [_sample(i) for i in range(40)])  # ~40 x 1 KiB: over the limit
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", _FSIZE_LIMITED_WRITE, str(tmp_path / "big.jsonl"), str(old)],
                          capture_output=True, text=True, cwd=root, env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.startswith("StorageError") and str(old) in proc.stdout and "manifest" in proc.stdout
    assert old.read_bytes() == before
    assert len(load_manifest(old)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.jsonl", "src.jsonl", "train.jsonl"]


def test_disk_full_while_syncing_leaves_the_old_manifest(tmp_path, monkeypatch):
    import errno
    import os

    from inference.errors import StorageError

    old = tmp_path / "train.jsonl"
    samples = load_manifest_from([_sample(0), _sample(1)], tmp_path)
    write_manifest(old, samples[:1])
    before = old.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError, match="cannot write the manifest: the disk is full"):
        write_manifest(old, samples)
    monkeypatch.undo()
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.jsonl", "train.jsonl"]
