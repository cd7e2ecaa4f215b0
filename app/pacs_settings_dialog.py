"""Edit > Settings > PACS connections: the list of PACS the workstation talks to, each with its
form (DIMSE: host, port, AE titles, TLS; or a DICOMweb base URL; timeout; how to retrieve) and a
"Test connection" button (C-ECHO or a QIDO-RS probe on a worker thread) that says what failed:
refused, timeout, AE title rejected, ..."""
from __future__ import annotations


from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QListWidget, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from app.job_runner import JobRunner
from inference.pacs.connection import PacsConnection, connections_from_json, connections_to_json

PROTOCOL_NAMES = {"dimse": "DICOM (DIMSE)", "dicomweb": "DICOMweb"}
RETRIEVE_NAMES = {"get": "C-GET", "move": "C-MOVE (PACS sends to our storage port)", "wado": "WADO-RS"}
OK_STYLE, BAD_STYLE = "color: #8fd19e;", "color: #f08c7a;"


class PacsConnectionsDialog(QDialog):
    def __init__(self, connections_json: str, parent=None, runner=None):
        super().__init__(parent)
        self.setWindowTitle("PACS connections")
        self.resize(760, 0)
        self.connections = connections_from_json(connections_json)
        self.runner = runner or JobRunner("PACS test", self)
        self.runner.succeeded.connect(lambda r: self._show_result(r.message, True))
        self.runner.failed.connect(lambda msg: self._show_result(msg, False))
        self.list = QListWidget()
        self.list.setMaximumWidth(200)
        add, remove = QPushButton("Add"), QPushButton("Remove")
        add.clicked.connect(self.add)
        remove.clicked.connect(self.remove)
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        left.addLayout(row)

        self.name = QLineEdit()
        self.protocol = QComboBox()
        for k, v in PROTOCOL_NAMES.items():
            self.protocol.addItem(v, k)
        self.host = QLineEdit(placeholderText="pacs.hospital.local")
        self.port = QSpinBox(minimum=1, maximum=65535)
        self.called = QLineEdit(placeholderText="the PACS's AE title")
        self.calling = QLineEdit(placeholderText="this workstation's AE title")
        self.url = QLineEdit(placeholderText="https://pacs/dicom-web")
        self.tls = QCheckBox("TLS (DICOM over TLS, or https)")
        self.ca = QLineEdit(placeholderText="CA certificates file (default: the system's)")
        self.timeout = QDoubleSpinBox(minimum=0.5, maximum=600, decimals=1, suffix=" s")
        self.retrieve = QComboBox()
        for k, v in RETRIEVE_NAMES.items():
            self.retrieve.addItem(v, k)
        self.move_port = QSpinBox(minimum=1, maximum=65535)
        self.test = QPushButton("Test connection")
        self.test.clicked.connect(self.test_connection)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.form = QFormLayout()
        for label, w in (("Name", self.name), ("Protocol", self.protocol), ("Host", self.host), ("Port", self.port),
                         ("Called AE title", self.called), ("Calling AE title", self.calling),
                         ("DICOMweb URL", self.url), ("", self.tls), ("CA file", self.ca), ("Timeout", self.timeout),
                         ("Retrieve with", self.retrieve), ("C-MOVE storage port", self.move_port)):
            self.form.addRow(label, w)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test)
        test_row.addStretch(1)
        self.form.addRow("", test_row)
        self.result.setMinimumHeight(48)
        self.result.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.form.addRow(self.result)
        self.editor = QWidget()
        self.editor.setLayout(self.form)

        body = QHBoxLayout()
        body.addLayout(left)
        body.addWidget(self.editor, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(body)
        lay.addWidget(buttons)
        self._current = -1
        self.list.currentRowChanged.connect(self._select)
        for w in (self.name, self.host, self.called, self.calling, self.url, self.ca):
            w.textEdited.connect(self._store)
        for w in (self.port, self.move_port):
            w.valueChanged.connect(self._store)
        self.timeout.valueChanged.connect(self._store)
        self.tls.toggled.connect(self._store)
        self.protocol.currentIndexChanged.connect(self._store)
        self.retrieve.currentIndexChanged.connect(self._store)
        self._fill_list()

    def _fill_list(self, row: int = 0) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for c in self.connections:
            self.list.addItem(c.name)
        self.list.blockSignals(False)
        self.editor.setEnabled(bool(self.connections))
        if self.connections:
            self.list.setCurrentRow(min(row, len(self.connections) - 1))
            self._select(self.list.currentRow())

    def _select(self, row: int) -> None:
        self._current = row
        if not 0 <= row < len(self.connections):
            return
        c = self.connections[row]
        widgets = (self.name, self.host, self.called, self.calling, self.url, self.ca, self.port, self.move_port,
                   self.timeout, self.tls, self.protocol, self.retrieve)
        for w in widgets:
            w.blockSignals(True)
        self.name.setText(c.name)
        self.host.setText(c.host)
        self.port.setValue(int(c.port))
        self.called.setText(c.called_ae)
        self.calling.setText(c.calling_ae)
        self.url.setText(c.dicomweb_url)
        self.tls.setChecked(c.tls)
        self.ca.setText(c.tls_ca_file)
        self.timeout.setValue(float(c.timeout_s))
        self.protocol.setCurrentIndex(self.protocol.findData(c.protocol))
        self.retrieve.setCurrentIndex(self.retrieve.findData(c.retrieve))
        self.move_port.setValue(int(c.move_port))
        for w in widgets:
            w.blockSignals(False)
        self.result.setText("")
        self._sync_fields()

    def _store(self, *_) -> None:
        if not 0 <= self._current < len(self.connections):
            return
        c = self.edited()
        self.connections[self._current] = c
        self.list.item(self._current).setText(c.name)
        self._sync_fields()

    def _sync_fields(self) -> None:
        web = self.protocol.currentData() == "dicomweb"
        for w in (self.host, self.port, self.called, self.calling, self.move_port):
            w.setEnabled(not web)
        self.move_port.setEnabled(not web and self.retrieve.currentData() == "move")
        problems = self.edited().problems()
        if not self.runner.busy:  # an edit makes the last test result stale
            self.result.setText("; ".join(problems))
            self.result.setStyleSheet(BAD_STYLE if problems else "")

    def edited(self) -> PacsConnection:
        web = self.protocol.currentData() == "dicomweb"
        return PacsConnection(
            name=self.name.text().strip(), protocol=self.protocol.currentData(), host=self.host.text().strip(),
            port=self.port.value(), called_ae=self.called.text().strip(), calling_ae=self.calling.text().strip(),
            dicomweb_url=self.url.text().strip(), tls=self.tls.isChecked(), tls_ca_file=self.ca.text().strip(),
            timeout_s=self.timeout.value(), retrieve="wado" if web else self.retrieve.currentData(),
            move_port=self.move_port.value())

    def add(self) -> None:
        names = {c.name for c in self.connections}
        n = 1
        while f"PACS {n}" in names:
            n += 1
        self.connections.append(PacsConnection(name=f"PACS {n}", port=104))
        self._fill_list(len(self.connections) - 1)

    def remove(self) -> None:
        if 0 <= self._current < len(self.connections):
            del self.connections[self._current]
            self._fill_list(max(self._current - 1, 0))

    def test_connection(self) -> None:
        from inference.pacs.dimse import echo

        conn = self.edited()
        self.result.setStyleSheet("")
        self.result.setText(f"Testing {conn.where()}…")
        self.test.setEnabled(False)
        self.runner.finished.connect(self._tested)
        self.runner.start(lambda progress, cancel: echo(conn))

    def _tested(self) -> None:
        self.runner.finished.disconnect(self._tested)
        self.test.setEnabled(True)

    def _show_result(self, message: str, ok: bool) -> None:
        self.result.setText(("✔ " if ok else "✘ ") + message)
        self.result.setStyleSheet(OK_STYLE if ok else BAD_STYLE)

    def connections_json(self) -> str:
        return connections_to_json(self.connections)

    def done(self, r: int) -> None:  # noqa: D401 (Qt)
        self.runner.shutdown()  # its thread must end before the dialog (a running QThread destroyed aborts)
        super().done(r)
