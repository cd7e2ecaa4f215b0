"""One IIR round in the reasoning panel: its prompt, the streamed text, the organs it examined
(chips in label colours with P(abnormal)), what it sends to the next round, and its review.
Clicking the card selects the round (the panel highlights its ROI in every view)."""
from __future__ import annotations

import re
from typing import Callable

from PySide6.QtCore import Qt, Signal
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


class _SelectableText(QLabel):
    """A label whose text can be selected with the mouse (so it takes the press) and that still
    tells the card it was pressed. Only mousePressEvent is overridden: an event filter would call
    into Python for every event of every label of every card (paint, layout...), and each such call
    waits for the GIL while the analysis thread runs Python, which made relayouts grow with the
    number of cards during analysis."""

    pressed = Signal()

    def mousePressEvent(self, ev) -> None:  # noqa: N802 (Qt)
        if ev.button() == Qt.MouseButton.LeftButton:
            self.pressed.emit()
        super().mousePressEvent(ev)


class _CardLayout(QVBoxLayout):
    """The card's layout, remembering its height per width until something inside it changes.

    While a round streams, each batch of text relayouts the whole panel, and Qt asks every card
    for its height at the panel's width, several times per pass; a finished card answers from here
    instead of word-wrapping its labels again (the relayout grew with every finished card)."""

    def __init__(self, parent=None):
        self._hfw: dict[int, int] = {}
        super().__init__(parent)

    def invalidate(self) -> None:
        self._hfw.clear()
        super().invalidate()

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt)
        h = self._hfw.get(width)
        if h is None:
            h = self._hfw[width] = super().heightForWidth(width)
        return h


class RoundCard(QFrame):
    selected = Signal(int)  # round index
    organ_clicked = Signal(int)  # mask label id

    def __init__(self, index: int, prompt: str, colour_of: ColourOf, parent=None, display_of=None, step: str = ""):
        super().__init__(parent)
        self.setObjectName("roundCard")
        self.index = index
        self.key = f"round-{index}"
        self.colour_of = colour_of
        # label name -> the name the chips show ("colorectum" -> "colon"): one name per organ on the card
        self.display_of = display_of or (lambda name: name.replace("_", " "))
        self.round = None
        self.text = ""
        self.setProperty("live", True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

        self.title = QLabel(f"Round {index}" + (f" · {step}" if step else ""))
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
        self.body = _SelectableText()
        self.body.setObjectName("aiText")
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.edited = _SelectableText()
        self.edited.setObjectName("editedText")
        self.edited.setWordWrap(True)
        self.edited.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.edited.hide()
        self.next = QLabel()
        self.next.setObjectName("cardMeta")
        self.next.setWordWrap(True)
        self.next.hide()
        self.unseen = QLabel()  # organs the text names without a mask: not findings
        self.unseen.setObjectName("unseenNote")
        self.unseen.setStyleSheet("QLabel#unseenNote { color: #ffb36b; }")
        self.unseen.setWordWrap(True)
        self.unseen.hide()
        self.controls = ReviewControls(self.key)
        self.controls.hide()

        lay = _CardLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.setSpacing(4)
        lay.addLayout(head)
        lay.addWidget(self.prompt)
        lay.addWidget(self.chips)
        lay.addWidget(self.body)
        lay.addWidget(self.unseen)
        lay.addWidget(self.edited)
        lay.addWidget(self.next)
        lay.addWidget(self.controls)
        for w in (self.prompt, self.body, self.edited, self.next, self.unseen):
            w.setTextFormat(Qt.TextFormat.PlainText)  # model text is never markup
        # a click on the card's other labels reaches mousePressEvent below (they ignore presses)
        for w in (self.body, self.edited):
            w.pressed.connect(lambda: self.selected.emit(self.index))

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

    def set_round(self, rnd, unseen: list[str] = ()) -> None:
        """The finished Round (iir.rounds.Round); ``unseen``: label names its text names that have
        no mask in this case (inference/iir/unseen.py), marked under the text."""
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
        name = self.display_of
        if rnd.organs and all(o.abnormal_prob is None for o in rnd.organs):
            notes.append(f"P(abnormal): {NO_CLASSIFIER}")  # e.g. a converted M3D-LaMed: the chips carry no number
        if rnd.next_organs:
            notes.append("Next round examines: " + ", ".join(name(n) for n in rnd.next_organs))
        if rnd.skipped_organs:
            notes.append("Not examined: " + "; ".join(f"{name(s.name)} ({_display_reason(s.reason, name)})"
                                                       for s in rnd.skipped_organs))
        from inference.iir.unseen import unseen_note
        self.unseen.setText(("⚠ " + unseen_note(unseen, name) + ".") if unseen else "")
        self.unseen.setVisible(bool(unseen))
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



def _display_reason(reason: str, name) -> str:
    """A skip reason with label names as the chips show them ("no colorectum mask" -> "no colon mask")."""
    return re.sub(r"\b(no|the) ([a-z0-9_]+) mask", lambda m: f"{m.group(1)} {name(m.group(2))} mask", reason)
