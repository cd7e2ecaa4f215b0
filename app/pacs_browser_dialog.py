"""File > Open from PACS: search studies (patient name or id, date range, modality, accession), list
a study's series (description, slice count, slice thickness), retrieve one into the local cache on
a worker thread with progress and Cancel, then the window opens it as any DICOM folder.

Searches and retrievals run on one JobRunner; a failure says what failed (refused, timeout, AE
title rejected, dropped mid-transfer) in the dialog, and a retrieval that fails or is cancelled
leaves nothing to open (inference/pacs/retrieve.py verifies before it publishes a folder).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QGridLayout, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout)

from app.job_runner import JobRunner
from inference.pacs.connection import PacsConnection
from inference.pacs.query import SeriesRecord, StudyQuery, StudyRecord

STUDY_COLUMNS = ("Date", "Patient", "Patient ID", "Accession", "Modalities", "Description", "Series", "Images")
SERIES_COLUMNS = ("#", "Modality", "Description", "Images", "Slice thickness")
BAD_STYLE = "color: #f08c7a;"


def _dicom_name(pn: str) -> str:
    parts = pn.split("^")
    return ", ".join(p for p in parts[:2] if p) if len(parts) > 1 else pn


def _date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


class OpenFromPacsDialog(QDialog):
    def __init__(self, connections: list[PacsConnection], cache_dir: str | Path, parent=None, default: str = "",
                 runner=None):
        super().__init__(parent)
        self.setWindowTitle("Open from PACS")
        self.resize(1100, 680)
        self.connections = connections
        self.cache_dir = Path(cache_dir)
        self.folder: Path | None = None  # the retrieved series, once complete
        self.studies: list[StudyRecord] = []
        self.series: list[SeriesRecord] = []
        self.runner = runner or JobRunner("PACS", self)
        self.runner.succeeded.connect(self._succeeded)
        self.runner.failed.connect(self._failed)
        self.runner.cancelled.connect(self._cancelled)
        self.runner.progress.connect(self._progress)
        self.runner.finished.connect(self._finished)
        self._then = None
        self._queued = None  # a job asked for while another ran (e.g. listing series of the first study found)

        self.connection = QComboBox()
        for c in connections:
            self.connection.addItem(c.name)
        if default in [c.name for c in connections]:
            self.connection.setCurrentText(default)
        self.patient_name = QLineEdit(placeholderText="Doe^J or Doe (prefix)")
        self.patient_id = QLineEdit()
        self.accession = QLineEdit()
        self.modality = QComboBox(editable=True)
        self.modality.addItems(["", "CT", "MR", "PT", "US", "CR"])
        self.date_from = QLineEdit(placeholderText="YYYYMMDD")
        self.date_to = QLineEdit(placeholderText="YYYYMMDD")
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        grid = QGridLayout()
        for col, (label, w) in enumerate((("PACS", self.connection), ("Patient name", self.patient_name),
                                          ("Patient ID", self.patient_id), ("Accession", self.accession))):
            grid.addWidget(QLabel(label), 0, 2 * col)
            grid.addWidget(w, 0, 2 * col + 1)
        for col, (label, w) in enumerate((("Modality", self.modality), ("Date from", self.date_from),
                                          ("to", self.date_to))):
            grid.addWidget(QLabel(label), 1, 2 * col)
            grid.addWidget(w, 1, 2 * col + 1)
        grid.addWidget(self.search_button, 1, 7)

        self.study_table = self._table(STUDY_COLUMNS)
        self.study_table.itemSelectionChanged.connect(self._study_selected)
        self.series_table = self._table(SERIES_COLUMNS)
        self.series_table.itemSelectionChanged.connect(self._sync)
        self.series_table.itemDoubleClicked.connect(lambda _: self.retrieve())
        self.progress = QProgressBar(minimum=0, maximum=100, textVisible=True)
        self.progress.hide()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.retrieve_button = QPushButton("Retrieve and open")
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.retrieve_button)
        bottom.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addLayout(grid)
        lay.addWidget(QLabel("Studies"))
        lay.addWidget(self.study_table, 3)
        lay.addWidget(QLabel("Series"))
        lay.addWidget(self.series_table, 2)
        lay.addLayout(bottom)
        if not connections:
            self._say("No PACS is configured: Edit > Settings > PACS connections.", bad=True)
        self._sync()

    @staticmethod
    def _table(columns) -> QTableWidget:
        t = QTableWidget(0, len(columns))
        t.setHorizontalHeaderLabels(columns)
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.verticalHeader().hide()
        header = t.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(columns.index("Description"), QHeaderView.ResizeMode.Stretch)
        return t

    @property
    def conn(self) -> PacsConnection | None:
        i = self.connection.currentIndex()
        return self.connections[i] if 0 <= i < len(self.connections) else None

    def query(self) -> StudyQuery:
        return StudyQuery(patient_name=self.patient_name.text(), patient_id=self.patient_id.text(),
                          date_from=self.date_from.text().strip(), date_to=self.date_to.text().strip(),
                          modality=self.modality.currentText(), accession=self.accession.text())

    # -- jobs ----------------------------------------------------------------------------------------
    def _start(self, job, then, message: str) -> bool:
        if self.conn is None:
            return False
        if self.runner.busy:
            self._queued = (job, then, message)
            return True
        self._then = then
        self._say(message)
        started = self.runner.start(job)
        self._sync()
        return started

    def search(self) -> bool:
        from inference.pacs.query import find_studies

        conn, q = self.conn, self.query()
        return self._start(lambda progress, cancel: find_studies(conn, q, cancel), self._show_studies,
                           f"Searching {conn.name if conn else ''}…")

    def _study_selected(self) -> None:
        from inference.pacs.query import find_series

        row = self.study_table.currentRow()
        self.series_table.setRowCount(0)
        self.series = []
        if 0 <= row < len(self.studies):
            conn, uid = self.conn, self.studies[row].study_uid
            self._start(lambda progress, cancel: find_series(conn, uid, cancel), self._show_series, "Listing series…")
        self._sync()

    def retrieve(self) -> bool:
        from inference.pacs.retrieve import retrieve_series

        row = self.series_table.currentRow()
        if not 0 <= row < len(self.series):
            return False
        s, conn, cache = self.series[row], self.conn, self.cache_dir
        self.progress.setValue(0)
        self.progress.show()
        return self._start(lambda progress, cancel: retrieve_series(conn, s.study_uid, s.series_uid, cache,
                                                                    expected=s.n_instances, progress=progress,
                                                                    cancel=cancel),
                           self._retrieved, f"Retrieving {s.description or 'series'} ({s.n_instances or '?'} images)…")

    # -- outcomes ------------------------------------------------------------------------------------
    def _finished(self) -> None:
        queued, self._queued = self._queued, None
        if queued is not None:
            self._start(*queued)
        self._sync()

    def _succeeded(self, result) -> None:
        then, self._then = self._then, None
        if then is not None:
            then(result)

    def _failed(self, message: str) -> None:
        self._then = None
        self.progress.hide()
        self._say(message, bad=True)

    def _cancelled(self, message: str) -> None:
        self._then = None
        self.progress.hide()
        self._say("Retrieval cancelled; nothing was opened.")

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 100))
        self.status.setText(message)

    def _show_studies(self, studies: list[StudyRecord]) -> None:
        self.studies = studies
        t = self.study_table
        t.setRowCount(0)
        t.setRowCount(len(studies))
        for r, s in enumerate(studies):
            for c, v in enumerate((_date(s.study_date), _dicom_name(s.patient_name), s.patient_id, s.accession,
                                   "/".join(s.modalities), s.description, s.n_series, s.n_instances)):
                t.setItem(r, c, QTableWidgetItem("" if v is None else str(v)))
        self._say(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} found.")
        if studies:
            t.selectRow(0)

    def _show_series(self, series: list[SeriesRecord]) -> None:
        self.series = series
        t = self.series_table
        t.setRowCount(len(series))
        for r, s in enumerate(series):
            thick = f"{s.slice_thickness_mm:g} mm" if s.slice_thickness_mm is not None else ""
            for c, v in enumerate((s.number, s.modality, s.description, s.n_instances, thick)):
                item = QTableWidgetItem("" if v is None else str(v))
                if c in (0, 3):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                t.setItem(r, c, item)
        self._say(f"{len(series)} series. Choose one and Retrieve and open.")
        best = max(range(len(series)), key=lambda i: (series[i].modality == "CT", series[i].n_instances or 0), default=None)
        if best is not None:
            t.selectRow(best)

    def _retrieved(self, result) -> None:
        self.progress.hide()
        self.folder = result.folder
        how = "from the local cache" if result.from_cache else f"in {result.seconds:.1f} s"
        self._say(f"Retrieved {result.n_files} images {how}.")
        self.accept()

    def _say(self, text: str, bad: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(BAD_STYLE if bad else "")

    def _sync(self) -> None:
        busy = self.runner.busy
        self.search_button.setEnabled(not busy and self.conn is not None)
        self.retrieve_button.setEnabled(not busy and self.series_table.currentRow() >= 0)
        self.cancel_button.setEnabled(busy)

    def cancel(self) -> None:
        self._queued = None
        self.runner.cancel()

    def done(self, r: int) -> None:  # noqa: D401 (Qt)
        self._queued = None
        self.runner.shutdown()  # its thread must end before the dialog (a running QThread destroyed aborts)
        super().done(r)
