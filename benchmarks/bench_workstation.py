"""The workstation under analysis: how responsive the window stays, how soon text appears, how
long an export takes; and the README's screenshots.

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python benchmarks/bench_workstation.py \
        [--model DIR] [--profile-stalls]

Measures, on the demo case in the real main window (worker threads, real event loop):
- start-up as ``python -m app.main`` does it: heavy imports behind the splash screen, the window,
  the case opening and the model loading in the background (app/startup.py says why);
- responsiveness: a 10 ms QTimer on the GUI thread; each tick's lateness (interval - 10 ms) while
  the case opens and the model loads, and while analyses run (the first one encodes the CT);
  baseline: the same timer with the window idle, in the same run. Goal: worst delay under 50 ms.
- time from Analyze to the first streamed token on screen (the GUI thread receives it);
- export: key-image capture on the GUI thread, then the worker's export (JSON, HTML, PDF), and the
  timer's worst delay meanwhile.
The model is resources/demo_model when present, else a tiny random model (say so in the figures).
``--profile-stalls`` samples where the GUI thread is whenever the timer is late (benchmarks/gui_stalls.py).
The README's pictures come from ``python -m app.main ... --screenshots`` (README, "Workstation").
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "gui"))  # workstation_helpers: the same model the tests use


def wait_signal_loop(win, done, timeout_s: float = 600.0) -> None:
    """Run the real Qt event loop (not a polling loop) until ``done()``."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    check = QTimer(interval=20)
    check.timeout.connect(lambda: done() and loop.quit())
    check.start()
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    check.stop()


class TickProbe:
    """A 10 ms QTimer on the GUI thread; ``lateness_ms()`` lists how late each tick came."""

    def __init__(self, interval_ms: int = 10):
        from PySide6.QtCore import Qt, QTimer

        self.interval = interval_ms
        self.ticks: list[float] = []
        self.timer = QTimer(interval=interval_ms)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def start(self) -> None:
        self.ticks = [time.perf_counter()]
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        self.ticks.append(time.perf_counter())
        return [max(0.0, (b - a) * 1000 - self.interval) for a, b in zip(self.ticks, self.ticks[1:])]


def summary(lateness: list[float]) -> str:
    if not lateness:
        return "no ticks"
    s = sorted(lateness)
    p99 = s[min(len(s) - 1, int(0.99 * len(s)))]
    return f"worst {s[-1]:6.1f} ms  p99 {p99:5.1f} ms  median {statistics.median(s):4.1f} ms  ({len(s)} ticks)"


def idle_baseline(win, seconds: float = 3.0) -> list[float]:
    probe = TickProbe()
    probe.start()
    end = time.perf_counter() + seconds
    wait_signal_loop(win, lambda: time.perf_counter() >= end, seconds + 5)
    return probe.stop()


def analyze_once(win, task: str, organ: str | None) -> dict:
    c = win.controller
    first: list[float] = []
    on_text = lambda _i, _d: first or first.append(time.perf_counter())  # noqa: E731
    c.round_text.connect(on_text)
    probe = TickProbe()
    probe.start()
    t0 = time.perf_counter()
    ok = c.analyze(task, organ)
    wait_signal_loop(win, lambda: c.live_question is None)
    t1 = time.perf_counter()
    lateness = probe.stop()
    c.round_text.disconnect(on_text)
    if not ok or c.run is None:
        raise SystemExit(f"analysis failed: {win.last_error}")
    return {"lateness": lateness, "first_token_ms": (first[0] - t0) * 1000 if first else float("nan"),
            "total_ms": (t1 - t0) * 1000, "rounds": len(c.run.rounds),
            "tokens": sum(r.timings.generated_tokens for r in c.run.rounds),
            "model_load_ms": c.run.timings.get("model_load_ms", 0.0)}


def select_round_cost(win) -> dict:
    """GUI-thread time of selecting round 2: the panel and scene update, then each view's frame."""
    win.render_all()
    t0 = time.perf_counter()
    win.panel.select_round(2)
    out = {"select_ms": (time.perf_counter() - t0) * 1000}
    for name, view in win.views.items():
        t = time.perf_counter()
        view.render_now()
        out[f"{name}_ms"] = (time.perf_counter() - t) * 1000
    win.state.clear_highlight()
    win.render_all()
    return out


