"""The run's conclusion, set apart from the rounds: the chain Findings -> Impression -> Pathology
when the final answer is a report (other tasks: the reasoning process), the summary, the answer,
why the loop stopped, and the conclusion's review."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout

from app.review_controls import ReviewControls
from app.round_card import wrappable
from inference.report.review import CONCLUSION

STOP_REASONS = {"no_new_organ": "no new organ to examine", "round_limit": "round limit reached"}


class ConclusionView(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("conclusion")
        self.title = QLabel("Conclusion")
        self.title.setStyleSheet("font-weight: bold; font-size: 14px; color: #cfe0ff;")
        self.chain = QVBoxLayout()
        self.chain.setSpacing(2)
        self.answer = QLabel()
        self.answer.setObjectName("answer")
        self.answer.setWordWrap(True)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.edited = QLabel()
        self.edited.setObjectName("editedText")
        self.edited.setWordWrap(True)
        self.edited.hide()
        for w in (self.answer, self.edited):
            w.setTextFormat(Qt.TextFormat.PlainText)
        self.footer = QLabel()
        self.footer.setObjectName("cardMeta")
        self.footer.setWordWrap(True)
        self.controls = ReviewControls(CONCLUSION)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 8, 10, 8)
        lay.setSpacing(5)
        lay.addWidget(self.title)
        lay.addLayout(self.chain)
        lay.addWidget(self.answer)
        lay.addWidget(self.edited)
        lay.addWidget(self.footer)
        lay.addWidget(self.controls)
        self.sections: dict[str, str] = {}

    def set_run(self, run) -> None:
        """Show ``run.conclusion`` (inference.iir.conclusion.Conclusion) of a RunRecord."""
        c = run.conclusion
        while self.chain.count():
            w = self.chain.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        s = c.sections
        if s is not None:
            parts = [("Preamble", s.preamble), ("Findings", s.findings), ("Impression", s.impression),
                     ("Pathology", s.pathology)]
            parts = [(t, v) for t, v in parts if v]
        else:
            parts = [("Reasoning", c.reasoning)] if c.reasoning else []
        if c.summary:
            parts.append(("Summary", c.summary))
        self.sections = dict(parts)
        for i, (title, text) in enumerate(parts):
            arrow = "↓ " if i and s is not None and title in ("Impression", "Pathology") else ""
            head = QLabel(arrow + title)
            head.setObjectName("sectionTitle")
            body = QLabel(wrappable(text))
            body.setTextFormat(Qt.TextFormat.PlainText)
            body.setWordWrap(True)
            body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.chain.addWidget(head)
            self.chain.addWidget(body)
        self.answer.setText(f"Answer: {wrappable(c.answer)}" if c.found else "The model gave no final answer sentence.")
        self.footer.setText(f"From round {run.rounds[-1].index} of {len(run.rounds)}; stopped: "
                            f"{STOP_REASONS.get(run.stop_reason, run.stop_reason)}.")

    def set_review(self, decision, signed: bool, draft: str | None, ai_text: str) -> None:
        self.controls.set_state(ai_text, decision, signed, draft)
        edited = decision.decision == "edited" and decision.text
        text = f"Radiologist: {decision.text}" if edited else ""
        if decision.comment:
            text = (text + "\n" if text else "") + f"Comment: {decision.comment}"
        self.edited.setText(text)
        self.edited.setVisible(bool(text))
        rejected = decision.decision == "rejected"
        self.answer.setStyleSheet("color: #8a8a8a; text-decoration: line-through;" if rejected else "")
