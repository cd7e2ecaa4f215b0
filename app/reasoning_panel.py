"""The reasoning panel: the analysis bar, the rounds as they stream in (one card each), the
conclusion set apart, and the sign-off bar. It shows the case model's run and review (and
follows its events), the controller's live rounds, and the reviewer name of the shared settings.
Selecting a round highlights its ROI in every view (through the controller, which changes the
scene state). It lives as long as its controller (the model's callbacks are plain callables)."""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QScrollArea, QVBoxLayout,
                               QWidget)

from app.analysis_bar import AnalysisBar
from app.case_controller import CaseController
from app.conclusion_view import ConclusionView
from app.round_card import RoundCard
from inference.report.review import CONCLUSION, round_key
from inference.vocabulary import TASKS

# run.json warnings about the question itself (inference/pipeline.py), shown under it
QUESTION_WARNINGS = ("The question is not one of the forms", "Model card:")
DISCLAIMER = "Research software, not a medical device: every statement needs the radiologist's review."


class ReasoningPanel(QWidget):
    export_requested = Signal()
    details_requested = Signal()

    def __init__(self, controller: CaseController, parent=None):
        super().__init__(parent)
        self.c = controller
        self.cards: dict[int, RoundCard] = {}
        self.selected: int | None = None
        self.bar = AnalysisBar(controller.settings.default_task)

        self.question = QLabel()
        self.question.setWordWrap(True)
        self.question.setStyleSheet("font-weight: bold;")
        # what the reader must know before reading the cards: a typed question the model was not
        # trained on, a model folder without a card (the window's banner says the domain)
        self.question_warning = QLabel()
        self.question_warning.setObjectName("questionWarning")
        self.question_warning.setStyleSheet("QLabel#questionWarning { color: #ffb36b; }")
        self.question_warning.setWordWrap(True)
        self.question_warning.hide()
        self.runs = QComboBox()
        self.runs.setToolTip("Earlier analyses of this case")
        # its entries (long questions) must never widen the panel: a wider dock shrinks the views,
        # and re-rendering them (software OpenGL) held the GUI thread ~150 ms when the first run ended
        self.runs.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.runs.setMinimumContentsLength(16)
        self.details = QPushButton("Run details…")
        self.details.setToolTip("Model, device, segmentation backend, settings and timings of this run")
        head = QHBoxLayout()
        head.addWidget(self.runs, 1)
        head.addWidget(self.details)

        self.list = QWidget()
        self.list_layout = QVBoxLayout(self.list)
        self.list_layout.setContentsMargins(4, 4, 4, 4)
        self.list_layout.setSpacing(6)
        self.placeholder = QLabel("Open a case, choose a task and press Analyze.\n"
                                  "Each reasoning round appears here as the model writes it.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setObjectName("cardMeta")
        self.conclusion = ConclusionView()
        self.conclusion.hide()
        self.list_layout.addWidget(self.placeholder)
        self.list_layout.addWidget(self.conclusion)
        self.list_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.list)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.progress_label = QLabel()
        self.reviewer = QLineEdit(controller.settings.reviewer, placeholderText="Reviewer name")
        self.sign = QPushButton("Sign off")
        self.sign.setToolTip("Sign the review once every round and the conclusion is decided")
        self.export = QPushButton("Export…")
        foot = QHBoxLayout()
        foot.addWidget(self.progress_label, 1)
        foot.addWidget(self.reviewer)
        foot.addWidget(self.sign)
        foot.addWidget(self.export)
        disclaimer = QLabel(DISCLAIMER)
        disclaimer.setObjectName("disclaimer")
        disclaimer.setWordWrap(True)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.bar)
        lay.addWidget(self.question)
        lay.addWidget(self.question_warning)
        lay.addLayout(head)
        lay.addWidget(self.scroll, 1)
        lay.addLayout(foot)
        lay.addWidget(disclaimer)

        self.bar.analyze_requested.connect(lambda t, o, q: self.c.analyze(t, o, q))
        self.bar.cancel_requested.connect(self.c.cancel)
        self.bar.segment_requested.connect(lambda: self.c.segment())
        self.runs.activated.connect(self._run_chosen)
        self.details.clicked.connect(self.details_requested)
        self.export.clicked.connect(self.export_requested)
        self.sign.clicked.connect(self._sign)
        self.conclusion.controls.decided.connect(self._decided)
        self.conclusion.controls.draft_changed.connect(self.c.set_draft)
        c = controller
        c.run_started.connect(self._on_run_started)
        c.round_started.connect(self._on_round_started)
        c.round_text.connect(lambda i, d: i in self.cards and self.cards[i].append_text(d))
        c.round_done.connect(self._on_round_done)
        c.live_run_ended.connect(self.show_run)
        c.review_failed.connect(self._review_failed)
        c.busy_changed.connect(lambda: self.bar.set_busy(c.busy_kinds()))
        c.job_progress.connect(self.bar.set_progress)
        model = c.model
        model.events.connect("run", self.show_run)
        model.events.connect("review", self._review_saved)
        model.events.connect("case", self._organs_changed)
        model.events.connect("masks", self._organs_changed)
        c.settings_store.events.connect("changed", self._settings_changed)
        self.show_run()
        # the first card pays Qt's one-off style and font set-up (~60 ms); pay it now, not mid-run
        warm = self._add_card(0, "")
        warm.set_expected_organs([("liver", 5)])
        self.cards.pop(0)
        _discard(warm)
        self.placeholder.setVisible(self.c.run is None)

    # -- building ----------------------------------------------------------------------------------
    def _clear_cards(self) -> None:
        for card in self.cards.values():
            _discard(card)
        self.cards.clear()
        self.selected = None

    def _display(self, name: str) -> str:
        table = self.c.state.table
        return table.by_name(name).display if name in table else name.replace("_", " ")

    def _unseen(self, rnd, rounds) -> list[str]:
        from inference.iir.unseen import unseen_in

        return unseen_in(rnd, list(rounds))

    def _add_card(self, index: int, prompt: str, step: str = "") -> RoundCard:
        card = RoundCard(index, prompt, self.c.state.colour, display_of=self._display, step=step)
        card.selected.connect(self.select_round)
        card.organ_clicked.connect(lambda lid: self.c.state.set_highlight([lid]))
        card.controls.decided.connect(self._decided)
        card.controls.draft_changed.connect(self.c.set_draft)
        self.list_layout.insertWidget(self.list_layout.indexOf(self.conclusion), card)
        self.cards[index] = card
        self.placeholder.hide()
        return card

    def show_run(self) -> None:
        """Rebuild from the controller's run (after a run ends, a failure, a restore or a switch)."""
        if self.c.live_question is not None:
            return
        run = self.c.run
        if run is not None and [(i, card.round) for i, card in sorted(self.cards.items())] == \
                [(r.index, r) for r in run.rounds]:
            self._finish_live(run)  # the cards streamed in are this run's: keep them (no rebuild)
            return
        self._clear_cards()
        self.conclusion.controls.clear_not_saved()
        self.conclusion.setVisible(run is not None)
        self.placeholder.setVisible(run is None)
        self.question.setText(f"Q: {run.question}" if run else "")
        self._show_question_warning(run)
        self.details.setEnabled(run is not None)
        self.details.setVisible(run is not None)
        self._fill_runs()
        if run is None:
            self.refresh_review()
            return
        for rnd in run.rounds:
            self._add_card(rnd.index, rnd.prompt, _step_title(run, rnd)).set_round(rnd, self._unseen(rnd, run.rounds))
        self.conclusion.set_run(run)
        self.bar.show_request(run.task, _run_organ(run, self._display), None if run.task else run.question)
        self.refresh_review()
        QTimer.singleShot(0, self.show_conclusion)

    def show_conclusion(self) -> None:
        """Scroll so that the conclusion's title and its Agree / Edit / Reject are in view."""
        if self.conclusion.isVisible():
            self.scroll.ensureWidgetVisible(self.conclusion.controls, 8, 8)
            self.scroll.ensureWidgetVisible(self.conclusion.title, 8, 8)

    def _show_question_warning(self, run) -> None:
        notes = [w for w in (run.warnings if run else []) if w.startswith(QUESTION_WARNINGS)]
        self.question_warning.setText("⚠ " + "\n⚠ ".join(notes) if notes else "")
        self.question_warning.setVisible(bool(notes))

    def _finish_live(self, run) -> None:
        self.question.setText(f"Q: {run.question}")  # the questions asked, as run.json has them
        self._show_question_warning(run)
        self.conclusion.set_run(run)
        self.conclusion.show()
        self.details.setEnabled(True)
        self.details.show()
        self._fill_runs()
        for i, card in self.cards.items():
            card.controls.show()
            if card.round is not None and _step_title(run, card.round):  # live cards knew the step's id only
                card.title.setText(f"Round {i} · {_step_title(run, card.round)}")
        self.refresh_review()
        QTimer.singleShot(0, self.show_conclusion)

    def _fill_runs(self) -> None:
        self.runs.clear()
        self._stored = self.c.stored_runs()
        for s in self._stored:
            what = s.run.task or "question"
            self.runs.addItem(f"{s.run.created.replace('T', ' ')[:16]}  {what}: {s.run.question[:50]}", s.key)
        current = next((i for i, s in enumerate(self._stored) if s.run is self.c.run or
                        (self.c.run is not None and s.key == self._key(self.c.run))), -1)
        self.runs.setCurrentIndex(current)
        self.runs.setVisible(bool(self._stored))

    @staticmethod
    def _key(run) -> str:
        from inference.report.review import run_key

        return run_key(run)

    def _run_chosen(self, i: int) -> None:
        if 0 <= i < len(self._stored) and self.c.live_question is None:
            self.c.show_run(self._stored[i].run)

    def refresh_review(self) -> None:
        review = self.c.review
        if review is None:
            self.progress_label.setText("")
            for w in (self.sign, self.export, self.reviewer):
                w.setEnabled(False)
            return
        signed = review.is_signed
        drafts = self.c.model.drafts
        for i, card in self.cards.items():
            key = round_key(i)
            card.set_review(review.effective(key), signed, drafts.get(key))
        self.conclusion.set_review(review.effective(CONCLUSION), signed, drafts.get(CONCLUSION),
                                   review.ai_text(CONCLUSION))
        n, left = len(review.keys), len(review.pending())
        if signed:
            text = f"Signed by {review.signed.reviewer} at {review.signed.at[:16].replace('T', ' ')}"
            if review.amendments:
                text += f" · {len(review.amendments)} amendment(s)"
        else:
            text = f"{n - left} of {n} decided"
        problem = self.c.model.storage_problem
        if problem:
            text += " · not saved: the review folder cannot be written"
        self.progress_label.setText(text)
        self.progress_label.setToolTip(problem or "")
        self.sign.setEnabled(not signed and left == 0)
        self.reviewer.setEnabled(not signed)
        self.export.setEnabled(True)

    # -- live run ----------------------------------------------------------------------------------
    def _on_run_started(self, question: str) -> None:
        self._clear_cards()
        self.conclusion.hide()
        self.placeholder.hide()
        self.question.setText(f"Q: {question}")
        self._show_question_warning(None)
        if self.c.live_request is not None:
            self.bar.show_request(*self.c.live_request)
        for w in (self.sign, self.export, self.details):
            w.setEnabled(False)
        self.progress_label.setText("Analyzing…")

    def _on_round_started(self, index: int, prompt: str) -> None:
        card = self._add_card(index, prompt)
        prev = self.cards.get(index - 1)
        if prev is not None and prev.round is not None:
            table = self.c.state.table
            card.set_expected_organs([(table.by_name(n).display, table.by_name(n).id)
                                      for n in prev.round.next_organs if n in table])
        QTimer.singleShot(0, lambda: self.scroll.ensureWidgetVisible(card))

    def _on_round_done(self, rnd) -> None:
        card = self.cards.get(rnd.index) or self._add_card(rnd.index, rnd.prompt)
        if rnd.step and rnd.step not in TASKS and rnd.step != "question":  # a step of several (T, N, M)
            card.title.setText(f"Round {rnd.index} · {rnd.step}")
        done = [c.round for c in self.cards.values() if c.round is not None] + [rnd]
        card.set_round(rnd, self._unseen(rnd, done))
        card.controls.hide()  # reviewable once the run is complete

    # -- interaction -------------------------------------------------------------------------------
    def select_round(self, index: int) -> None:
        card = self.cards.get(index)
        if card is None or card.round is None:
            return
        self.selected = index
        for i, other in self.cards.items():
            other.set_selected(i == index)
        self.c.highlight_round(card.round)
        self.scroll.ensureWidgetVisible(card)

    def step_round(self, delta: int) -> None:
        """Alt+Down / Alt+Up: the next or previous round."""
        if not self.cards:
            return
        order = sorted(self.cards)
        i = order.index(self.selected) + delta if self.selected in order else (0 if delta > 0 else len(order) - 1)
        self.select_round(order[min(max(i, 0), len(order) - 1)])

    def controls_for(self, key: str):
        """The ReviewControls of an item key (a round or the conclusion), or None."""
        if key == CONCLUSION:
            return self.conclusion.controls
        card = next((c for i, c in self.cards.items() if round_key(i) == key), None)
        return card.controls if card is not None else None

    def _review_saved(self, key: str) -> None:
        self.refresh_review()
        controls = self.controls_for(key)
        if controls is not None:
            controls.clear_not_saved()

    def _review_failed(self, key: str, message: str) -> None:
        """The decision was not applied: show the saved state again, and say why beside it."""
        self.refresh_review()
        if key == "*":
            self.progress_label.setText(f"Not signed. {message}")
            return
        controls = self.controls_for(key)
        if controls is not None:
            controls.show_not_saved(message)

    def _decided(self, key: str, decision: str, text, comment: str, reason: str) -> None:
        self.c.decide(key, decision, text=text, comment=comment, reason=reason)

    def _sign(self) -> None:
        name = self.reviewer.text().strip()
        if name and name != self.c.settings.reviewer:
            self.c.settings_store.update(reviewer=name)  # the next review starts with it
            self.c.settings_store.save()
        if self.confirm_sign(name):
            self.c.sign(name)

    def confirm_sign(self, name: str) -> bool:
        """The reviewer's explicit OK (tests replace this)."""
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self, "Sign off", f"Sign this review as {name or '(no name)'}?\n\nThe decisions are then frozen; "
            "a later change is added as an amendment with its reason.")
        return answer == QMessageBox.StandardButton.Yes

    def _settings_changed(self, old, new) -> None:
        # only a changed name: a name typed for this review is kept when other settings change
        if new.reviewer != old.reviewer and self.reviewer.isEnabled():
            self.reviewer.setText(new.reviewer)

    def _organs_changed(self) -> None:
        st = self.c.state
        self.bar.set_organs([st.label_name(i) for i in st.present_ids if i < 100])
        self.bar.set_needs_masks(st.ct is not None and st.masks is None)


def _step_title(run, rnd) -> str:
    """The task step a round answers, as the card's title shows it ("T stage"); "" when the task was
    one question."""
    if len(run.steps) <= 1:
        return ""
    for st in run.steps:
        if st.get("id") == rnd.step:
            return str(st.get("title") or rnd.step)
    return rnd.step


def _run_organ(run, display) -> str | None:
    """The organ a task run was narrowed to, for the organ box (None when the run found it itself)."""
    if any(st.get("id") == "organ" for st in run.steps):
        return None
    for st in run.steps:
        if st.get("organ"):
            return display(st["organ"])
    return None


def _discard(widget) -> None:
    """Take a widget out of the panel for good. Hidden first: a layout that took the widget queued a
    show for it, and when a fast run ended before that show ran (its round and end signals already
    queued from the worker), the show found the widget parentless and opened it as a window of its
    own (two stray round cards on the desktop, seen in the README's screenshot run)."""
    widget.hide()
    widget.setParent(None)
    widget.deleteLater()
