"""DICOM SEG + SR export: read back with highdicom, validated with dciodvfy, and de-identified."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from inference.report import Review, export_report
from inference.report.deidentify import Deidentifier
from inference.report.dicom_source import frames_of
from inference.report.dicom_sr import build_sr
from inference.report.traceable_report import build_report
from report_fixtures import KIDNEY_L, LIVER, PANCREAS, PATIENT, ROUND_TEXTS, SPLEEN, load_case, make_run

pypdf = pytest.importorskip("pypdf", reason="pypdf (test extra) reads the PDF back")
DCIODVFY = shutil.which("dciodvfy")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    ct, masks = load_case(tmp_path_factory.mktemp("dicom"))
    run = make_run(ct, masks)
    # load warnings quote paths, file names (Siemens names files by SOP UID) and series UIDs
    run.warnings.append(f"{ct.source_path}/{ct.study.sop_instance_uids[0]}.dcm: left out (another orientation); "
                        f"series uid {ct.series_uid}")
    review = Review.for_run(run, reviewer="Dr Ada Reader")
    review.decide("round-1", "agreed")
    review.decide("round-2", "edited", text="Head lesion 30 mm.")
    review.decide("round-3", "agreed")
    review.decide("conclusion", "rejected", comment=f"see prior of {PATIENT['name'].split('^')[0]}")
    review.sign(confirm=True)
    review.decide("conclusion", "edited", text="Pancreatic head mass; biopsy.", reason="tumour board")
    return ct, masks, run, review


@pytest.fixture(scope="module")
def plain(case, tmp_path_factory):
    ct, masks, run, review = case
    return export_report(run, review, ct, masks, tmp_path_factory.mktemp("plain"), formats={"dicom"},
                         organization="Radiology Dept")


@pytest.fixture(scope="module")
def anonymous(case, tmp_path_factory):
    ct, masks, run, review = case
    return export_report(run, review, ct, masks, tmp_path_factory.mktemp("anon"), deidentify=True, salt=b"s" * 16)


def _items(ds, value_type=None, code=None):
    """Depth-first SR content items, optionally of one value type / concept code value."""
    for item in getattr(ds, "ContentSequence", []):
        if (value_type is None or item.ValueType == value_type) and (
                code is None or (item.get("ConceptNameCodeSequence") and item.ConceptNameCodeSequence[0].CodeValue == code)):
            yield item
        yield from _items(item, value_type, code)


def test_seg_reads_back_with_every_organ_as_a_coded_segment_on_the_source_slices(case, plain):
    ct, masks, _, _ = case
    seg = hd.seg.segread(plain.paths["seg"])
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    labels = [SPLEEN, KIDNEY_L, LIVER, PANCREAS]  # present organs, ascending id
    assert seg.number_of_segments == 4 and list(seg.segment_numbers) == [1, 2, 3, 4]
    names = [seg.get_segment_description(n).SegmentLabel for n in seg.segment_numbers]
    assert names == [masks.table.by_id(i).display for i in labels]
    kidney = seg.get_segment_description(2)
    assert kidney.TrackingID == "kidney_left" and kidney.segmented_property_type.value == "64033007"
    assert kidney.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "7771000"
    assert seg.get_segment_description(3).segmented_property_type.meaning == "Liver"
    refs = {uid for _, _, uid in seg.get_source_image_uids()}
    assert refs == set(ct.study.sop_instance_uids)
    assert seg.StudyInstanceUID == ct.study.study_instance_uid and seg.PatientID == PATIENT["id"]
    expected_frames = sum(int(masks.mask(lab).any(axis=(0, 1)).sum()) for lab in labels)
    assert int(seg.NumberOfFrames) == expected_frames
    got = seg.get_pixels_by_source_instance(list(ct.study.sop_instance_uids), segment_numbers=[1, 2, 3, 4])
    for n, lab in enumerate(labels):
        assert np.array_equal(got[..., n].astype(bool), frames_of(masks.mask(lab))), masks.table.by_id(lab).name
    parts = hd.seg.segread(plain.paths["seg_parts"])
    assert parts.number_of_segments == 1 and parts.get_segment_description(1).TrackingID == "pancreas_head"
    assert parts.SeriesInstanceUID == seg.SeriesInstanceUID and parts.SOPInstanceUID != seg.SOPInstanceUID


def test_sr_reads_back_with_round_texts_decisions_and_references_to_segments_and_slices(case, plain):
    ct, masks, run, review = case
    sr = hd.sr.srread(plain.paths["sr"])
    seg = pydicom.dcmread(plain.paths["seg"])
    parts = pydicom.dcmread(plain.paths["seg_parts"])
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "2000"
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "VERIFIED")
    assert sr.VerifyingObserverSequence[0].VerifyingObserverName == "Reader^Ada^^Dr"
    findings = list(_items(sr, "TEXT", "121071"))
    assert [f.TextValue for f in findings] == [f"Round {i} (AI): {t}" for i, t in enumerate(ROUND_TEXTS, start=1)]
    comments = [c.TextValue for c in _items(findings[1], "TEXT", "121106")]
    assert any("edited" in c for c in comments) and "Radiologist text: Head lesion 30 mm." in comments
    for f, rnd in zip(findings, run.rounds):
        segs = [(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID,
                 int(i.ReferencedSOPSequence[0].ReferencedSegmentNumber)) for i in _items(f, "IMAGE", "121191")]
        expected = []
        for lab in ([o.mask_label for o in rnd.organs] or [PANCREAS, LIVER]):
            ds = parts if lab >= 100 else seg
            number = next(int(s.SegmentNumber) for s in ds.SegmentSequence if s.TrackingID == masks.table.by_id(lab).name)
            expected.append((ds.SOPInstanceUID, number))
        assert segs == expected, f"round {rnd.index}"
        (slice_ref,) = list(_items(f, "IMAGE", "121200"))
        assert slice_ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID in ct.study.sop_instance_uids
    (conclusion,) = list(_items(sr, "TEXT", "121077"))
    assert "pancreatic head cancer, M0" in conclusion.TextValue
    notes = [c.TextValue for c in _items(conclusion, "TEXT", "121106")]
    assert any("rejected" in n for n in notes) and any("Amendment 1: edited: Pancreatic head mass; biopsy." in n for n in notes)
    evidence = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                for se in s.ReferencedSeriesSequence for i in se.ReferencedSOPSequence}
    assert {seg.SOPInstanceUID, parts.SOPInstanceUID} <= evidence and set(ct.study.sop_instance_uids) <= evidence


def test_an_unsigned_review_gives_a_partial_unverified_sr(case, plain):
    ct, masks, run, _ = case
    from inference.report.dicom_source import source_headers
    rep = build_report(run, Review.for_run(run), ct, masks)
    sr = build_sr(rep, source_headers(ct), [], software_version="t")
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("PARTIAL", "UNVERIFIED")
    assert "Radiologist decision: pending" in [c.TextValue for c in _items(sr, "TEXT", "121106")]


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian package dicom3tools) is not installed")
@pytest.mark.parametrize("which", ["plain", "anonymous"])
@pytest.mark.parametrize("kind", ["seg", "seg_parts", "sr"])
def test_dciodvfy_finds_no_errors(request, which, kind):
    result = request.getfixturevalue(which)
    proc = subprocess.run([DCIODVFY, str(result.paths[kind])], capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    assert not errors, "\n".join(lines)
    assert any(ln in ("Segmentation", "Comprehensive3DSR") for ln in lines), "\n".join(lines)  # it recognised the IOD


def test_no_identifier_reaches_any_deidentified_file(case, plain, anonymous):
    ct, _, _, _ = case
    secrets = [PATIENT["name"], "Doeberg", "Janetta", PATIENT["id"], PATIENT["birth"], "1961-02-03", "ACC5566",
               "Refer^Rita", "Hospital of Doeberg", ct.study.study_instance_uid, ct.series_uid,
               *ct.study.sop_instance_uids[:3], ct.study.frame_of_reference_uid, "20240102", str(ct.source_path)]
    files = [p for p in anonymous.out_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"run.json", "review.json", "report.json", "report.html", "report.pdf",
                                       "seg_organs.dcm", "seg_parts.dcm", "sr.dcm"}
    for p in files:
        blob = p.read_bytes()
        if p.suffix == ".pdf":
            blob += " ".join(pg.extract_text() for pg in pypdf.PdfReader(p).pages).encode()
        found = [s for s in secrets if s.lower().encode() in blob.lower()]
        assert not found, f"{p.name} still holds {found}"
    # the same hunt finds them in a plain export, so it can fail
    plain_blob = b"".join(p.read_bytes() for p in plain.out_dir.rglob("*.dcm"))
    assert PATIENT["id"].encode() in plain_blob and ct.study.study_instance_uid.encode() in plain_blob


def test_deidentified_dicom_is_marked_pseudonymised_consistent_and_date_shifted(case, anonymous):
    ct, _, _, _ = case
    seg = pydicom.dcmread(anonymous.paths["seg"])
    sr = pydicom.dcmread(anonymous.paths["sr"])
    expected_shift = Deidentifier(ct.study, b"s" * 16).shift_days
    for ds in (seg, pydicom.dcmread(anonymous.paths["seg_parts"]), sr):
        assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "MODIFIED"
        assert {c.CodeValue for c in ds.DeidentificationMethodCodeSequence} == {"113100", "113107", "113105"}
        assert re.fullmatch(r"ANON-[0-9A-F]{8}\^?", str(ds.PatientName)) and ds.PatientID.startswith("ANON-")
        assert ds.PatientBirthDate == "" and ds.get("InstitutionName") is None
        shift = (date(int(ds.StudyDate[:4]), int(ds.StudyDate[4:6]), int(ds.StudyDate[6:])) - date(2024, 1, 2)).days
        assert shift == expected_shift and -4015 <= shift <= -365  # every object shifted once, by the same days
    assert seg.StudyInstanceUID == sr.StudyInstanceUID != ct.study.study_instance_uid
    refs = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in _items(sr, "IMAGE", "121191")}
    assert seg.SOPInstanceUID in refs  # the SR still points at the SEG it travels with
    src = {r.ReferencedSOPInstanceUID for fr in seg.PerFrameFunctionalGroupsSequence
           for d in fr.DerivationImageSequence for r in d.SourceImageSequence}
    slices = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in _items(sr, "IMAGE", "121200")}
    assert slices <= src and not src & set(ct.study.sop_instance_uids)  # new CT UIDs, the same in SEG and SR


def test_the_deidentified_run_and_review_copies_open_together(anonymous):
    from inference.report.review_store import open_review
    from inference.run_record import RunRecord

    run = RunRecord.load(anonymous.paths["run_json"])
    assert run.case.source_path == "" and run.case.case_id.startswith("ANON-")
    review = open_review(run, anonymous.paths["review_json"])
    assert review.is_signed and review.effective_text("round-2") == "Head lesion 30 mm."
    assert "[removed]" in review.current("conclusion").comment  # the patient's name in a comment is scrubbed


def test_scrub_text_replaces_identifier_strings_only_where_they_stand_alone():
    from inference.ct_volume import StudyInfo

    d = Deidentifier(StudyInfo(patient_name="Li^Wei", patient_id="778899", patient_birth_date="19610203"), b"k" * 16)
    assert d.scrub_text("Li Wei, born 03.02.1961 (id 778899), liver normal") == \
        "[removed], born [removed] (id [removed]), liver normal"
    # paths go whole (folders carry names); instance UIDs in free text become this export's UIDs
    assert d.scrub_text("folder /data/LI_WEI_778899/ct: skipped") == "folder [path removed]: skipped"
    assert d.scrub_text(r"C:\cases\LI_WEI\IM1.dcm and cases/LI_WEI/IM2.dcm") == "[path removed] and [path removed]"
    uid = "1.2.840.778899.5"
    assert d.scrub({"series_uid": uid, "note": f"see {uid}."}) == {"series_uid": d.uid(uid), "note": f"see {d.uid(uid)}."}
    standard = "1.2.840.10008.1.2.4.50"  # a transfer syntax identifies nobody
    assert d.scrub_text(f"syntax {standard}; numpy 2.4.6, 2.5 mm, 1/2, and/or") == \
        f"syntax {standard}; numpy 2.4.6, 2.5 mm, 1/2, and/or"
    assert Deidentifier(StudyInfo(patient_id="12"), b"k" * 16).scrub_text("a 12 mm lesion") == "a 12 mm lesion"
    assert d.uid(uid) == d.uid(uid) != Deidentifier(d.study, b"x" * 16).uid(uid)
    shifted = date.fromordinal(date(2024, 1, 2).toordinal() + d.shift_days)
    assert d.shift_date("20240102") == shifted.strftime("%Y%m%d")
    assert d.shift_date("2024-01-02T10:00:00+00:00") == shifted.isoformat() + "T10:00:00+00:00"
    assert d.shift_date("garbage") == ""


SEGIMAGE2ITKIMAGE = shutil.which("segimage2itkimage") or (
    str(Path(sys.executable).parent / "segimage2itkimage") if (Path(sys.executable).parent / "segimage2itkimage").exists()
    else None)


@pytest.mark.skipif(SEGIMAGE2ITKIMAGE is None, reason="dcmqi (test extra) is not installed")
@pytest.mark.parametrize("which", ["plain", "anonymous"])
def test_dcmqi_reads_the_seg_back_as_the_same_masks_on_the_ct_grid(case, request, which, tmp_path):
    """dcmqi (what 3D Slicer uses) is an independent SEG reader: every segment it writes out covers
    exactly the CT voxels of that organ's mask, in world coordinates."""
    import nibabel as nib

    from inference.labels.organ_labels import merged_labels

    ct, masks, _, _ = case
    result = request.getfixturevalue(which)
    out = tmp_path / "dcmqi"
    out.mkdir()
    proc = subprocess.run([SEGIMAGE2ITKIMAGE, "--inputDICOM", str(result.paths["seg"]), "--outputDirectory", str(out),
                           "--outputType", "nifti"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = json.loads((out / "meta.json").read_text())
    by_display = {lab.display[:64]: lab.id for lab in merged_labels()}
    inv = np.linalg.inv(ct.affine)
    seen = set()
    for n, group in enumerate(meta["segmentAttributes"], 1):
        label = by_display[group[0]["SegmentLabel"]]
        img = nib.load(out / f"{n}.nii.gz")
        ijk = np.argwhere(np.asanyarray(img.dataobj) > 0)
        world = img.affine @ np.c_[ijk, np.ones(len(ijk))].T
        got = {tuple(v) for v in np.rint((inv @ world)[:3].T).astype(int)}
        want = {tuple(v) for v in np.argwhere(masks.organs == label)}
        assert got == want, (group[0]["SegmentLabel"], len(got), len(want))
        seen.add(label)
    assert seen == {int(v) for v in np.unique(masks.organs) if v}


def test_source_attributes_are_kept_as_the_source_had_them(case, plain, anonymous):
    """SliceThickness is the source's (5 mm over a 3 mm spacing), StudyID is kept unless
    anonymizing, spacing is written without rounding."""
    from inference.ct_volume import CTVolume
    from inference.report.dicom_source import source_headers

    for path in (plain.paths["seg"], plain.paths["sr"]):
        assert pydicom.dcmread(path).StudyID == "S1"
    for path in (anonymous.paths["seg"], anonymous.paths["sr"]):
        assert pydicom.dcmread(path).StudyID == ""
    seg = pydicom.dcmread(plain.paths["seg"])
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(measures.SliceThickness) == 5.0 and [float(v) for v in measures.PixelSpacing] == [1.5, 1.5]
    ct = case[0]
    fine = CTVolume(hu=ct.hu, affine=np.diag([-0.9765625, -0.9765625, 2.5, 1.0]), source_path=ct.source_path,
                    series_uid=ct.series_uid, study=ct.study)
    h = source_headers(fine)[1]
    assert [str(v) for v in h.PixelSpacing] == ["0.9765625", "0.9765625"] and float(h.SliceThickness) == 2.5
    assert [float(v) for v in h.ImagePositionPatient][2] == 2.5


def test_deidentified_pdf_metadata_carry_the_shifted_clock(case, anonymous, plain):
    ct = case[0]
    shift = Deidentifier(ct.study, b"s" * 16).shift_days
    meta = pypdf.PdfReader(anonymous.paths["pdf"]).metadata
    report = json.loads(anonymous.paths["report_json"].read_text())
    generated = date.fromisoformat(report["generated"][:10])
    assert meta.creation_date.date() == generated and meta.modification_date.date() == generated
    assert (date.today() - generated).days == -shift  # the body's date, not today's
    assert "/Author" not in meta or "Reader" not in str(meta.get("/Author"))


def test_a_deidentified_export_carries_the_ct_its_seg_and_sr_reference(case, anonymous):
    """The SEG/SR of a de-identified export reference new CT UIDs; the export writes that CT beside
    them (same HU, same geometry, same UIDs), so a PACS or 3D Slicer opens the set together."""
    from inference.ct_io import load_ct

    ct = case[0]
    folder = anonymous.paths["ct_series"]
    files = sorted(folder.glob("*.dcm"))
    assert len(files) == ct.shape[2]
    back = load_ct(folder)
    assert np.array_equal(back.hu, ct.hu) and np.allclose(back.affine, ct.affine, atol=1e-6)
    assert back.study.patient_id.startswith("ANON-") and back.series_uid != ct.series_uid
    seg = pydicom.dcmread(anonymous.paths["seg"])
    refs = {r.ReferencedSOPInstanceUID for fr in seg.PerFrameFunctionalGroupsSequence
            for d in fr.DerivationImageSequence for r in d.SourceImageSequence}
    assert refs <= set(back.study.sop_instance_uids)
    first = pydicom.dcmread(files[0])
    assert first.StudyInstanceUID == seg.StudyInstanceUID and first.FrameOfReferenceUID == seg.FrameOfReferenceUID
    assert first.StudyDate == seg.StudyDate and first.PatientIdentityRemoved == "YES"
    if DCIODVFY:
        proc = subprocess.run([DCIODVFY, str(files[0])], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]
        assert not errors, proc.stdout + proc.stderr


def _enhanced_copy(ct, folder: Path):
    """The case's DICOM series as one Legacy Converted Enhanced CT file, and its load."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    from inference.ct_io import load_ct

    mf = LegacyConvertedEnhancedCTImage([pydicom.dcmread(p) for p in sorted(Path(ct.source_path).iterdir())],
                                        series_instance_uid=pydicom.uid.generate_uid(), series_number=7,
                                        sop_instance_uid=pydicom.uid.generate_uid(), instance_number=1)
    mf.save_as(folder / "enhanced.dcm", enforce_file_format=True)
    return mf, load_ct(folder / "enhanced.dcm")


def test_an_enhanced_source_gets_seg_sr_and_the_classic_ct_they_reference(case, tmp_path):
    """A SEG/SR cannot reference a frame as a slice: from an enhanced (multi-frame) CT the export writes
    its slices as a classic CT series (UIDs derived from the image and frame, the same on every load)
    and the SEG and SR reference those, so a PACS or 3D Slicer opens the set together."""
    from inference.ct_io import load_ct

    ct, masks, run, review = case
    mf, enhanced = _enhanced_copy(ct, tmp_path)
    assert np.array_equal(enhanced.hu, ct.hu) and enhanced.study.derived_slices
    assert load_ct(tmp_path / "enhanced.dcm").study.sop_instance_uids == enhanced.study.sop_instance_uids
    result = export_report(run, review, enhanced, masks, tmp_path / "out", formats={"dicom"})
    uids = set(enhanced.study.sop_instance_uids)
    assert len(uids) == ct.shape[2] and mf.SOPInstanceUID not in uids
    copy = load_ct(result.paths["ct_series"])
    assert np.array_equal(copy.hu, ct.hu) and np.allclose(copy.affine, ct.affine, atol=1e-6)
    assert set(copy.study.sop_instance_uids) == uids and copy.series_uid != enhanced.series_uid
    assert copy.study.patient_id == PATIENT["id"] and copy.study.study_instance_uid == mf.StudyInstanceUID
    seg = hd.seg.segread(result.paths["seg"])
    assert {uid for _, _, uid in seg.get_source_image_uids()} == uids
    got = seg.get_pixels_by_source_instance(list(enhanced.study.sop_instance_uids), segment_numbers=[3])
    assert np.array_equal(got[..., 0].astype(bool), frames_of(masks.mask(LIVER)))
    evidence = {i.ReferencedSOPInstanceUID for s in pydicom.dcmread(result.paths["sr"]).CurrentRequestedProcedureEvidenceSequence
                for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert uids <= evidence
    assert any("enhanced (multi-frame)" in n and "ct/" in n for n in result.notes), result.notes
    # de-identified: the same, under pseudonymised UIDs
    anon = export_report(run, review, enhanced, masks, tmp_path / "anon", formats={"dicom"}, deidentify=True,
                         salt=b"e" * 16)
    copy = load_ct(anon.paths["ct_series"])
    assert np.array_equal(copy.hu, ct.hu) and copy.study.patient_id.startswith("ANON-")
    refs = {uid for _, _, uid in hd.seg.segread(anon.paths["seg"]).get_source_image_uids()}
    assert refs == set(copy.study.sop_instance_uids) and not refs & uids


def test_send_to_pacs_carries_the_classic_copy_of_an_enhanced_source(case, tmp_path):
    """What Send to PACS queues for an enhanced source: the SEG and SR and the CT slices they reference."""
    from types import SimpleNamespace

    from app.pacs_flows import objects_maker

    ct, masks, run, review = case
    _, enhanced = _enhanced_copy(ct, tmp_path)
    win = SimpleNamespace(controller=SimpleNamespace(run=run, review=review, ct=enhanced, masks=masks))
    objects = objects_maker(win)(None)
    try:
        slices = [p for p, d in objects if d.startswith("CT slice")]
        assert len(slices) == ct.shape[2] and {pydicom.dcmread(p).SOPInstanceUID for p in slices} == set(
            enhanced.study.sop_instance_uids)
        assert {d for _, d in objects if not d.startswith("CT slice")} >= {"DICOM SEG (organs)", "SR report (TID 2000)"}
    finally:
        shutil.rmtree(objects[0][0].parent, ignore_errors=True)
