"""The one place that removes patient identifiers from every export (HTML/PDF header, the run
and review JSON copies, DICOM SEG and SR).

DICOM follows the PS3.15 Annex E Basic Application Level Confidentiality Profile as far as it
concerns what we write, with three options, all recorded in the objects
(DeidentificationMethodCodeSequence):

- 113100 Basic Application Confidentiality Profile: patient name and id become a pseudonym,
  birth date, sex, age, accession number, study id, referring and other physician names,
  institution and station are emptied (Type 2) or removed (Type 3);
- 113107 Retain Longitudinal Temporal Information, Modified Dates: every DA/DT value is moved
  by the same number of days (per export, secret), so intervals survive, dates do not;
- 113105 Clean Descriptors: study/series descriptions and all free text are kept with every
  known identifier string (name parts, id, birth date) replaced by "[removed]".

Instance UIDs (study, series, SOP instance, frame of reference, ...) are replaced by new UIDs
derived from the original and a secret salt (the same original -> the same new UID within
one export), so the SEG and SR still reference each other and the CT slices consistently. The
mapping is not written anywhere. An export is linkable to a CT anonymised with the same salt.

Rendered pixels carry no identifiers; screenshots may, so deidentified exports re-render them.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from inference.ct_volume import StudyInfo

REMOVED = "[removed]"
PATH_REMOVED = "[path removed]"
_HASH = re.compile(r"[0-9a-f]{16,64}")
# a DICOM UID in free text: root 0/1/2, at least four components without leading zeros (so a
# version "5.4.2" or a size "2.5 mm" is not one); Siemens and GE file names are SOP UIDs too
_UID_TOKEN = re.compile(r"(?<![\w.])(?:[0-2](?:\.(?:0|[1-9]\d*)){3,}|2\.25\.[1-9]\d{9,})(?![\w])")
# UIDs the standard defines (SOP classes, transfer syntaxes, codes) identify nobody
_STANDARD_UID = "1.2.840.10008."
# a path in free text: absolute (POSIX, Windows, ~), or relative with a folder and a file name;
# folder names often carry a patient's name or id
_PATH_TOKEN = re.compile(
    r"(?:(?<![\w.~/\\])(?:[A-Za-z]:[\\/]|\\\\|~?/)[^\s'\"()<>\[\],;]*"
    r"|(?<![\w/])[\w.-]+(?:[\\/][\w .-]*[\w-])+\.[A-Za-z][\w]{0,5}\b)"
)
UID_PREFIX = "1.2.826.0.1.3680043.10.1542."  # pydicom-style root + product arc; only a prefix

# DICOM attributes by action (PS3.15 Table E.1-1, the ones that can reach our objects)
_EMPTY = ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "AccessionNumber", "StudyID")
_DELETE = (
    "PatientAge", "PatientSize", "PatientWeight", "PatientBirthTime", "OtherPatientIDs",
    "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers",
    "EthnicGroup", "Occupation", "PatientComments", "AdditionalPatientHistory", "MedicalRecordLocator",
    "PatientBirthName", "PatientMotherBirthName", "IssuerOfPatientID", "MilitaryRank", "BranchOfService",
    "CountryOfResidence", "RegionOfResidence", "PatientReligiousPreference", "ResponsiblePerson",
    "PerformingPhysicianName", "OperatorsName", "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord",
    "RequestingPhysician", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
    "RequestAttributesSequence", "ReferencedPatientSequence", "AdmittingDiagnosesDescription",
    "PatientState", "CurrentPatientLocation", "AdmissionID", "ReferencedStudySequence",
)
_UIDS = (
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "MediaStorageSOPInstanceUID",
    "FrameOfReferenceUID", "ReferencedSOPInstanceUID", "ReferencedFrameOfReferenceUID",
    "ReferencedSOPInstanceUIDInFile", "SynchronizationFrameOfReferenceUID", "DimensionOrganizationUID",
    "ConcatenationUID", "IrradiationEventUID", "TrackingUID", "UID", "DeviceUID", "StorageMediaFileSetUID",
)
_TEXT = ("StudyDescription", "SeriesDescription", "ContentDescription", "ImageComments",
         "TextValue", "SegmentDescription", "SegmentLabel")


@dataclass
class Deidentifier:
    """Pseudonymises one export of one study. ``salt``: secret bytes; random when not given."""

    study: StudyInfo
    salt: bytes = field(default_factory=lambda: os.urandom(16))

    def __post_init__(self) -> None:
        digest = hashlib.sha256(self.salt + self.study.patient_id.encode() + self.study.study_instance_uid.encode())
        self.pseudonym = "ANON-" + digest.hexdigest()[:8].upper()
        self.shift_days = -(365 + int.from_bytes(digest.digest()[8:12], "big") % 3650)
        self._patterns = _identifier_patterns(self.study)
        # datasets already de-identified, by id; a weak reference proves the id is still that object
        # (a freed dataset's id is reused by the next one, e.g. CT slices written one at a time)
        self._visited: dict[int, weakref.ref] = {}

    # -- text --------------------------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        """Replace every known identifier string (name parts, patient id, birth date) in ``text``,
        every path, and every instance UID (by the UID this export gives it, so a warning about a
        series still names the series of the exported objects)."""
        text = _PATH_TOKEN.sub(_path_removed, text)
        text = _UID_TOKEN.sub(lambda m: self._uid_token(m.group(0)), text)
        for pattern in self._patterns:
            text = pattern.sub(REMOVED, text)
        return text

    def _uid_token(self, token: str) -> str:
        if token.startswith((_STANDARD_UID, UID_PREFIX)):
            return token
        return self.uid(token)

    def scrub(self, value: Any) -> Any:
        """scrub_text applied to every string inside nested dicts/lists."""
        if isinstance(value, str):
            if _HASH.fullmatch(value):  # content and weight hashes carry no names
                return value
            if _UID_TOKEN.fullmatch(value):  # a UID field: mapped once (ours are kept)
                return self._uid_token(value)
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        return value

    def uid(self, original: str) -> str:
        """A new UID for ``original``; the same within this export, unlinkable without the salt."""
        if not original:
            return original
        return generate_uid(prefix=UID_PREFIX, entropy_srcs=[self.salt.hex(), original])

    def shift_date(self, value: str) -> str:
        """Shift a DICOM DA (YYYYMMDD) or the date of a DT / ISO timestamp; '' stays ''."""
        if not value:
            return value
        if re.fullmatch(r"\d{8}.*", value):
            d = datetime.strptime(value[:8], "%Y%m%d").date() + timedelta(days=self.shift_days)
            return d.strftime("%Y%m%d") + value[8:]
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", value):
            d = date.fromisoformat(value[:10]) + timedelta(days=self.shift_days)
            return d.isoformat() + value[10:]
        return ""  # an unparseable date is removed rather than kept

    # -- the report header ---------------------------------------------------------------------------

    def header_study(self, *, shift_dates: bool = True) -> StudyInfo:
        """The StudyInfo the report prints, identifiers replaced. shift_dates=False keeps the study
        date for DICOM sources whose objects get their one date shift from ``dataset()`` later."""
        s = self.study
        return StudyInfo(
            patient_name=self.pseudonym, patient_id=self.pseudonym, patient_birth_date="", patient_sex="",
            study_instance_uid=self.uid(s.study_instance_uid), study_date=self.shift_date(s.study_date) if shift_dates else s.study_date,
            study_time=s.study_time, study_description=self.scrub_text(s.study_description),
            accession_number="", study_id="", referring_physician="",
            frame_of_reference_uid=self.uid(s.frame_of_reference_uid), manufacturer=s.manufacturer,
            sop_instance_uids=tuple(self.uid(u) for u in s.sop_instance_uids), sop_class_uid=s.sop_class_uid,
            derived_slices=s.derived_slices,
        )

    # -- JSON copies ---------------------------------------------------------------------------------

    def run_dict(self, run_dict: dict[str, Any]) -> dict[str, Any]:
        """A run.json dict with the case's paths and UIDs replaced, dates shifted, text scrubbed."""
        d = copy.deepcopy(run_dict)
        case = d["case"]
        case["case_id"] = self.pseudonym
        case["source_path"] = ""
        case["series_uid"] = self.uid(case.get("series_uid", ""))
        case["study_instance_uid"] = self.uid(case.get("study_instance_uid", ""))
        seg = d["segmentation"]
        if seg.get("mask_source"):
            seg["mask_source"] = REMOVED
        seg["details"] = _drop_paths(seg.get("details", {}))
        d["created"] = self.shift_date(d.get("created", ""))
        d["deidentified"] = {"method": "TumorChain PS3.15 basic profile + modified dates + clean descriptors"}
        return self.scrub(d)

    def review_dict(self, review_dict: dict[str, Any]) -> dict[str, Any]:
        d = copy.deepcopy(review_dict)
        d["case_id"] = self.pseudonym
        for key in ("created", "modified"):
            d[key] = self.shift_date(d.get(key, ""))
        for entry in [it["current"] for it in d["items"]] + [a["decision"] for a in d["amendments"]] \
                + [h["decision"] for h in d["history"]]:
            entry["at"] = self.shift_date(entry.get("at", ""))
        if d.get("signed"):
            d["signed"]["at"] = self.shift_date(d["signed"]["at"])
        return self.scrub(d)

    # -- DICOM ---------------------------------------------------------------------------------------

    def dataset(self, ds: Dataset, *, remap_uids: bool = True) -> Dataset:
        """De-identify ``ds`` in place (nested sequences too) and mark it; returns it."""
        self._walk(ds, remap_uids)
        if hasattr(ds, "file_meta") and remap_uids and "MediaStorageSOPInstanceUID" in ds.file_meta:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "PatientName" not in ds:  # a one-component person name ends in '^'
            ds.PatientName = self.pseudonym + "^"
        if "PatientID" not in ds:
            ds.PatientID = self.pseudonym
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        ds.DeidentificationMethod = "PS3.15 basic; dates shifted; descriptors cleaned"
        method = Sequence()
        for c in (codes.DCM.BasicApplicationConfidentialityProfile,
                  codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption,
                  codes.DCM.CleanDescriptorsOption):
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = c.value, c.scheme_designator, c.meaning
            method.append(item)
        ds.DeidentificationMethodCodeSequence = method
        return ds

    def _walk(self, ds: Dataset, remap_uids: bool) -> None:
        # Elements are replaced, never changed in place: highdicom shares DataElement objects
        # between a source header and the objects it builds, and an in-place change would shift
        # a shared date twice. A sequence item shared by two objects is visited once.
        seen = self._visited.get(id(ds))
        if seen is not None and seen() is ds:
            return
        self._visited[id(ds)] = weakref.ref(ds)
        for elem in list(ds):
            kw = elem.keyword
            value = elem.value
            if elem.VR == "SQ":
                if kw in _DELETE:
                    del ds[elem.tag]
                    continue
                for item in value:
                    self._walk(item, remap_uids)
                continue
            if kw in _DELETE:
                del ds[elem.tag]
                continue
            if kw in _EMPTY:
                new = ""
            elif kw == "PatientName":
                new = self.pseudonym + "^"
            elif kw == "PatientID":
                new = self.pseudonym
            elif remap_uids and kw in _UIDS and value:
                new = [self.uid(v) for v in value] if elem.VM > 1 else self.uid(str(value))
            elif elem.VR in ("DA", "DT") and value:
                new = [self.shift_date(str(v)) for v in value] if elem.VM > 1 else self.shift_date(str(value))
            elif kw in _TEXT and isinstance(value, str):
                new = self.scrub_text(value)
            else:
                continue
            ds[elem.tag] = DataElement(elem.tag, elem.VR, new)


