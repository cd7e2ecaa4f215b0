"""inference/pacs without a server: connection settings and their checks, the query's date range,
and the send queue's refusals and bookkeeping (what the Orthanc tests do not need a PACS for)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from inference.errors import InputError
from inference.pacs import PacsConnection, PacsError, SendQueue, StudyQuery, connections_from_json, connections_to_json


def test_connection_problems_are_named_and_the_list_round_trips_through_json():
    ok = PacsConnection(name="Main", host="pacs", port=104, called_ae="PACS", calling_ae="TC")
    assert ok.problems() == [] and ok.checked() is ok
    bad = PacsConnection(name=" ", port=70000, called_ae="", calling_ae="X" * 17, retrieve="ftp", timeout_s=0)
    text = "; ".join(bad.problems())
    for part in ("no name", "port 70000", "called AE title ''", "calling AE title", "retrieve method 'ftp'", "timeout 0"):
        assert part in text, part
    with pytest.raises(PacsError) as e:
        bad.checked()
    assert e.value.kind == "config"
    web = PacsConnection(name="Web", protocol="dicomweb", retrieve="get", dicomweb_url="pacs/dicom-web")
    assert any("http://" in p for p in web.problems()) and any("WADO-RS" in p for p in web.problems())
    listed = [ok, PacsConnection(name="Web", protocol="dicomweb", retrieve="wado", dicomweb_url="https://p/dicom-web",
                                 tls_ca_file="/etc/ca.pem", timeout_s=2.5)]
    assert connections_from_json(connections_to_json(listed)) == listed
    assert connections_from_json("not json") == [] and connections_from_json('{"a": 1}') == []
    # a hand-edited entry: unknown keys ignored, strings coerced
    (c,) = connections_from_json(json.dumps([{"name": "X", "port": "4242", "tls": "true", "colour": "red"}]))
    assert (c.port, c.tls) == (4242, True)


def test_study_query_dates_and_name_patterns():
    assert StudyQuery(date_from="20240101", date_to="20241231").date_range() == "20240101-20241231"
    assert StudyQuery(date_from="20240101").date_range() == "20240101-"
    assert StudyQuery(date_to="20240101").date_range() == "-20240101"
    assert StudyQuery(date_from="20240101", date_to="20240101").date_range() == "20240101"
    with pytest.raises(PacsError) as e:
        StudyQuery(date_from="2024-01-01").date_range()
    assert "YYYYMMDD" in str(e.value)
    assert StudyQuery(patient_name="Doe").name_pattern() == "Doe*"
    assert StudyQuery(patient_name="Do?^J*").name_pattern() == "Do?^J*"
    assert StudyQuery().name_pattern() == ""


def test_the_queue_refuses_a_file_that_is_not_dicom_and_names_it(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(InputError) as e:
        SendQueue(tmp_path / "q").enqueue([junk], "PACS")
    assert "notes.txt" in str(e.value) and "not a readable DICOM object" in str(e.value)
    assert SendQueue(tmp_path / "q").pending() == []


def test_a_connection_that_cannot_work_fails_every_object_and_keeps_it(tmp_path):
    from dicom_factory import phantom, write_series

    files = write_series(tmp_path / "s", phantom((8, 8, 2)), np.eye(4))
    queue = SendQueue(tmp_path / "q")
    items = queue.enqueue(files, "bad")
    assert {p.name for p in (tmp_path / "q").iterdir()} == {f"{i.id}.{ext}" for i in items for ext in ("dcm", "json")}
    report = queue.process(PacsConnection(name="bad", called_ae=""))
    assert len(report.failed) == 2 and all("called AE title" in r.message for r in report.results)
    left = queue.pending("bad")
    assert [i.attempts for i in left] == [1, 1] and all(i.last_error for i in left)
    assert all(29 < i.next_attempt - time.time() <= 30 for i in left)
    assert queue.pending("other") == [] and "2 kept in the queue" in report.summary()
    queue.remove(left[0])
    assert len(queue.pending()) == 1
