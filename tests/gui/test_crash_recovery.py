"""Kill the workstation mid-review (SIGKILL, no chance to save) and open the case again: every
decision, the edit and the text still being typed in an edit box come back as they were left.

Both runs are the real app in a subprocess (``python -m app.main``) with its own profile folder;
the first analyzes the demo case and drives the review widgets from a script, the second only
reports what its reasoning panel shows."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from gui_helpers import REPO
from workstation_helpers import DEMO_CASE

EDIT = "Round 2, as the radiologist reads it: pancreatic head mass 33 mm."
DRAFT = "Conclusion being typed when the power went"


def _args(model, profile, *extra):
    return [sys.executable, "-m", "app.main", "--demo", "--model", str(model), "--profile", str(profile),
            "--max-new-tokens", "24", *map(str, extra)]


def _read_until(proc, marker: str, timeout: float) -> list[str]:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line.rstrip())
        if line.startswith(marker):
            return seen
    raise AssertionError(f"no {marker!r} from the app (rc {proc.poll()}):\n" + "\n".join(seen[-40:]))


@pytest.mark.slow
def test_a_killed_review_comes_back_as_it_was_left(workstation_model, tmp_path):
    if not (DEMO_CASE / "ct.nii.gz").exists():
        pytest.skip(f"demo case absent: {DEMO_CASE}")
    profile = tmp_path / "profile"
    script = tmp_path / "review.json"
    script.write_text(json.dumps([
        {"agree": "round-1"},
        {"edit": "round-2", "text": EDIT},
        {"draft": "conclusion", "text": DRAFT},
        {"wait_ms": 800},  # the edit box's draft is kept after 400 ms without typing
    ]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(_args(workstation_model, profile, "--analyze", "tnm", "--organ", "pancreas",
                                   "--script", script),
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = _read_until(first, "SCRIPT DONE", 300)
        first.send_signal(signal.SIGKILL)  # no closeEvent, no flush: what is on disk is what survives
        assert first.wait(30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    rounds = int(next(ln for ln in out if ln.startswith("ANALYZED")).split()[1])
    assert rounds >= 2

    dump = tmp_path / "state.json"
    second = subprocess.run(_args(workstation_model, profile, "--dump-state", dump), cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-4000:]
    state = json.loads(dump.read_text())
    # the card's questions, or the built-in prompt for a model folder without a card
    assert (state["question"].startswith("TNM stage prediction of the pancreas: What is the T stage")
            or state["question"] == "Predict the TNM stage of the pancreas tumor in this abdominal CT.")
    assert state["task_box"] == "tnm" and state["organ_box"] == "pancreas"
    assert state["rounds"] == rounds
    items = state["items"]
    assert items["round-1"]["decision"] == "agreed" and items["round-1"]["draft"] is None
    assert items["round-2"]["decision"] == "edited" and items["round-2"]["text"] == EDIT
    assert items["conclusion"]["decision"] == "pending" and items["conclusion"]["draft"] == DRAFT
    assert all(items[f"round-{i}"]["decision"] == "pending" for i in range(3, rounds + 1))
    assert state["review_progress"] == f"2 of {rounds + 1} decided" and not state["signed"]
