"""inference/pacs against a real Orthanc on 127.0.0.1 (started here with its own configuration and
storage): C-ECHO and why it fails, C-FIND and QIDO-RS, retrieval by C-GET / C-MOVE / WADO-RS into a
verified cache, the on-disk send queue, and a network that is down, slow, refusing or cut mid-transfer.
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.ct_io import load_ct
from inference.errors import Cancelled
from inference.pacs import (PacsConnection, PacsError, SendQueue, StudyQuery, cached_series, echo, find_series,
                            find_studies, retrieve_series)
from inference.pacs.privacy import set_debug
from orthanc_server import ORTHANC, SKIP_REASON, Orthanc, Proxy, free_port
from report_fixtures import PATIENT, write_dicom_case

pytestmark = pytest.mark.skipif(ORTHANC is None, reason=SKIP_REASON)
ROOT = Path(__file__).resolve().parents[1]
OUR_AE = "TCWS"


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    move_port = free_port()
    with Orthanc(tmp_path_factory.mktemp("orthanc"), modalities={OUR_AE: move_port}) as server:
        server.move_port = move_port
        case = write_dicom_case(tmp_path_factory.mktemp("case"))
        server.case_files = sorted(case.iterdir())
        server.upload(server.case_files)
        from dicom_factory import phantom, write_series  # a second patient, another date, modality OT
        other = tmp_path_factory.mktemp("other")
        write_series(other, phantom((16, 16, 6)), np.diag([1.0, 1.0, 2.0, 1.0]), modality="OT",
                     extra={"PatientName": "Other^Olaf", "PatientID": "PID-2",
                            "AccessionNumber": "ACC9", "StudyInstanceUID": pydicom.uid.generate_uid()})
        for f in other.iterdir():  # another date (the factory fixes StudyDate)
            ds = pydicom.dcmread(f)
            ds.StudyDate = "20230505"
            ds.save_as(f)
        server.upload(sorted(other.iterdir()))
        yield server


@pytest.fixture
def conn(pacs):
    return PacsConnection(name="test PACS", host="127.0.0.1", port=pacs.dicom_port, called_ae=pacs.aet,
                          calling_ae=OUR_AE, timeout_s=5, move_port=pacs.move_port, move_bind="127.0.0.1",
                          dicomweb_url=pacs.dicomweb_url)


def _study(conn):
    (study,) = find_studies(conn, StudyQuery(patient_id=PATIENT["id"]))
    (series,) = find_series(conn, study.study_uid)
    return study, series


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# -- C-ECHO and why it fails ---------------------------------------------------------------------------------

def test_echo_ok_over_dimse_and_dicomweb(conn):
    assert echo(conn).ok
    assert echo(replace(conn, protocol="dicomweb", retrieve="wado")).ok


def test_echo_says_refused_timeout_and_which_ae_title_was_rejected(conn):
    with pytest.raises(PacsError) as e:
        echo(replace(conn, port=free_port()))
    assert e.value.kind == "refused" and "connection refused" in str(e.value)
    stall = Proxy(conn.port, stall=True)  # accepts the connection, never answers
    try:
        t0 = time.monotonic()
        with pytest.raises(PacsError) as e:
            echo(replace(conn, port=stall.port, timeout_s=1.0))
        assert e.value.kind == "timeout" and "within 1 s" in str(e.value)
        assert time.monotonic() - t0 < 8
    finally:
        stall.close()
    with pytest.raises(PacsError) as e:
        echo(replace(conn, called_ae="NOTORTHANC"))
    assert e.value.kind == "rejected" and "Called AE title not recognised" in str(e.value)
    assert "'NOTORTHANC'" in str(e.value)
    with pytest.raises(PacsError) as e:
        echo(replace(conn, calling_ae="STRANGER"))
    assert e.value.kind == "rejected" and "Calling AE title not recognised" in str(e.value)
    with pytest.raises(PacsError) as e:
        echo(replace(conn, protocol="dicomweb", retrieve="wado", dicomweb_url=f"http://127.0.0.1:{free_port()}/dicom-web"))
    assert e.value.kind == "refused"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl (to make a test certificate) is not installed")
def test_dicom_over_tls_with_the_ca_file_and_a_clear_error_without(tmp_path):
    from orthanc_server import self_signed_certificate

    cert, key = self_signed_certificate(tmp_path)
    with Orthanc(tmp_path / "orthanc", modalities={OUR_AE: free_port()}, tls=(cert, key)) as server:
        c = PacsConnection(name="tls", host="127.0.0.1", port=server.dicom_port, called_ae=server.aet,
                           calling_ae=OUR_AE, timeout_s=5, tls=True, tls_ca_file=str(cert))
        assert echo(c).ok
        with pytest.raises(PacsError) as e:
            echo(replace(c, tls_ca_file=""))  # the system's CAs do not know this certificate
        assert e.value.kind == "tls" and "not trusted" in str(e.value)
        with pytest.raises(PacsError) as e:
            echo(replace(c, tls=False))  # plain DICOM to a TLS port
        assert e.value.kind in ("aborted", "timeout")


def test_a_bad_configuration_is_named_before_any_network(conn):
    with pytest.raises(PacsError) as e:
        echo(replace(conn, called_ae="A" * 17, port=0))
    assert e.value.kind == "config" and "called AE title" in str(e.value) and "port 0" in str(e.value)


# -- C-FIND and QIDO-RS ----------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_find_studies_by_each_key_and_series_with_count_and_thickness(conn, protocol):
    c = replace(conn, protocol=protocol, retrieve="wado") if protocol == "dicomweb" else conn
    ids = lambda q: sorted(s.patient_id for s in find_studies(c, q))  # noqa: E731
    assert ids(StudyQuery()) == ["PID-2", PATIENT["id"]]
    assert ids(StudyQuery(patient_name="Doeb")) == [PATIENT["id"]]  # a prefix matches
    assert ids(StudyQuery(patient_id="PID-2")) == ["PID-2"]
    assert ids(StudyQuery(date_from="20240101", date_to="20241231")) == [PATIENT["id"]]
    assert ids(StudyQuery(date_to="20231231")) == ["PID-2"]
    assert ids(StudyQuery(modality="CT")) == [PATIENT["id"]]
    assert ids(StudyQuery(accession="ACC9")) == ["PID-2"]
    assert ids(StudyQuery(patient_name="Nobody")) == []
    (study,) = find_studies(c, StudyQuery(patient_id=PATIENT["id"]))
    assert (study.patient_name, study.accession, study.study_date, study.modalities) == (PATIENT["name"], "ACC5566", "20240102", ["CT"])
    (series,) = find_series(c, study.study_uid)
    assert (series.description, series.modality, series.n_instances) == ("synthetic CT", "CT", 24)
    if protocol == "dimse":
        assert series.slice_thickness_mm == 5.0  # the image-level answer: thicker than the 3 mm spacing


# -- retrieval -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["get", "move", "wado"])
def test_retrieve_gives_the_complete_series_that_loads_as_the_original(conn, pacs, method, tmp_path):
    c = replace(conn, retrieve=method)
    study, series = _study(c)
    seen = []
    got = retrieve_series(c, study.study_uid, series.series_uid, tmp_path / "cache", progress=lambda f, m: seen.append(f))
    assert got.n_files == 24 and got.folder == tmp_path / "cache" / series.series_uid and not got.from_cache
    assert seen[-1] == 1.0 and seen == sorted(seen)
    assert _leftovers(tmp_path / "cache") == [series.series_uid]  # no staging folder left
    manifest = json.loads((got.folder / "retrieval.json").read_text())
    assert manifest["n_files"] == 24 and manifest["method"] == method
    original, copy = load_ct(pacs.case_files[0].parent), load_ct(got.folder)
    assert np.array_equal(original.hu, copy.hu) and np.allclose(original.affine, copy.affine)
    assert copy.study.sop_instance_uids == original.study.sop_instance_uids
    again = retrieve_series(c, study.study_uid, series.series_uid, tmp_path / "cache")
    assert again.from_cache and again.folder == got.folder


def test_cancel_during_retrieval_leaves_no_case(conn, tmp_path):
    study, series = _study(conn)
    cancel = threading.Event()

    def progress(f, m):
        if f > 0.2:
            cancel.set()
    with pytest.raises(Cancelled):
        retrieve_series(conn, study.study_uid, series.series_uid, tmp_path, progress=progress, cancel=cancel)
    assert _leftovers(tmp_path) == [] and cached_series(tmp_path, series.series_uid) is None


def test_a_connection_cut_mid_transfer_leaves_no_case(conn, tmp_path):
    study, series = _study(conn)
    cut = Proxy(conn.port, cut_after=60_000)  # about a third of the series, then the stream is cut
    try:
        with pytest.raises(PacsError) as e:
            retrieve_series(replace(conn, port=cut.port, timeout_s=3), study.study_uid, series.series_uid, tmp_path,
                            expected=24)
    finally:
        cut.close()
    assert cut.cut.is_set()
    assert e.value.kind in ("aborted", "timeout", "incomplete"), e.value
    assert "C-GET" in str(e.value) or "images" in str(e.value)
    assert _leftovers(tmp_path) == []


def test_a_slow_pacs_times_out_with_the_timeout_named(conn):
    stall = Proxy(conn.port, stall=True)
    try:
        with pytest.raises(PacsError) as e:
            find_studies(replace(conn, port=stall.port, timeout_s=1.5), StudyQuery())
    finally:
        stall.close()
    assert e.value.kind == "timeout" and "1.5 s" in str(e.value)


def test_orthanc_killed_during_a_c_get_leaves_no_case(tmp_path):
    """A PACS process that dies mid-transfer: the error says the connection was dropped, nothing
    reaches the cache, and the next retrieval from a restarted PACS is complete."""
    from dicom_factory import phantom, write_series

    series_dir = tmp_path / "big"
    hu = np.tile(phantom((128, 128, 1)), (1, 1, 60))
    write_series(series_dir, hu, np.diag([1.0, 1.0, 2.0, 1.0]), extra={"PatientID": "KILL"})
    server = Orthanc(tmp_path / "orthanc", modalities={OUR_AE: free_port()}).start()
    try:
        server.upload(sorted(series_dir.iterdir()))
        c = PacsConnection(name="dying", host="127.0.0.1", port=server.dicom_port, called_ae="ORTHANC",
                           calling_ae=OUR_AE, timeout_s=3)
        (study,) = find_studies(c, StudyQuery(patient_id="KILL"))
        (series,) = find_series(c, study.study_uid)
        killed = []

        def progress(f, m):
            if f > 0.2 and not killed:
                killed.append(f)
                server.kill()
        with pytest.raises(PacsError) as e:
            retrieve_series(c, study.study_uid, series.series_uid, tmp_path / "cache", progress=progress)
        assert killed and e.value.kind in ("aborted", "timeout", "incomplete")
        assert _leftovers(tmp_path / "cache") == []
    finally:
        server.stop()


# -- the send queue ----------------------------------------------------------------------------------------

def test_a_failed_send_stays_queued_on_disk_and_goes_when_the_pacs_answers(conn, pacs, tmp_path):
    from dicom_factory import phantom, write_series

    files = write_series(tmp_path / "send", phantom((8, 8, 3)), np.eye(4), extra={"PatientID": "QUEUE"}, shuffle=False)
    queue = SendQueue(tmp_path / "queue")
    items = queue.enqueue(files, conn.name, ["slice 1", "slice 2", "slice 3"])
    down = replace(conn, port=free_port())
    report = queue.process(down)
    assert len(report.failed) == 3 and all("connection refused" in r.message for r in report.results)
    left = SendQueue(tmp_path / "queue").pending()  # a new queue object: it is on disk
    assert [i.id for i in left] == [i.id for i in items] and all(i.attempts == 1 for i in left)
    assert all(i.next_attempt > time.time() + 20 for i in left)  # retried later, not in a busy loop
    assert queue.due(conn.name) == [] and queue.process(conn).results == []
    rejected = queue.process(replace(conn, called_ae="WRONG"), force=True)
    assert all(not r.ok and "rejected" in r.message for r in rejected.results)
    assert all(i.attempts == 2 for i in queue.pending())
    report = queue.process(conn, force=True)
    assert [r.ok for r in report.results] == [True, True, True] and queue.pending() == []
    assert {i.sop_instance_uid for i in queue.sent()} == {pydicom.dcmread(f).SOPInstanceUID for f in files}
    stored = pacs.rest("/tools/lookup", items[0].sop_instance_uid.encode(), method="POST")
    assert stored and stored[0]["Type"] == "Instance"  # Orthanc has it


def test_a_send_cut_mid_object_keeps_the_unacknowledged_objects(conn, pacs, tmp_path):
    from dicom_factory import phantom, write_series

    hu = np.tile(phantom((256, 256, 1)), (1, 1, 3))
    files = write_series(tmp_path / "s", hu, np.eye(4), extra={"PatientID": "CUTSEND"}, shuffle=False)
    queue = SendQueue(tmp_path / "queue")
    items = queue.enqueue(files, conn.name, ["first", "second", "third"])
    cut = Proxy(conn.port, cut_after=200_000, upstream=True)  # ~1.5 of the three 131 kB objects
    try:
        report = queue.process(replace(conn, port=cut.port, timeout_s=3))
    finally:
        cut.close()
    assert cut.cut.is_set()
    assert [r.ok for r in report.results] == [True, False, False], [r.message for r in report.results]
    assert all(("dropped" in r.message or "no answer" in r.message) for r in report.failed)
    assert [i.id for i in queue.pending()] == [i.id for i in items[1:]]
    again = queue.process(conn, force=True)
    assert [r.ok for r in again.results] == [True, True] and queue.pending() == []
    (study,) = find_studies(conn, StudyQuery(patient_id="CUTSEND"))
    assert find_series(conn, study.study_uid)[0].n_instances == 3  # each object once in the PACS


def test_send_over_stow_rs(conn, pacs, tmp_path):
    from dicom_factory import phantom, write_series

    files = write_series(tmp_path / "s", phantom((8, 8, 2)), np.eye(4), extra={"PatientID": "STOW"})
    queue = SendQueue(tmp_path / "queue")
    queue.enqueue(files, "web")
    report = queue.process(replace(conn, name="web", protocol="dicomweb", retrieve="wado"))
    assert [r.ok for r in report.results] == [True, True] and queue.pending() == []
    assert find_studies(conn, StudyQuery(patient_id="STOW"))


# -- privacy ------------------------------------------------------------------------------------------------

def test_no_patient_data_in_the_log_unless_debugging(conn, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    study, series = _study(conn)
    retrieve_series(conn, study.study_uid, series.series_uid, tmp_path / "a")
    secrets = [PATIENT["name"], "Doeberg", PATIENT["id"], PATIENT["birth"], "ACC5566"]
    assert caplog.records and not [s for s in secrets if s in caplog.text]
    caplog.clear()
    set_debug(True)
    try:
        find_studies(conn, StudyQuery(patient_id=PATIENT["id"]))
    finally:
        set_debug(False)
    assert PATIENT["id"] in caplog.text  # the same search does log it when debugging: the check can fail


# -- the command line -----------------------------------------------------------------------------------------

def _cli(*args):
    import os
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "inference.cli", "pacs", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)


def test_cli_echo_find_get_send(conn, pacs, tmp_path):
    where = ["--host", "127.0.0.1", "--port", str(conn.port), "--called-ae", pacs.aet, "--calling-ae", OUR_AE,
             "--timeout", "5"]
    p = _cli("echo", *where)
    assert p.returncode == 0 and "connection OK" in p.stdout, p.stderr
    p = _cli("echo", "--host", "127.0.0.1", "--port", str(free_port()), "--called-ae", "X")
    assert p.returncode == 1 and "refused:" in p.stderr
    p = _cli("find", *where, "--patient-id", PATIENT["id"], "--json")
    assert p.returncode == 0, p.stderr
    (study,) = json.loads(p.stdout)
    p = _cli("find", *where, "--study", study["study_uid"])
    assert "synthetic CT" in p.stdout and "24" in p.stdout and " 5 " in p.stdout, p.stdout
    series = find_series(conn, study["study_uid"])[0].series_uid
    p = _cli("get", *where, "--study", study["study_uid"], "--series", series, "--cache", str(tmp_path / "c"))
    assert p.returncode == 0 and "24 images" in p.stdout, p.stderr
    conns = tmp_path / "pacs.json"
    conns.write_text(json.dumps([conn.to_dict()]))
    p = _cli("send", "--connections", str(conns), "--pacs", conn.name, "--queue", str(tmp_path / "q"),
             str(pacs.case_files[0]))
    assert p.returncode == 0 and "1 of 1 object(s) acknowledged" in p.stdout, p.stdout + p.stderr
    p = _cli("send", *where[:2], "--port", str(free_port()), "--called-ae", "X", "--queue", str(tmp_path / "q2"),
             str(pacs.case_files[0]))
    assert p.returncode == 1 and "FAILED" in p.stdout and "1 in the queue" in p.stdout


def test_a_wado_rs_stream_cut_mid_transfer_leaves_no_case(conn, pacs, tmp_path):
    study, series = _study(conn)
    cut = Proxy(pacs.http_port, cut_after=60_000)
    try:
        web = replace(conn, protocol="dicomweb", retrieve="wado", timeout_s=3,
                      dicomweb_url=f"http://127.0.0.1:{cut.port}/dicom-web")
        with pytest.raises(PacsError) as e:
            retrieve_series(web, study.study_uid, series.series_uid, tmp_path, expected=24)
    finally:
        cut.close()
    assert cut.cut.is_set()
    assert e.value.kind in ("aborted", "timeout", "incomplete"), e.value
    assert _leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def enhanced_pacs(tmp_path_factory):
    """An Orthanc holding one CT as a single Legacy Converted Enhanced CT image (its 8 slices as frames)."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    from dicom_factory import phantom, write_series

    move_port = free_port()
    classic = tmp_path_factory.mktemp("classic")
    write_series(classic, phantom((24, 20, 8)), np.diag([1.5, 1.5, 3.0, 1.0]),
                 extra={"PatientName": "Frame^Fiona", "PatientID": "PID-E", "StudyInstanceUID": pydicom.uid.generate_uid()})
    mf = LegacyConvertedEnhancedCTImage([pydicom.dcmread(p) for p in sorted(classic.iterdir())],
                                        series_instance_uid=pydicom.uid.generate_uid(), series_number=2,
                                        sop_instance_uid=pydicom.uid.generate_uid(), instance_number=1)
    path = tmp_path_factory.mktemp("enhanced") / "ct.dcm"
    mf.save_as(path, enforce_file_format=True)
    with Orthanc(tmp_path_factory.mktemp("orthanc_mf"), modalities={OUR_AE: move_port}) as server:
        server.move_port, server.classic = move_port, classic
        server.upload([path])
        yield server


@pytest.mark.parametrize("method", ["get", "move", "wado"])
def test_an_enhanced_multi_frame_ct_is_retrieved_and_loads(enhanced_pacs, method, tmp_path):
    c = PacsConnection(name="mf PACS", host="127.0.0.1", port=enhanced_pacs.dicom_port, called_ae=enhanced_pacs.aet,
                       calling_ae=OUR_AE, timeout_s=5, move_port=enhanced_pacs.move_port, move_bind="127.0.0.1",
                       dicomweb_url=enhanced_pacs.dicomweb_url, retrieve=method)
    (study,) = find_studies(c, StudyQuery(patient_id="PID-E"))
    (series,) = find_series(c, study.study_uid)
    got = retrieve_series(c, study.study_uid, series.series_uid, tmp_path / "cache")
    assert got.n_files == 1  # C-GET needs the Legacy Converted Enhanced CT storage context to receive it
    original, copy = load_ct(enhanced_pacs.classic), load_ct(got.folder)
    assert np.array_equal(original.hu, copy.hu) and np.allclose(original.affine, copy.affine, atol=1e-4)
