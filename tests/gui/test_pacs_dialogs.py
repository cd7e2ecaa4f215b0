"""The PACS dialogs against a real Orthanc on loopback: Settings > PACS connections tests a connection
and says what failed; File > Open from PACS searches, lists series with count and thickness,
retrieves on a worker and opens the series in the window; after sign-off, Send to PACS sends the SEG
and both SRs with a result per object, and a PACS that is down leaves them in the queue."""
from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pytest

from gui_helpers import REPO
from workstation_helpers import own_profile, wait_idle

sys.path.insert(0, str(REPO / "tests"))  # orthanc_server, report_fixtures
from orthanc_server import ORTHANC, SKIP_REASON, Orthanc, free_port  # noqa: E402

pytestmark = pytest.mark.skipif(ORTHANC is None, reason=SKIP_REASON)
SHOTS = REPO / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    from report_fixtures import write_dicom_case

    with Orthanc(tmp_path_factory.mktemp("orthanc"), modalities={"TCWS": free_port()}) as server:
        server.upload(sorted(write_dicom_case(tmp_path_factory.mktemp("case")).iterdir()))
        yield server


@pytest.fixture
def conn(pacs):
    from inference.pacs import PacsConnection

    return PacsConnection(name="Orthanc (test)", host="127.0.0.1", port=pacs.dicom_port, called_ae=pacs.aet,
                          calling_ae="TCWS", timeout_s=5)


def _shot(widget, name):
    from PySide6.QtCore import QCoreApplication

    QCoreApplication.processEvents()
    SHOTS.mkdir(parents=True, exist_ok=True)
    img = widget.grab().toImage()
    img.save(str(SHOTS / name))
    return img


def _has_colour(img, rgb, tol=40) -> int:
    """How many pixels of ``img`` are within ``tol`` of ``rgb``."""
    from PySide6.QtGui import QImage

    img = img.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    arr = arr[:, :img.width() * 3].reshape(img.height(), img.width(), 3).astype(int)
    return int((np.abs(arr - np.array(rgb)).max(axis=2) < tol).sum())


def _wait(qtbot, runner, timeout=60000):
    qtbot.waitUntil(lambda: not runner.busy, timeout=timeout)


def test_test_connection_says_ok_or_what_failed(qtbot, conn, tmp_path):
    from app.pacs_settings_dialog import PacsConnectionsDialog
    from inference.pacs import connections_to_json

    dlg = PacsConnectionsDialog(connections_to_json([conn, replace(conn, name="Wrong AE", called_ae="NOTORTHANC")]))
    dlg.show()
    qtbot.waitExposed(dlg)
    dlg.test.click()
    qtbot.waitUntil(lambda: "connection OK" in dlg.result.text(), timeout=30000)
    assert _has_colour(_shot(dlg.result, "pacs_test_ok.png"), (0x8f, 0xd1, 0x9e)) > 20  # the green OK text
    dlg.list.setCurrentRow(1)
    assert dlg.called.text() == "NOTORTHANC"
    dlg.test.click()
    qtbot.waitUntil(lambda: "rejected" in dlg.result.text(), timeout=30000)
    assert "Called AE title not recognised" in dlg.result.text()
    img = _shot(dlg, "pacs_connections.png")
    assert _has_colour(dlg.result.grab().toImage(), (0xf0, 0x8c, 0x7a)) > 20  # red
    assert img.width() > 600
    dlg.port.setValue(free_port())
    dlg.called.setText("ORTHANC")
    dlg._store()
    dlg.test.click()
    qtbot.waitUntil(lambda: "refused" in dlg.result.text(), timeout=30000)
    dlg.called.setText("A" * 17)  # an AE title too long: named before any test
    dlg.called.textEdited.emit(dlg.called.text())
    assert "called AE title" in dlg.result.text()
    # the edited list is what Settings keeps
    from inference.pacs import connections_from_json
    names = [c.name for c in connections_from_json(dlg.connections_json())]
    assert names == ["Orthanc (test)", "Wrong AE"]
    dlg.accept()
    from app.settings import AppSettings, load_settings, save_settings
    from app.settings_dialog import SettingsDialog

    sd = SettingsDialog(AppSettings(), check_gpu=False)
    sd.pacs_json = dlg.connections_json()
    sd._show_pacs()
    assert sd.pacs_note.text() == "Orthanc (test), Wrong AE"
    with own_profile(tmp_path / "profile"):  # kept by QSettings (ini) and read back unchanged
        save_settings(sd.settings())
        assert connections_from_json(load_settings().pacs_connections) == connections_from_json(dlg.connections_json())


