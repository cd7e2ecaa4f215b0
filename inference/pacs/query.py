"""C-FIND (Study Root) and QIDO-RS: studies by patient name/id, date range, modality and accession;
the series of a study with description, slice count and slice thickness.

Series-level matching returns only series attributes, and SliceThickness is an image attribute;
when the PACS leaves it empty we ask for one image of the series (``slice_thickness``), which
Orthanc and most archives answer from their index.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from inference.pacs.connection import PacsConnection, PacsError
from inference.pacs.privacy import phi

log = logging.getLogger(__name__)
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
_DATE = re.compile(r"^\d{8}$")


@dataclass
class StudyQuery:
    """Empty fields match everything. Names without a wildcard match as a prefix ('Doe' -> 'Doe*');
    dates are YYYYMMDD, either end may be empty."""

    patient_name: str = ""
    patient_id: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    accession: str = ""

    def date_range(self) -> str:
        for d in (self.date_from, self.date_to):
            if d and not _DATE.match(d):
                raise PacsError("config", f"date {d!r} is not YYYYMMDD")
        if not self.date_from and not self.date_to:
            return ""
        if self.date_from == self.date_to:
            return self.date_from
        return f"{self.date_from}-{self.date_to}"

    def name_pattern(self) -> str:
        n = self.patient_name.strip()
        return n if not n or any(c in n for c in "*?") else n + "*"


@dataclass
class StudyRecord:
    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    study_date: str = ""
    study_time: str = ""
    description: str = ""
    accession: str = ""
    modalities: list[str] = field(default_factory=list)
    n_series: int | None = None
    n_instances: int | None = None


@dataclass
class SeriesRecord:
    study_uid: str
    series_uid: str
    number: int | None = None
    modality: str = ""
    description: str = ""
    n_instances: int | None = None
    slice_thickness_mm: float | None = None
    body_part: str = ""


_STUDY_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime", "StudyDescription",
               "AccessionNumber", "ModalitiesInStudy", "StudyInstanceUID", "NumberOfStudyRelatedSeries",
               "NumberOfStudyRelatedInstances")
_SERIES_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription",
                "NumberOfSeriesRelatedInstances", "SliceThickness", "BodyPartExamined")


def study_identifier(q: StudyQuery) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for k in _STUDY_KEYS:
        setattr(ds, k, "")
    ds.PatientName = q.name_pattern()
    ds.PatientID = q.patient_id.strip()
    ds.StudyDate = q.date_range()
    ds.ModalitiesInStudy = q.modality.strip().upper()
    ds.AccessionNumber = q.accession.strip()
    return ds


def find_studies(conn: PacsConnection, q: StudyQuery, cancel=None) -> list[StudyRecord]:
    if conn.protocol == "dicomweb":
        rows = _qido(conn, "studies", _qido_filters(q), _STUDY_KEYS)
    else:
        rows = _c_find(conn, study_identifier(q), "the study search", cancel)
    out = [_study(ds) for ds in rows]
    log.info("study search on %s: %d studies (name %s, id %s)", conn.name, len(out), phi(q.patient_name),
             phi(q.patient_id))
    return sorted(out, key=lambda s: (s.study_date, s.study_time), reverse=True)


def find_series(conn: PacsConnection, study_uid: str, cancel=None, *, thickness: bool = True) -> list[SeriesRecord]:
    if conn.protocol == "dicomweb":
        rows = _qido(conn, "series", {}, _SERIES_KEYS, study_uid=study_uid)
    else:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        for k in _SERIES_KEYS:
            setattr(ds, k, "")
        ds.StudyInstanceUID = study_uid
        rows = _c_find(conn, ds, "the series search", cancel)
    out = [_series(ds, study_uid) for ds in rows]
    if thickness:
        for s in out:
            if s.slice_thickness_mm is None and (s.n_instances or 0) > 0 and conn.protocol == "dimse":
                s.slice_thickness_mm = slice_thickness(conn, study_uid, s.series_uid, cancel)
    log.info("series search on %s: %d series", conn.name, len(out))
    return sorted(out, key=lambda s: (s.number if s.number is not None else 1 << 30, s.series_uid))


def slice_thickness(conn: PacsConnection, study_uid: str, series_uid: str, cancel=None) -> float | None:
    """SliceThickness of the series' images (the first answer), None when the PACS has none."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.SOPInstanceUID = ""
    ds.SliceThickness = ""
    for row in _c_find(conn, ds, "the slice thickness query", cancel, first_only=True):
        return _float(row.get("SliceThickness"))
    return None