def review_and_export(win, out: Path) -> dict:
    """Decide every item (agree, edit, reject), sign, then export JSON + HTML + PDF with screenshots."""
    from app.key_image_capture import capture_key_images

    c, panel = win.controller, win.panel
    cards = sorted(panel.cards)
    panel.cards[cards[0]].controls.agree.click()
    ctl = panel.cards[cards[1]].controls
    ctl.edit.click()
    ctl.editor.setPlainText(ctl.editor.toPlainText().split(".")[0] + ". Re-measured on the workstation: 33 mm.")
    ctl.save.click()
    for i in cards[2:]:
        panel.cards[i].controls.reject.click()
    panel.conclusion.controls.agree.click()
    t0 = time.perf_counter()
    images = capture_key_images(win, c, c.run)
    capture_ms = (time.perf_counter() - t0) * 1000
    probe = TickProbe()
    probe.start()
    t0 = time.perf_counter()
    win.last_export = None
    c.export(out, ["json", "html", "pdf"], False, images)
    wait_signal_loop(win, lambda: not c.exporter.busy and getattr(win, "last_export", None) is not None, 300)
    wall_ms = (time.perf_counter() - t0) * 1000
    lateness = probe.stop()
    if getattr(win, "export_box", None) is not None:
        win.export_box.close()
    res = win.last_export
    if res is None:
        raise SystemExit(f"export failed: {win.last_error}")
    return {"capture_ms": capture_ms, "wall_ms": wall_ms, "lateness": lateness, "timings": res.timings_ms,
            "files": sorted(p.name for k, p in res.paths.items() if not k.startswith("key_image"))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="model folder (default: resources/demo_model, else a tiny random model)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="warm analyses")
    p.add_argument("--profile-stalls", action="store_true",
                   help="sample where the GUI thread is whenever the timer is late (benchmarks/gui_stalls.py)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_workstation_"))
    from app.settings import use_profile

    use_profile(work / "profile")
    from workstation_helpers import DEMO_MODEL, build_test_model, demo_model_ready

    model = args.model or build_test_model(work / "model")
    if args.model:
        which = str(args.model)
    else:
        which = "the demo model" if model == DEMO_MODEL and demo_model_ready() else f"{model} (tiny random stand-in)"
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    from app.main import build_window, parse_args
    from app.startup import preimport

    startup_s = preimport()  # what main() does behind its splash screen
    probe = TickProbe()
    probe.start()
    t_open = time.perf_counter()
    win = build_window(parse_args(["--demo", "--model", str(model), "--max-new-tokens", str(args.max_new_tokens)]),
                       preload_model=True)
    win.resize(1700, 1000)
    win.show()
    c = win.controller
    wait_signal_loop(win, lambda: not win.loader.busy and c.analysis.model_is_loaded and not c.analysis.busy, 300)
    open_s = time.perf_counter() - t_open
    opening = probe.stop()
    if win.last_error:
        raise SystemExit(win.last_error)
    t0 = time.perf_counter()
    win.volume.build_visible_now()  # the viewer builds 3D surfaces on the GUI thread; finish them first
    win.render_all()
    surfaces_s = time.perf_counter() - t0
    settle = time.perf_counter() + 1.0
    wait_signal_loop(win, lambda: time.perf_counter() > settle, 5)
    print(f"TumorChain Workstation benchmark: demo case, model {which}, {os.cpu_count()} CPU cores "
          f"(load average {os.getloadavg()[0]:.1f}), max {args.max_new_tokens} new tokens/round, "
          f"{win.settings.max_rounds} rounds max")
    idle = idle_baseline(win)
    profiler = None
    if args.profile_stalls:
        from PySide6.QtCore import QTimer

        from gui_stalls import EventStalls, StallProfiler

        profiler = StallProfiler()
        events = EventStalls(app)
        events.start()
        beat = QTimer(interval=5)
        beat.timeout.connect(profiler.tick)
        beat.start()
        profiler.start()
    first = analyze_once(win, "tnm", "pancreas")
    warm = [analyze_once(win, task, organ) for task, organ in
            [("tnm", "pancreas"), ("report", None), ("localization", "liver")][: args.repeats]]
    if profiler is not None:
        profiler.stop()
        beat.stop()
        events.stop()
        print("\nWhere the GUI thread was while the timer was late (analyses), Python side:")
        print(profiler.report())
        print("Event being delivered before each stall (C++ side included):")
        print(events.report())
    select = select_round_cost(win)
    exp = review_and_export(win, work / "export")
    print(f"\nStart-up imports behind the splash screen: {startup_s:.1f} s; window shown to case open and "
          f"model loaded in the background: {open_s:.1f} s; then 3D surfaces (viewer, GUI thread): {surfaces_s:.1f} s")
    print("\nGUI thread responsiveness (lateness of a 10 ms timer):")
    print(f"  idle window (baseline)   {summary(idle)}")
    print(f"  opening + model loading  {summary(opening)}   (includes the viewer's first frames)")
    print(f"  first analysis           {summary(first['lateness'])}")
    all_warm = [x for w in warm for x in w["lateness"]]
    print(f"  next analyses (x{len(warm)})     {summary(all_warm)}")
    print(f"  export (worker part)     {summary(exp['lateness'])}")
    worst = max(max(first["lateness"], default=0), max(all_warm, default=0))
    print(f"  worst during analysis: {worst:.1f} ms (goal < 50 ms) -> {'met' if worst < 50 else 'NOT met'}; "
          f"idle baseline worst {max(idle, default=0):.1f} ms")
    print("\nAnalyze -> first streamed token on screen:")
    print(f"  first analysis           {first['first_token_ms']:8.0f} ms  (whole analysis {first['total_ms'] / 1000:.1f} s, "
          f"{first['rounds']} rounds, {first['tokens']} tokens; encodes the CT)")
    for w in warm:
        print(f"  next                     {w['first_token_ms']:8.0f} ms  (whole analysis {w['total_ms'] / 1000:.1f} s, "
              f"{w['rounds']} rounds, {w['tokens']} tokens)")
    print("\nSelecting round 2 (GUI thread): highlight and panel "
          f"{select['select_ms']:.0f} ms, then frames: axial {select['axial_ms']:.0f}, coronal {select['coronal_ms']:.0f}, "
          f"sagittal {select['sagittal_ms']:.0f}, 3D {select['3d_ms']:.0f} ms (software OpenGL here)")
    t = exp["timings"]
    print("\nExport (JSON + HTML + PDF, viewer screenshots as key images):")
    print(f"  key image capture (GUI thread)  {exp['capture_ms']:7.0f} ms")
    print(f"  export on the worker            {exp['wall_ms']:7.0f} ms  (report {t.get('report_ms', 0):.0f}, "
          f"html {t.get('html_ms', 0):.0f}, pdf {t.get('pdf_ms', 0):.0f}, json {t.get('json_ms', 0):.0f} ms)")
    print(f"  files: {', '.join(exp['files'])}")
    win.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