def test_open_from_pacs_searches_retrieves_and_opens_the_series(qtbot, conn, tmp_path):
    from app import pacs_flows
    from app.main_window import MainWindow
    from app.pacs_browser_dialog import OpenFromPacsDialog
    from app.settings import AppSettings
    from inference.pacs import connections_to_json
    from report_fixtures import PATIENT

    with own_profile(tmp_path / "profile"):
        win = MainWindow(settings=AppSettings(pacs_connections=connections_to_json([conn])))
        win.show()
        dlg = OpenFromPacsDialog([replace(conn, name="Down", port=free_port()), conn], pacs_flows.cache_dir(), win)
        dlg.show()
        qtbot.waitExposed(dlg)
        dlg.search_button.click()  # the first connection: nobody listens there
        qtbot.waitUntil(lambda: "refused" in dlg.status.text(), timeout=30000)
        dlg.connection.setCurrentIndex(1)
        dlg.patient_name.setText("Doeb")
        dlg.modality.setCurrentText("CT")
        dlg.search_button.click()
        qtbot.waitUntil(lambda: dlg.series_table.rowCount() == 1 and not dlg.runner.busy, timeout=60000)
        assert dlg.study_table.rowCount() == 1 and dlg.study_table.item(0, 2).text() == PATIENT["id"]
        assert dlg.study_table.item(0, 1).text() == "Doeberg, Janetta"
        row = [dlg.series_table.item(0, c).text() for c in range(5)]
        assert row == ["3", "CT", "synthetic CT", "24", "5 mm"]
        img = _shot(dlg, "pacs_open_dialog.png")
        assert img.width() >= 1000
        assert dlg.retrieve_button.isEnabled()
        dlg.retrieve_button.click()
        qtbot.waitUntil(lambda: dlg.folder is not None, timeout=60000)
        assert (dlg.folder / "retrieval.json").is_file() and len(list(dlg.folder.glob("*.dcm"))) == 24
        assert pacs_flows.open_from_pacs(win, dialog=dlg)
        wait_idle(win)
        assert win.last_error is None, win.last_error
        assert win.state.ct.shape[2] == 24 and PATIENT["id"] in win.banner.text()
        assert win.settings.pacs_default == conn.name
        win.close()


@pytest.mark.slow
def test_send_to_pacs_after_sign_off_gives_a_result_per_object(qtbot, qapp, workstation_model, conn, pacs, tmp_path):
    import nibabel as nib

    from app import pacs_flows
    from app.main_window import MainWindow
    from app.pacs_send_dialog import SendToPacsDialog
    from app.settings import AppSettings
    from inference.pacs import connections_to_json, find_series
    from report_fixtures import synthetic_arrays, write_dicom_case

    series = write_dicom_case(tmp_path / "case")
    _, organs, _, affine = synthetic_arrays()
    nib.save(nib.Nifti1Image(organs, affine), tmp_path / "organs.nii.gz")
    with own_profile(tmp_path / "profile"):
        win = MainWindow(settings=AppSettings(model_dir=str(workstation_model), max_new_tokens=8, max_rounds=2,
                                              pacs_connections=connections_to_json([conn])))
        win.show()
        win.open_path(series, tmp_path / "organs.nii.gz")
        wait_idle(win)
        c = win.controller
        assert c.analyze("tnm", "pancreas")
        wait_idle(win)
        assert "Sign off" in pacs_flows.send_problem(win)
        for key in c.review.keys:
            assert c.decide(key, "agreed")
        assert c.sign("Dr Pacs Reader")
        assert pacs_flows.send_problem(win) is None
        queue = pacs_flows.send_queue()
        down = SendToPacsDialog([replace(conn, name=conn.name, port=free_port())], queue, pacs_flows.objects_maker(win), win)
        down.show()
        down.send_button.click()
        _wait(qtbot, down.runner)
        assert down.report is not None and len(down.report.failed) == down.report.results.__len__() >= 3
        assert down.pending.rowCount() == len(down.report.results)  # kept in the queue, shown with the error
        assert "refused" in down.pending.item(0, 2).text()
        img = _shot(down, "pacs_send_failed_queue.png")
        assert _has_colour(img, (0xf0, 0x8c, 0x7a)) > 20  # the failures in red
        down.reject()
        dlg = SendToPacsDialog([conn], queue, pacs_flows.objects_maker(win), win)
        dlg.show()
        qtbot.waitExposed(dlg)
        assert dlg.pending.rowCount() >= 3 and dlg.retry_button.isEnabled()
        dlg.send_button.click()  # this send, then the queued ones by "Retry queued now"
        _wait(qtbot, dlg.runner)
        assert dlg.report is not None and not dlg.report.failed
        results = [dlg.results.item(r, 1).text() for r in range(dlg.results.rowCount())]
        assert results and all(t.startswith("✔") for t in results)
        dlg.retry_button.click()
        _wait(qtbot, dlg.runner)
        assert dlg.pending.rowCount() == 0 and queue.pending() == []
        _shot(dlg, "pacs_send_dialog.png")
        dlg.accept()
        # two exports went (the one first queued while the PACS was down, then this one): each has
        # its own SEG series and two SR series, in the CT's study
        mods = sorted(s.modality for s in find_series(conn, c.ct.study.study_instance_uid))
        assert mods == ["SEG", "SEG", "SR", "SR", "SR", "SR"], mods
        win.close()
