"""Where the GUI thread is when a 10 ms timer comes late: a sampling profiler for bench_workstation.

A helper thread looks at the GUI thread's Python stack every ``sample_ms``; whenever the GUI
thread has not ticked for more than ``stall_ms``, the innermost frames in this project's code are
counted. ``report()`` lists where the stalled time went (function, file:line), heaviest first.
Python frames only: time inside a C++ call shows as the Python line that made it.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[1])


class StallProfiler:
    def __init__(self, stall_ms: float = 25.0, sample_ms: float = 2.0, depth: int = 4):
        self.stall_s, self.sample_s, self.depth = stall_ms / 1000.0, sample_ms / 1000.0, depth
        self.gui_thread = threading.main_thread().ident
        self.last_tick = time.perf_counter()
        self.samples: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="stall-profiler")

    def tick(self) -> None:
        """Call from a GUI-thread timer."""
        self.last_tick = time.perf_counter()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)

    def _run(self) -> None:
        while not self._stop.wait(self.sample_s):
            if time.perf_counter() - self.last_tick < self.stall_s:
                continue
            frame = sys._current_frames().get(self.gui_thread)
            if frame is None:
                continue
            ours = [f for f in traceback.extract_stack(frame) if f.filename.startswith(REPO)
                    and "/benchmarks/" not in f.filename and "/.venv/" not in f.filename]
            if ours:
                key = " <- ".join(f"{f.name} ({Path(f.filename).relative_to(REPO)}:{f.lineno})"
                                  for f in reversed(ours[-self.depth:]))
                self.samples[key] += 1

    def report(self, top: int = 12) -> str:
        total = sum(self.samples.values())
        if not total:
            return "  no stalled samples"
        lines = [f"  {n * self.sample_s * 1000:7.0f} ms  {key}" for key, n in self.samples.most_common(top)]
        return f"  {total * self.sample_s * 1000:.0f} ms of stalled GUI time sampled; heaviest:\n" + "\n".join(lines)


class EventStalls:
    """The C++ side: an application-wide event filter that notes which event (type, receiver class)
    was being delivered before each gap longer than ``stall_ms`` between two deliveries, i.e. which
    event's handling (layout, paint, a queued slot) held the GUI thread."""

    def __init__(self, app, stall_ms: float = 25.0):
        from PySide6.QtCore import QObject

        outer = self

        class _Filter(QObject):
            def eventFilter(self, obj, ev):  # noqa: N802 (Qt)
                now = time.perf_counter()
                gap = now - outer._last_t
                if gap > outer.stall_s and outer._last is not None:
                    outer.gaps[outer._last] += gap * 1000.0
                    outer.counts[outer._last] += 1
                outer._last = (ev.type().name, type(obj).__name__, getattr(obj, "objectName", lambda: "")())
                outer._last_t = now
                return False

        self.stall_s = stall_ms / 1000.0
        self.gaps: Counter = Counter()
        self.counts: Counter = Counter()
        self._last = None
        self._last_t = time.perf_counter()
        self._filter = _Filter()
        self.app = app

    def start(self) -> None:
        self._last_t = time.perf_counter()
        self.app.installEventFilter(self._filter)

    def stop(self) -> None:
        self.app.removeEventFilter(self._filter)

    def report(self, top: int = 12) -> str:
        if not self.gaps:
            return "  no stalled event"
        return "\n".join(f"  {ms:7.0f} ms in {self.counts[key]:3d} stall(s)  {key[0]} -> {key[1]}"
                         + (f" '{key[2]}'" if key[2] else "") for key, ms in self.gaps.most_common(top))
