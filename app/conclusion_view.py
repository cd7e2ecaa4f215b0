"""The run's conclusion, set apart from the rounds: the chain Findings -> Impression -> Pathology
when the final answer is a report (other tasks: the reasoning process), the summary, the answer,
why the loop stopped, and the conclusion's review."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout

from app.review_controls import ReviewControls
from app.round_card import wrappable
from inference.report.review import CONCLUSION

NOT_STATED = "(not stated by the model)"
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
        # the classifier flags a region the normal-reading conclusion passes over (classifier_screen.py)
        self.discordant = QLabel()
        self.discordant.setObjectName("discordantNote")
        self.discordant.setStyleSheet("QLabel#discordantNote { color: #ffb36b; }")
        self.discordant.setWordWrap(True)
        self.discordant.setTextFormat(Qt.TextFormat.PlainText)
        self.discordant.hide()
        self.footer = QLabel()
        self.footer.setObjectName("cardMeta")
        self.footer.setWordWrap(True)
        self.controls = ReviewControls(CONCLUSION)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 8, 10, 8)
        lay.setSpacing(5)
        lay.addWidget(self.title)
        lay.addWidget(self.answer)
        lay.addWidget(self.discordant)
        lay.addWidget(self.edited)
        # the decision right under the answer: in view without scrolling past a long report
        lay.addWidget(self.controls)
        lay.addLayout(self.chain)
        lay.addWidget(self.footer)
        self.sections: dict[str, str] = {}

    def set_run(self, run) -> None:
        """Show ``run.conclusion`` (inference.iir.conclusion.Conclusion) of a RunRecord."""
        c = run.conclusion
        while self.chain.count():
            w = self.chain.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        s = c.sections
        if len(run.steps) > 1:  # a task asked as several trained questions: each part and its rounds
            parts = [("Parts", "\n".join(_step_line(st) for st in run.steps))]
        elif s is not None:
            # the text before "Findings:" is the last round's evidence, shown on its card: not repeated.
            # Every section is listed, so a missing pathology is visible as such
            parts = [("Findings", s.findings or NOT_STATED), ("Impression", s.impression or NOT_STATED),
                     ("Pathology", s.pathology or NOT_STATED)]
        else:
            parts = [("Reasoning", c.reasoning)] if c.reasoning else []
        if c.summary and len(run.steps) <= 1:
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
        from inference.iir.unseen import unseen_in

        unseen = unseen_in(run.rounds[-1], run.rounds) if run.rounds else []
        note = (f"\n⚠ Its round names {', '.join(n.replace('_', ' ') for n in unseen)}, which has no mask in this "
                "case: not seen, not a finding.") if unseen else ""
        from inference.iir.classifier_screen import DISCORDANT

        flagged = [w for w in getattr(run, "warnings", []) if w.startswith(DISCORDANT)]
        self.discordant.setText("\n".join(f"⚠ {w}" for w in flagged))
        self.discordant.setVisible(bool(flagged))
        if len(run.steps) > 1:
            self.footer.setText(f"Composed from {len(run.steps)} questions the model was trained on "
                                f"({len(run.rounds)} rounds)." + note)
        else:
            self.footer.setText(f"From round {run.rounds[-1].index} of {len(run.rounds)}; stopped: "
                                f"{STOP_REASONS.get(run.stop_reason, run.stop_reason)}." + note)

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


def _step_line(step: dict) -> str:
    a, b = (step.get("rounds") or [0, 0])[:2]
    where = f"round {a}" if a == b else f"rounds {a}-{b}"
    value = step.get("value") or f"no answer read from \"{step.get('answer', '')}\""
    return f"{step.get('title', step.get('id', '?'))}: {value} ({where})"
