"""What one streamed batch of text costs the GUI thread as the reasoning panel fills up: the relayout
and repaint after a live card's text grows, with N finished cards above it (a TNM run is now six to
eight cards: T, N and M asked apart).

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python benchmarks/bench_card_relayout.py

Baseline in the same run: the same panel with the cards' and chip rows' height caches switched off
(app/round_card._CardLayout, app/organ_chip.FlowLayout), i.e. every relayout word-wraps every card
again. Prints the median and worst GUI-thread CPU time per batch (``time.thread_time``: a busy
machine's other jobs do not inflate it, as they do wall time) and the ratio.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEXT = ("Reasoning Process: On the local views, the liver shows no focal lesion; the pancreas shows a 33 mm hypodense "
        "lesion; the stomach shows no focal lesion; the colon shows no focal lesion. Summary: The dominant lesion is "
        "located in the pancreas. This revises the initial impression. Thus, the answer is B. pancreas. ") * 2


def measure(n_cards: int, cached: bool, repeats: int = 3) -> list[float]:
    from PySide6.QtCore import QCoreApplication, QEventLoop
    from PySide6.QtWidgets import QScrollArea, QVBoxLayout, QWidget

    from app import organ_chip, round_card
    from app.round_card import RoundCard
    from inference.iir.rounds import ExaminedOrgan, Round, RoundTimings

    hfw_card, hfw_flow = round_card._CardLayout.heightForWidth, organ_chip.FlowLayout.heightForWidth
    if not cached:  # the baseline: ask Qt (and the chip rows) afresh every time
        round_card._CardLayout.heightForWidth = lambda self, w: QVBoxLayout.heightForWidth(self, w)
        organ_chip.FlowLayout.heightForWidth = lambda self, w: self._place(organ_chip.QRect(0, 0, w, 0), move=False)
    try:
        organs = [ExaminedOrgan(i, n, n, i, n, 0.3, 16) for i, n in ((5, "liver"), (7, "pancreas"), (6, "stomach"),
                                                                      (20, "colon"))]
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        content = QWidget()
        lay = QVBoxLayout(content)
        lay.addStretch(1)
        scroll.setWidget(content)
        scroll.resize(520, 900)
        scroll.show()

        def pump():
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents)

        for i in range(1, n_cards + 1):
            card = RoundCard(i, "<ct> What is the T stage of the pancreas tumor? Options: A. T1 B. T2 C. T3",
                             lambda _lid: (200, 100, 50))
            lay.insertWidget(lay.count() - 1, card)
            card.set_round(Round(index=i, prompt="p", text=TEXT, organs=organs, next_organs=["pancreas"],
                                 timings=RoundTimings()))
            card.controls.show()
        pump()
        times = []
        for _ in range(repeats):
            live = RoundCard(99, "<ct> question", lambda _lid: (200, 100, 50))
            lay.insertWidget(lay.count() - 1, live)
            pump()
            words = TEXT.split(" ")
            for k in range(0, len(words), 6):  # a batch: what 50 ms of streaming brings
                t0 = time.thread_time()  # GUI-thread CPU time: other jobs on the cores do not count
                live.append_text(" ".join(words[k:k + 6]) + " ")
                pump()
                times.append((time.thread_time() - t0) * 1000)
            live.setParent(None)
            live.deleteLater()
        scroll.close()
        return times
    finally:
        round_card._CardLayout.heightForWidth, organ_chip.FlowLayout.heightForWidth = hfw_card, hfw_flow


def main() -> int:
    import os

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    from app.theme import apply_theme

    apply_theme(app)
    print(f"Streamed-card relayout, one batch of text into the live card ({os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}); GUI-thread CPU ms per batch, median / worst:")
    for n in (2, 8, 16):
        base = measure(n, cached=False)
        new = measure(n, cached=True)
        print(f"  {n:2d} finished cards: uncached {statistics.median(base):5.1f} / {max(base):5.1f}   "
              f"cached {statistics.median(new):5.1f} / {max(new):5.1f}   "
              f"(median {statistics.median(base) / max(statistics.median(new), 1e-3):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
