"""Scripted runs of the real window (``--analyze``, ``--script``, ``--dump-state``, ``--quit-after``):
open the case, analyze, then drive the review widgets the way a reader's clicks do, and report
what the panel shows. The crash test and the benchmarks use it; a site can use it for demos.

Script file: a JSON list of steps, run in order once the case is open (and analyzed, when asked):
    {"agree": "round-1"}   {"reject": "round-2"}   {"edit": "conclusion", "text": "..."}
    {"draft": "round-3", "text": "typed, not saved"}   {"sign": "Dr A. Reader"}
    {"select": 2}   {"wait_ms": 300}   {"print": "MARKER"}
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop


def _controls(win, key: str):
    panel = win.panel
    if key == "conclusion":
        return panel.conclusion.controls
    return panel.cards[int(key.split("-")[1])].controls


def run_step(win, step: dict) -> None:
    if "agree" in step:
        _controls(win, step["agree"]).agree.click()
    elif "reject" in step:
        _controls(win, step["reject"]).reject.click()
    elif "edit" in step or "draft" in step:
        ctl = _controls(win, step.get("edit") or step.get("draft"))
        ctl.edit.click()
        ctl.editor.setPlainText(step["text"])  # textChanged reports the draft, as typing does
        if "edit" in step:
            ctl.save.click()
    elif "sign" in step:
        win.panel.reviewer.setText(step["sign"])
        win.panel.confirm_sign = lambda _name: True
        win.panel.sign.click()
    elif "select" in step:
        win.panel.select_round(int(step["select"]))
    elif "wait_ms" in step:
        pump(step["wait_ms"])
    elif "print" in step:
        print(step["print"], flush=True)
    else:
        raise ValueError(f"unknown script step {step!r}")


def pump(ms: float) -> None:
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)


def panel_state(win) -> dict:
    """What the reasoning panel shows, read from its widgets."""
    panel, c = win.panel, win.controller
    items = {}
    for key, ctl in [(card.key, card.controls) for card in panel.cards.values()] + [("conclusion", panel.conclusion.controls)]:
        items[key] = {"decision": ctl.decision, "text": ctl.current_text, "badge": ctl.badge.text(),
                      "draft": ctl.editor.toPlainText() if not ctl.edit_area.isHidden() else None}
    run = c.run
    return {"question": run.question if run else None, "rounds": len(panel.cards), "items": items,
            "review_progress": panel.progress_label.text(),
            "signed": bool(c.review and c.review.is_signed),
            "task_box": panel.bar.task.currentData(), "organ_box": panel.bar.organ.currentData(),
            "card_titles": {k: card.title.text() for k, card in panel.cards.items()},
            "card_notes": {k: card.next.text() for k, card in panel.cards.items()},
            "unseen_notes": {k: card.unseen.text() for k, card in panel.cards.items() if card.unseen.text()},
            "conclusion": {"answer": panel.conclusion.answer.text(), "sections": dict(panel.conclusion.sections)},
            "steps": list(run.steps) if run else [],
            "domain_banner": win.domain_banner.text() if win.domain_banner.isVisible() else "",
            "warnings": list(run.warnings) if run else []}


def autopilot(win, args) -> int | None:
    """Run the scripted part of the command line; returns an exit code when the app should quit."""
    win.wait_for_load(120000)
    if win.last_error and win.controller.ct is None:
        print(win.last_error, file=sys.stderr)
        return 1
    c = win.controller
    win.wait_until(lambda: not c.busy_kinds(), 120000)  # masks a restored run needs
    if args.analyze or args.question:
        task = None if args.question else args.analyze
        failures = []
        c.error.connect(lambda title, msg: failures.append(f"{title}: {msg}"))
        refused = []
        c.non_ct_refused.connect(refused.append)
        if not c.analyze(task, args.organ, args.question, allow_non_ct=getattr(args, "allow_non_ct", False)):
            why = f"does not look like CT: {refused[-1]} (pass --allow-non-ct)" if refused else None
            print(why or (failures[-1] if failures else win.last_error), file=sys.stderr)
            return 1
        win.wait_until(lambda: c.live_question is None, args.timeout * 1000)
        if c.live_question is not None:
            print("analysis timed out", file=sys.stderr)
            return 1
        if failures or c.run is None:
            print("; ".join(failures) or "no run", file=sys.stderr)
            return 1
        pump(50)
        print(f"ANALYZED {len(c.run.rounds)} rounds", flush=True)
    if args.script:
        for step in json.loads(Path(args.script).read_text(encoding="utf-8")):
            run_step(win, step)
            pump(20)
        print("SCRIPT DONE", flush=True)
    if args.dump_state:
        pump(100)
        Path(args.dump_state).write_text(json.dumps(panel_state(win), indent=1), encoding="utf-8")
    return 0 if args.quit_after or args.dump_state else None
