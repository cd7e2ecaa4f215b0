"""A DICOM case through the workstation: the banner names the patient, the analysis runs, and
the Export writes DICOM SEG + SR beside HTML/PDF; the de-identify option removes the patient's
identifiers from every file and renders the key images instead of using screenshots."""
from __future__ import annotations

import json
import sys

import pytest

from gui_helpers import REPO
from workstation_helpers import wait_idle

sys.path.insert(0, str(REPO / "tests"))  # report_fixtures, dicom_factory


@pytest.fixture(scope="module")
def dicom_ws(qapp, workstation_model, tmp_path_factory):
    import nibabel as nib
    from PySide6.QtTest import QTest

    from app.main_window import MainWindow
    from app.settings import AppSettings
    from report_fixtures import synthetic_arrays, write_dicom_case

    root = tmp_path_factory.mktemp("dicom_case")
    series = write_dicom_case(root)
    _, organs, _, affine = synthetic_arrays()
    nib.save(nib.Nifti1Image(organs, affine), root / "organs.nii.gz")  # ids 1, 3, 5, 7 read alike in both schemes
    win = MainWindow(settings=AppSettings(model_dir=str(workstation_model), max_new_tokens=16, max_rounds=3))
    win.resize(1500, 900)
    win.show()
    assert QTest.qWaitForWindowExposed(win, 10000)
    win.open_path(series, root / "organs.nii.gz")
    wait_idle(win)
    assert win.last_error is None, win.last_error
    yield win
    win.close()


def _all_bytes(folder) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.mark.slow
def test_dicom_case_exports_seg_and_sr_and_deidentifies(dicom_ws, tmp_path):
    import pydicom

    from app import dialog_flows
    from app.export_dialog import ExportChoice, ExportDialog
    from report_fixtures import PATIENT

    win, c = dicom_ws, dicom_ws.controller
    assert "Doeberg, Janetta" in win.banner.text() and PATIENT["id"] in win.banner.text()
    assert c.analyze("tnm", "pancreas")
    wait_idle(win)
    assert win.last_error is None and len(c.run.rounds) >= 2
    for key in c.review.keys:
        assert c.decide(key, "agreed")
    assert c.sign("Dr Dicom Reader")
    from inference.report.dicom_source import has_dicom_source

    assert has_dicom_source(c.ct)
    dlg = ExportDialog(tmp_path, None, False)  # what export_report opens for a DICOM case
    assert dlg.boxes["dicom"].isEnabled() and dlg.boxes["dicom"].isChecked()

    out = tmp_path / "identified"
    assert dialog_flows.export_report(win, ExportChoice(out, ["json", "html", "pdf", "dicom"], False, True))
    wait_idle(win)
    assert win.last_error is None, win.last_error
    seg, sr = pydicom.dcmread(out / "seg_organs.dcm"), pydicom.dcmread(out / "sr.dcm")
    assert seg.Modality == "SEG" and sr.Modality == "SR"
    assert str(sr.PatientName) == PATIENT["name"] and sr.PatientID == PATIENT["id"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == c.ct.series_uid
    report = json.loads((out / "report.json").read_text())
    assert {r["key_image"]["source"] for r in report["rounds"]} == {"screenshot"}

    anon = tmp_path / "deidentified"
    assert dialog_flows.export_report(win, ExportChoice(anon, ["json", "html", "pdf", "dicom"], True, True))
    wait_idle(win)
    assert win.last_error is None, win.last_error
    assert {p.name for p in anon.iterdir()} >= {"seg_organs.dcm", "sr.dcm", "report.html", "report.pdf", "run.json"}
    blob = _all_bytes(anon)
    for ident in (PATIENT["id"], "Doeberg", "Janetta", PATIENT["birth"]):
        assert ident.encode() not in blob, f"{ident} left in a de-identified export"
    report = json.loads((anon / "report.json").read_text())
    assert {r["key_image"]["source"] for r in report["rounds"]} == {"rendered"}  # no screenshots
    assert pydicom.dcmread(anon / "sr.dcm").PatientIdentityRemoved == "YES"