def _path_removed(m: re.Match) -> str:
    tail = re.search(r"[:.]+$", m.group(0))  # the sentence's colon or full stop, not the path's
    return PATH_REMOVED + (tail.group(0) if tail else "")


def _identifier_patterns(study: StudyInfo) -> list[re.Pattern]:
    """Regexes for the identifier strings of a study, longest first, matched case-insensitively
    and not inside a longer alphanumeric word (so 'Li' does not hit 'liver', but hits 'Li_Wei')."""
    words = set()
    name = study.patient_name.replace("^", " ").replace(",", " ")
    if name.strip():
        words.add(" ".join(name.split()))
        words.update(p for p in name.split() if len(p) >= 2)
    if len(study.patient_id.strip()) >= 4:  # in free text a 1-3 character id would hit ordinary numbers
        words.add(study.patient_id.strip())
    b = study.patient_birth_date.strip()
    if re.fullmatch(r"\d{8}", b):
        y, m, d = b[:4], b[4:6], b[6:]
        words.update({b, f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{m}/{d}/{y}", f"{d}/{m}/{y}"})
    elif b:
        words.add(b)
    out = []
    for w in sorted(words, key=len, reverse=True):
        body = r"[\s^_,.]+".join(re.escape(p) for p in w.split()) if " " in w else re.escape(w)
        out.append(re.compile(rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])", re.IGNORECASE))
    return out


def _drop_paths(details: Any) -> Any:
    """Backend details minus anything that looks like a file path (folders often carry names)."""
    if isinstance(details, dict):
        return {k: _drop_paths(v) for k, v in details.items()}
    if isinstance(details, list):
        return [_drop_paths(v) for v in details]
    if isinstance(details, str) and ("/" in details or "\\" in details):
        return REMOVED
    return details
