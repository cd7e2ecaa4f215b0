"""One IIR round in the reasoning panel: its prompt, the streamed text, the organs it examined
(chips in label colours with P(abnormal)), what it sends to the next round, and its review.
Clicking the card selects the round (the panel highlights its ROI in every view)."""
from __future__ import annotations

import re
from typing import Callable

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.organ_chip import FlowLayout, OrganChip
from app.review_controls import ReviewControls
from inference.iir.rounds import NO_CLASSIFIER

ColourOf = Callable[[int], tuple[int, int, int]]


def wrappable(text: str, run: int = 30) -> str:
    """Text that word-wraps inside the card: a zero-width space every ``run`` characters of any
    space-free stretch (a long path or a garbled model output would widen the panel)."""
    return re.sub(r"\S{%d}" % run, lambda m: m.group(0) + "\u200b", text)


def _tidy_prompt(prompt: str) -> str:
    return " ".join(prompt.replace("<organ_feature>", " ⟨organ tokens⟩ ").replace("<ct>", "⟨CT tokens⟩ ").split())


class RoundCard(QFrame):
    selected = Signal(int)  # round index
    organ_clicked = Signal(int)  # mask label id

    def __init__(self, index: int, prompt: str, colour_of: ColourOf, parent=None):
        super().__init__(parent)
        self.setObjectName("roundCard")
        self.index = index
        self.key = f"round-{index}"
        self.colour_of = colour_of
        self.round = None
        self.text = ""
        self.setProperty("live", True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

        self.title = QLabel(f"Round {index}")
        self.title.setObjectName("cardTitle")
        self.meta = QLabel("streaming…")
        self.meta.setObjectName("cardMeta")
        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.meta)
        self.prompt = QLabel()
        self.prompt.setObjectName("prompt")
        self.prompt.setWordWrap(True)
        self.set_prompt(prompt)
        self.chips = QWidget()
        self.chip_layout = FlowLayout(self.chips)
        self.chips.hide()
        self.body = QLabel()
        self.body.setObjectName("aiText")
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.edited = QLabel()
        self.edited.setObjectName("editedText")
        self.edited.setWordWrap(True)
        self.edited.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.edited.hide()
        self.next = QLabel()
        self.next.setObjectName("cardMeta")
        self.next.setWordWrap(True)
        self.next.hide()
        self.controls = ReviewControls(self.key)
        self.controls.hide()

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.setSpacing(4)
        lay.addLayout(head)
        lay.addWidget(self.prompt)
        lay.addWidget(self.chips)
        lay.addWidget(self.body)
        lay.addWidget(self.edited)
        lay.addWidget(self.next)
        lay.addWidget(self.controls)
        for w in (self.prompt, self.body, self.edited, self.next):
            w.setTextFormat(Qt.TextFormat.PlainText)  # model text is never markup
        for w in (self.title, self.meta, self.prompt, self.body, self.edited, self.next, self.chips):
            w.installEventFilter(self)

    # -- content -----------------------------------------------------------------------------------
    def set_prompt(self, prompt: str) -> None:
        tidy = _tidy_prompt(prompt)
        self.prompt.setText("▸ " + (tidy if len(tidy) < 240 else tidy[:237] + "…"))
        self.prompt.setToolTip(prompt)

    def append_text(self, delta: str) -> None:
        self.text += delta
        self.body.setText(wrappable(self.text))

    def set_expected_organs(self, organs: list[tuple[str, int]]) -> None:
        """While streaming: the organs this round examines, before their probabilities are known."""
        self._set_chips([(display, lid, None, None) for display, lid in organs])

    def set_round(self, rnd) -> None:
        """The finished Round (iir.rounds.Round)."""
        self.round = rnd
        self.text = rnd.text
        self.body.setText(wrappable(rnd.text))
        self.set_prompt(rnd.prompt)
        self._set_chips([(o.display, o.mask_label, o.abnormal_prob, o.fallback) for o in rnd.organs])
        t = rnd.timings
        self.meta.setText(f"{t.generated_tokens} tokens · {t.total_ms / 1000:.1f} s"
                          + (f" · {t.tokens_per_s:.0f} tok/s" if t.tokens_per_s else ""))
        self.meta.setToolTip(f"prefill {t.prefill_ms:.0f} ms ({t.prompt_tokens} tokens), decode {t.decode_ms:.0f} ms, "
                             f"organ tokens {t.organ_tokens_ms:.0f} ms; context {t.context_tokens} tokens; "
                             f"stopped on {rnd.stop_reason or '?'}")
        notes = []
        if rnd.organs and all(o.abnormal_prob is None for o in rnd.organs):
            notes.append(f"P(abnormal): {NO_CLASSIFIER}")  # e.g. a converted M3D-LaMed: the chips carry no number
        if rnd.next_organs:
            notes.append("Next round examines: " + ", ".join(n.replace("_", " ") for n in rnd.next_organs))
        if rnd.skipped_organs:
            notes.append("Not examined: " + "; ".join(f"{s.name.replace('_', ' ')} ({s.reason})"
                                                       for s in rnd.skipped_organs))
        self.next.setText("\n".join(notes))
        self.next.setVisible(bool(notes))
        self.setProperty("live", False)
        self._restyle()
        self.controls.show()

    def set_review(self, decision, signed: bool, draft: str | None) -> None:
        self.controls.set_state(self.text, decision, signed, draft)
        edited = decision.decision == "edited" and decision.text
        self.edited.setText(f"Radiologist: {wrappable(decision.text)}" if edited else "")
        self.edited.setVisible(bool(edited))
        if decision.comment:
            self.edited.setText((self.edited.text() + "\n" if edited else "") + f"Comment: {decision.comment}")
            self.edited.show()
        rejected = decision.decision == "rejected"
        if bool(self.body.property("rejected")) != rejected:
            self.body.setProperty("rejected", rejected)
            self.body.style().unpolish(self.body)
            self.body.style().polish(self.body)

    def set_selected(self, on: bool) -> None:
        self.setProperty("selected", bool(on))
        self._restyle()

    @property
    def chip_widgets(self) -> list[OrganChip]:
        return [self.chip_layout.itemAt(i).widget() for i in range(self.chip_layout.count())]

    def _set_chips(self, chips) -> None:
        while self.chip_layout.count():
            item = self.chip_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for display, lid, prob, fallback in chips:
            chip = OrganChip(display, lid, self.colour_of(lid), prob, fallback)
            chip.clicked.connect(self.organ_clicked)
            self.chip_layout.addWidget(chip)
        self.chips.setVisible(bool(chips))
        self.chip_layout.invalidate()

    def _restyle(self) -> None:
        self.style().unpolish(self)
        self.style().polish(self)

    # -- selection ---------------------------------------------------------------------------------
    def mousePressEvent(self, ev) -> None:  # noqa: N802 (Qt)
        if ev.button() == Qt.MouseButton.LeftButton:
            self.selected.emit(self.index)
        super().mousePressEvent(ev)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt): a click on the text also selects
        if ev.type() == QEvent.Type.MouseButtonPress and ev.button() == Qt.MouseButton.LeftButton:
            self.selected.emit(self.index)
        return False
