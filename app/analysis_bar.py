"""Choosing what to ask: one of the paper's four tasks (optionally narrowed to an organ) or a typed
question, then Analyze; Cancel and the progress of whatever long work is running."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QSizePolicy, QVBoxLayout, QWidget)

from app.settings import TASK_ORDER, TASK_TITLES

QUESTION = "question"
KIND_NAMES = {"load": "Loading", "segmentation": "Segmenting", "analysis": "Analyzing", "export": "Exporting"}


class AnalysisBar(QWidget):
    analyze_requested = Signal(object, object, object)  # task or None, organ display name or None, question or None
    cancel_requested = Signal()
    segment_requested = Signal()

    def __init__(self, default_task: str = "report", parent=None):
        super().__init__(parent)
        self.task = QComboBox()
        for t in TASK_ORDER:
            self.task.addItem(TASK_TITLES[t], t)
        self.task.addItem("Your own question…", QUESTION)
        self.organ = QComboBox()
        self.organ.setToolTip("Narrow the task to one organ (its prompt names it, so IIR examines it)")
        self.set_organs([])
        self.question = QLineEdit(placeholderText="Type a question about this CT (Enter to analyze)")
        self.analyze = QPushButton("▶ Analyze")
        self.analyze.setObjectName("analyze")
        self.analyze.setToolTip("Run TumorChain on this case (Ctrl+Return)")
        self.cancel = QPushButton("■ Cancel")
        self.cancel.setToolTip("Stop the running work; the case stays as it was (Esc in this panel)")
        self.cancel.setEnabled(False)
        self.segment = QPushButton("Segment organs")
        self.segment.setToolTip("This case has no organ masks yet: make them with the segmentation expert "
                                "(Edit > Settings chooses it), or File > Open Organ Masks")
        self.segment.hide()
        self._idle_text = ""
        self.progress = QProgressBar(minimum=0, maximum=100, textVisible=True)
        # while a run streams, nothing above the cards may change height: that would relayout and
        # repaint the whole panel on every progress message
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress.setSizePolicy(policy)
        self.progress.hide()
        self.status = QLabel()
        self.status.setObjectName("cardMeta")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)  # one line, never wider

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel("Task"), 0, 0)
        grid.addWidget(self.task, 0, 1)
        grid.addWidget(QLabel("Organ"), 0, 2)
        grid.addWidget(self.organ, 0, 3)
        grid.addWidget(self.question, 1, 0, 1, 4)
        grid.setColumnStretch(1, 2)
        grid.setColumnStretch(3, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.analyze)
        buttons.addWidget(self.segment)
        buttons.addWidget(self.cancel)
        buttons.addWidget(self.progress, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 2)
        lay.setSpacing(4)
        lay.addLayout(grid)
        lay.addLayout(buttons)
        lay.addWidget(self.status)

        self.set_task(default_task)
        self.task.currentIndexChanged.connect(self._task_changed)
        self.question.textEdited.connect(lambda text: text.strip() and self.set_task(QUESTION))
        self.question.returnPressed.connect(self.request)
        self.analyze.clicked.connect(self.request)
        self.cancel.clicked.connect(self.cancel_requested)
        self.segment.clicked.connect(self.segment_requested)
        self._task_changed()

    def set_task(self, task: str) -> None:
        i = self.task.findData(task)
        if i >= 0 and i != self.task.currentIndex():
            self.task.setCurrentIndex(i)

    def show_request(self, task: str | None, organ: str | None, question: str | None) -> None:
        """Show what the run on screen asked (a scripted run, a stored run chosen): the boxes never
        show another task than the cards below them."""
        if question is not None:
            self.set_task(QUESTION)
            self.question.setText(question)
            return
        if task is not None:
            self.set_task(task)
        i = self.organ.findData(organ) if organ else 0
        self.organ.setCurrentIndex(max(i, 0))

    def set_organs(self, displays: list[str]) -> None:
        current = self.organ.currentText()
        self.organ.clear()
        self.organ.addItem("whole abdomen", None)
        for d in displays:
            self.organ.addItem(d, d)
        i = self.organ.findText(current)
        self.organ.setCurrentIndex(max(i, 0))

    def set_needs_masks(self, needs: bool) -> None:
        """A CT without organ masks: offer segmentation and say why Analyze cannot run yet."""
        self.segment.setVisible(needs)
        self._idle_text = "No organ masks for this CT yet: segment it, or open a mask file." if needs else ""
        self.status.setText(self._idle_text)

    def _task_changed(self) -> None:
        self.organ.setEnabled(self.task.currentData() != QUESTION)

    def request(self) -> None:
        task = self.task.currentData()
        if task == QUESTION:
            self.analyze_requested.emit(None, None, self.question.text())
        else:
            self.analyze_requested.emit(task, self.organ.currentData(), None)

    def set_busy(self, kinds: list[str]) -> None:
        self.cancel.setEnabled(bool(kinds))
        self.analyze.setEnabled("analysis" not in kinds)
        if not kinds:
            self.progress.hide()
            self.status.setText(self._idle_text)

    def set_progress(self, kind: str, fraction: float, message: str) -> None:
        self.progress.show()
        self.progress.setValue(int(round(fraction * 100)))
        self.progress.setFormat(f"{KIND_NAMES.get(kind, kind)}: %p%")
        self.status.setText(message)
        self.status.setToolTip(message)
