"""Agree / Edit / Reject for one review item (a round or the conclusion), with an edit box.

The AI text is never touched: Edit opens a box prefilled with the current text (or the unsaved
draft) and "Save edit" records the radiologist's version beside the AI's. Typing in the box is
reported as a draft so that a crash does not lose it. After sign-off a decision becomes an
amendment and asks for the reason.

A decision shows only once it is saved: when the save fails the controls go back to the saved
decision and say "Not saved" with the error (``show_not_saved``); an edit that failed stays in
its box, so nothing typed is lost.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QHBoxLayout, QInputDialog, QLabel, QLineEdit, QPlainTextEdit, QPushButton,
                               QToolButton, QVBoxLayout, QWidget)

from app.theme import DECISION_RGB, rgb_css

LABELS = {"pending": "Pending", "agreed": "Agreed", "edited": "Edited", "rejected": "Rejected"}


class ReviewControls(QWidget):
    decided = Signal(str, str, object, str, str)  # key, decision, edited text or None, comment, reason
    draft_changed = Signal(str, str)  # key, text typed so far ("" = discarded)

    def __init__(self, key: str, parent=None):
        super().__init__(parent)
        self.key = key
        self.ai_text = ""
        self.current_text = ""
        self.decision = "pending"
        self.signed = False
        self.reason_provider: Callable[[], str | None] = self._ask_reason
        self._syncing = False
        self._attempt: tuple[str, str | None] | None = None  # the decision last asked for

        self.agree = self._button("✓ Agree", "Agree with the AI text (A)")
        self.edit = self._button("✎ Edit", "Write your own version; the AI text is kept beside it")
        self.reject = self._button("✗ Reject", "Reject this statement")
        self.badge = QLabel()
        self.badge.setObjectName("decisionBadge")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        for b in (self.agree, self.edit, self.reject):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.badge)
        self.notice = QLabel()  # "Not saved: <why>" after a decision the disk refused
        self.notice.setObjectName("saveError")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #ff8a80; font-weight: bold;")
        self.notice.hide()

        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("Your version of this text")
        self.editor.setMaximumHeight(110)
        self.comment = QLineEdit(placeholderText="Comment (optional)")
        self.save = QPushButton("Save edit")
        self.discard = QPushButton("Discard")
        edit_row = QHBoxLayout()
        edit_row.setContentsMargins(0, 0, 0, 0)
        edit_row.addWidget(self.comment, 1)
        edit_row.addWidget(self.save)
        edit_row.addWidget(self.discard)
        self.edit_area = QWidget()
        ea = QVBoxLayout(self.edit_area)
        ea.setContentsMargins(0, 2, 0, 0)
        ea.setSpacing(3)
        ea.addWidget(self.editor)
        ea.addLayout(edit_row)
        self.edit_area.hide()

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        lay.addLayout(row)
        lay.addWidget(self.notice)
        lay.addWidget(self.edit_area)

        self.agree.clicked.connect(lambda: self._decide("agreed"))
        self.reject.clicked.connect(lambda: self._decide("rejected"))
        self.edit.clicked.connect(self.open_editor)
        self.save.clicked.connect(self.save_edit)
        self.discard.clicked.connect(self.close_editor)
        self.editor.textChanged.connect(self._typed)

    def _button(self, text: str, tip: str) -> QToolButton:
        b = QToolButton(text=text, toolTip=tip, checkable=True)
        b.setObjectName("reviewButton")
        return b

    # -- state -> widget ---------------------------------------------------------------------------
    def set_state(self, ai_text: str, decision, signed: bool, draft: str | None = None) -> None:
        """decision: the item's effective review.Decision; draft: unsaved edit-box text, if any."""
        self._syncing = True
        self.ai_text, self.decision, self.signed = ai_text, decision.decision, signed
        self.current_text = decision.text if decision.decision == "edited" and decision.text else ai_text
        for b, name in ((self.agree, "agreed"), (self.edit, "edited"), (self.reject, "rejected")):
            b.setChecked(self.decision == name)
        who = f" by {decision.reviewer}" if decision.reviewer and self.decision != "pending" else ""
        self.badge.setText(LABELS[self.decision] + who)
        if self.badge.property("decision") != self.decision:  # a style sheet change re-polishes: only when needed
            self.badge.setProperty("decision", self.decision)
            self.badge.setStyleSheet(f"background: {rgb_css(DECISION_RGB[self.decision])};")
        if draft:
            self.editor.setPlainText(draft)
            self.edit_area.show()
        elif not self.edit_area.isHidden():
            self.edit_area.hide()
        self._syncing = False

    def show_not_saved(self, message: str) -> None:
        """The decision last asked for was not applied (call after ``set_state`` has put the saved
        decision back): say why; a failed edit goes back into its box."""
        self.notice.setText(message)
        self.notice.setToolTip(message)
        self.notice.show()
        self.badge.setText(self.badge.text() + " · not saved")
        if self._attempt is not None and self._attempt[0] == "edited" and self._attempt[1]:
            self._syncing = True
            self.editor.setPlainText(self._attempt[1])
            self._syncing = False
            self.edit_area.show()
            self.edit.setChecked(True)
            self.draft_changed.emit(self.key, self._attempt[1])  # kept as a draft, like typed text

    def clear_not_saved(self) -> None:
        if not self.notice.isHidden():
            self.notice.hide()
            self.notice.clear()

    @property
    def not_saved(self) -> bool:
        return not self.notice.isHidden()

    # -- actions -----------------------------------------------------------------------------------
    def open_editor(self) -> None:
        self._syncing = True
        if not self.editor.toPlainText().strip() or self.edit_area.isHidden():
            self.editor.setPlainText(self.current_text)
        self._syncing = False
        self.edit_area.show()
        self.edit.setChecked(True)
        self.editor.setFocus()

    def close_editor(self) -> None:
        self.edit_area.hide()
        self.edit.setChecked(self.decision == "edited")
        self.draft_changed.emit(self.key, "")

    def save_edit(self) -> None:
        text = self.editor.toPlainText().strip()
        if not text:
            return
        self.edit_area.hide()  # before deciding: a decision that fails puts it back
        if text == self.ai_text.strip():  # nothing changed: that is agreement, not an edit
            self._decide("agreed")
        else:
            self._decide("edited", text)

    def _decide(self, decision: str, text: str | None = None) -> None:
        reason = ""
        if self.signed:
            reason = self.reason_provider()
            if reason is None:  # the amendment was called off
                self.set_state(self.ai_text, _Same(self.decision, self.current_text), self.signed)
                return
        self._attempt = (decision, text)
        self.decided.emit(self.key, decision, text, self.comment.text().strip(), reason)

    def _typed(self) -> None:
        if not self._syncing and not self.edit_area.isHidden():
            self.draft_changed.emit(self.key, self.editor.toPlainText())

    def _ask_reason(self) -> str | None:
        text, ok = QInputDialog.getText(self, "Amend a signed review",
                                        "The review is signed: this change is added as an amendment. Why?")
        return text.strip() if ok and text.strip() else None


class _Same:
    """A stand-in Decision to re-show the unchanged state."""

    def __init__(self, decision: str, text: str):
        self.decision, self.text, self.reviewer = decision, text, ""
