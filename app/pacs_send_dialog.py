"""Send to PACS (after sign-off): the signed run's DICOM SEG, TID 2000 SR and TID 1500 SR go into the
on-disk send queue and from there to the chosen PACS, with the result per object. What fails stays
in the queue (shown below with its attempts and last error) and is retried: by "Retry queued now"
and, while the window is open, every minute (pacs_flows.QueueRetrier)."""
from __future__ import annotations

from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout)

from app.job_runner import JobRunner
from inference.pacs.connection import PacsConnection
from inference.pacs.send_queue import SendQueue

OK_STYLE, BAD_STYLE = "color: #8fd19e;", "color: #f08c7a;"


class SendToPacsDialog(QDialog):
    def __init__(self, connections: list[PacsConnection], queue: SendQueue, make_objects, parent=None,
                 default: str = "", runner=None):
        """make_objects(cancel) -> [(path, description)]: writes the DICOM objects to send into one
        temporary folder (on the worker); the folder is removed once they are queued."""
        super().__init__(parent)
        self.setWindowTitle("Send to PACS")
        self.resize(900, 520)
        self.connections, self.queue, self.make_objects = connections, queue, make_objects
        self.report = None
        self.runner = runner or JobRunner("PACS send", self)
        self.runner.succeeded.connect(self._sent)
        self.runner.failed.connect(lambda msg: self._say(msg, bad=True))
        self.runner.progress.connect(lambda f, m: self.status.setText(m))
        self.runner.finished.connect(self._sync)
        self.connection = QComboBox()
        for c in connections:
            self.connection.addItem(c.name)
        if default in [c.name for c in connections]:
            self.connection.setCurrentText(default)
        self.connection.currentIndexChanged.connect(self.refresh_queue)
        self.results = self._table(("Object", "Result"))
        self.pending = self._table(("Queued object", "Attempts", "Last error"))
        self.status = QLabel("The signed report's DICOM SEG and SRs (TID 2000 text, TID 1500 measurements).")
        self.status.setWordWrap(True)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send)
        self.retry_button = QPushButton("Retry queued now")
        self.retry_button.clicked.connect(self.retry)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        top = QHBoxLayout()
        top.addWidget(QLabel("PACS"))
        top.addWidget(self.connection, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.retry_button)
        buttons.addWidget(self.send_button)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(QLabel("This send"))
        lay.addWidget(self.results, 1)
        self.queue_label = QLabel("")
        lay.addWidget(self.queue_label)
        lay.addWidget(self.pending, 1)
        lay.addLayout(buttons)
        self.refresh_queue()
        self._sync()

    @staticmethod
    def _table(columns) -> QTableWidget:
        t = QTableWidget(0, len(columns))
        t.setHorizontalHeaderLabels(columns)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.verticalHeader().hide()
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        t.horizontalHeader().setStretchLastSection(True)
        return t

    @property
    def conn(self) -> PacsConnection | None:
        i = self.connection.currentIndex()
        return self.connections[i] if 0 <= i < len(self.connections) else None

    def send(self) -> bool:
        conn, queue, make = self.conn, self.queue, self.make_objects
        if conn is None:
            return False

        def job(progress, cancel):
            import shutil

            objects = make(cancel)
            try:
                queue.enqueue([p for p, _ in objects], conn.name, [d for _, d in objects])
            finally:
                if objects:
                    shutil.rmtree(objects[0][0].parent, ignore_errors=True)
            return queue.process(conn, progress=progress, cancel=cancel)
        self._say(f"Sending to {conn.where()}…")
        ok = self.runner.start(job)
        self._sync()
        return ok

    def retry(self) -> bool:
        conn, queue = self.conn, self.queue
        if conn is None:
            return False
        self._say(f"Retrying the queue for {conn.name}…")
        ok = self.runner.start(lambda progress, cancel: queue.process(conn, force=True, progress=progress, cancel=cancel))
        self._sync()
        return ok

    def _sent(self, report) -> None:
        self.report = report
        t = self.results
        t.setRowCount(len(report.results))
        for r, res in enumerate(report.results):
            t.setItem(r, 0, QTableWidgetItem(res.item.description or res.item.sop_instance_uid))
            item = QTableWidgetItem(("✔ " if res.ok else "✘ ") + res.message)
            item.setForeground(self.palette().text().color() if res.ok else _red())
            t.setItem(r, 1, item)
        self._say(report.summary() + "." if report.results else "Nothing was due.", bad=bool(report.failed))
        self.refresh_queue()

    def refresh_queue(self) -> None:
        items = self.queue.pending(self.conn.name) if self.conn else []
        self.queue_label.setText(f"Waiting in the queue for this PACS: {len(items)} (kept on disk until the PACS "
                                 "acknowledges them; retried every minute while the workstation runs)")
        t = self.pending
        t.setRowCount(len(items))
        for r, it in enumerate(items):
            for c, v in enumerate((it.description, str(it.attempts), it.last_error)):
                t.setItem(r, c, QTableWidgetItem(v))
        self._sync()

    def _say(self, text: str, bad: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(BAD_STYLE if bad else OK_STYLE if self.report and not bad else "")

    def done(self, r: int) -> None:  # noqa: D401 (Qt)
        self.runner.shutdown()  # a send in progress stops between objects; the rest stays queued
        super().done(r)

    def _sync(self) -> None:
        busy = self.runner.busy
        self.send_button.setEnabled(not busy and self.conn is not None)
        self.retry_button.setEnabled(not busy and self.conn is not None and self.pending.rowCount() > 0)


def _red():
    from PySide6.QtGui import QColor

    return QColor("#f08c7a")