def _c_find(conn: PacsConnection, identifier: Dataset, what: str, cancel=None, first_only: bool = False) -> list[Dataset]:
    from inference.errors import raise_if_cancelled
    from inference.pacs.dimse import association, dropped, new_ae

    ae = new_ae(conn)
    ae.add_requested_context(STUDY_ROOT_FIND)
    out = []
    with association(conn, ae) as assoc:
        responses = assoc.send_c_find(identifier, STUDY_ROOT_FIND)
        for status, ident in responses:
            if not status or "Status" not in status:
                raise dropped(conn, what, assoc)
            code = status.Status
            if code in (0xFF00, 0xFF01):
                if ident is not None:
                    out.append(ident)
                if first_only or (cancel is not None and cancel.is_set()):
                    assoc.abort()
                    raise_if_cancelled(cancel, what)
                    return out
                continue
            if code != 0x0000:
                raise PacsError("refused_request", f"{conn.where()}: {what} failed with status 0x{code:04X}")
    return out


def _qido_filters(q: StudyQuery) -> dict:
    f = {}
    if q.name_pattern():
        f["PatientName"] = q.name_pattern()
    if q.patient_id.strip():
        f["PatientID"] = q.patient_id.strip()
    if q.date_range():
        f["StudyDate"] = q.date_range()
    if q.modality.strip():
        f["ModalitiesInStudy"] = q.modality.strip().upper()
    if q.accession.strip():
        f["AccessionNumber"] = q.accession.strip()
    return f


def _qido(conn: PacsConnection, level: str, filters: dict, keys, study_uid: str | None = None) -> list[Dataset]:
    """QIDO-RS with the query string written here: dicomweb-client percent-encodes '*' and '^',
    which some servers (Orthanc's DICOMweb plugin 1.x) then match literally, so a wildcard
    name search finds nothing. '*', '^', ',' and '-' go as they are, as OHIF sends them."""
    from urllib.parse import quote

    from inference.pacs.dicomweb import session, web_errors

    base = conn.dicomweb_url.rstrip("/")
    path = f"{base}/studies" if level == "studies" else f"{base}/studies/{quote(study_uid or '', safe='.')}/series"
    params = [f"{k}={quote(str(v), safe='*^,-')}" for k, v in filters.items()]
    params += [f"includefield={k}" for k in keys if k not in filters]
    with web_errors(conn, f"the {level} search"):
        rsp = session(conn).get(path + "?" + "&".join(params), headers={"Accept": "application/dicom+json"})
        rsp.raise_for_status()
        rows = rsp.json() if rsp.content.strip() else []
    return [Dataset.from_json(r) for r in rows]


def _study(ds: Dataset) -> StudyRecord:
    mods = ds.get("ModalitiesInStudy", "")
    mods = [str(m) for m in ([mods] if isinstance(mods, str) else mods) if m]
    return StudyRecord(
        study_uid=str(ds.get("StudyInstanceUID", "")), patient_name=str(ds.get("PatientName", "")),
        patient_id=str(ds.get("PatientID", "")), birth_date=str(ds.get("PatientBirthDate", "")),
        study_date=str(ds.get("StudyDate", "")), study_time=str(ds.get("StudyTime", "")),
        description=str(ds.get("StudyDescription", "")), accession=str(ds.get("AccessionNumber", "")),
        modalities=mods, n_series=_int(ds.get("NumberOfStudyRelatedSeries")),
        n_instances=_int(ds.get("NumberOfStudyRelatedInstances")))


def _series(ds: Dataset, study_uid: str) -> SeriesRecord:
    return SeriesRecord(
        study_uid=str(ds.get("StudyInstanceUID", "") or study_uid), series_uid=str(ds.get("SeriesInstanceUID", "")),
        number=_int(ds.get("SeriesNumber")), modality=str(ds.get("Modality", "")),
        description=str(ds.get("SeriesDescription", "")), n_instances=_int(ds.get("NumberOfSeriesRelatedInstances")),
        slice_thickness_mm=_float(ds.get("SliceThickness")), body_part=str(ds.get("BodyPartExamined", "")))


def _int(v) -> int | None:
    try:
        return int(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _float(v) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None
