"""The reading-room round trip against a real Orthanc: upload a CT series, find it, retrieve it,
analyze it (a tiny random model), sign the review, send the SEG and both SRs back through the queue,
find them in the PACS, retrieve them and read them with highdicom. Geometry survives: every SEG
frame sits at the position of the source slice it references."""
from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest

from inference.ct_io import load_ct
from inference.pacs import PacsConnection, SendQueue, StudyQuery, find_series, find_studies, retrieve_series
from inference.segmentation.organ_masks import OrganMasks
from orthanc_server import ORTHANC, SKIP_REASON, Orthanc, free_port
from report_fixtures import PATIENT, synthetic_arrays, write_dicom_case

pytestmark = pytest.mark.skipif(ORTHANC is None, reason=SKIP_REASON)


@pytest.fixture(autouse=True)
def _single_thread():
    from tiny_models import one_torch_thread

    with one_torch_thread():
        yield


def test_find_retrieve_analyze_sign_send_back_and_read_back(tmp_path):
    from inference.iir.decoding import SamplingConfig
    from inference.iir.loop import IIRSettings
    from inference.pipeline import Pipeline
    from inference.report import Review, export_report
    from tiny_models import tiny_config, tiny_model

    move_port = free_port()
    with Orthanc(tmp_path / "orthanc", modalities={"TCWS": move_port}) as pacs:
        source = write_dicom_case(tmp_path / "case")
        pacs.upload(sorted(source.iterdir()))
        conn = PacsConnection(name="reading room", host="127.0.0.1", port=pacs.dicom_port, called_ae=pacs.aet,
                              calling_ae="TCWS", timeout_s=10)

        (study,) = find_studies(conn, StudyQuery(patient_name="Doeberg", modality="CT"))
        (series,) = find_series(conn, study.study_uid)
        got = retrieve_series(conn, study.study_uid, series.series_uid, tmp_path / "cache")
        ct = load_ct(got.folder)
        _, organs, parts, _ = synthetic_arrays(ct.shape)
        masks = OrganMasks(organs=organs, affine=ct.affine, backend="synthetic", parts=parts)

        model = tiny_model(tmp_path / "m", tiny_config())
        model.save_pretrained(tmp_path / "model")
        pipe = Pipeline(model, tmp_path / "model", settings=IIRSettings(max_rounds=2, sampling=SamplingConfig(max_new_tokens=6)))
        run = pipe.analyze_volume(ct, masks, "Is there a lesion in the pancreas?")
        review = Review.for_run(run, reviewer="Dr Ada Reader")
        for key in review.keys:
            review.decide(key, "agreed")
        review.sign(confirm=True)
        out = export_report(run, review, ct, masks, tmp_path / "export", formats={"dicom"})

        queue = SendQueue(tmp_path / "queue")
        kinds = [k for k in ("seg", "seg_parts", "sr", "sr_tid1500") if k in out.paths]
        queue.enqueue([out.paths[k] for k in kinds], conn.name, kinds)
        report = queue.process(conn)
        assert [r.ok for r in report.results] == [True] * len(kinds), report.summary()
        assert queue.pending() == []

        back = {s.modality: s for s in find_series(conn, study.study_uid) if s.series_uid != series.series_uid}
        assert set(back) == {"SEG", "SR"}
        srs = [s for s in find_series(conn, study.study_uid) if s.modality == "SR"]
        assert len(srs) == 2  # the TID 2000 text report and the TID 1500 measurements
        seg_dir = retrieve_series(conn, study.study_uid, back["SEG"].series_uid, tmp_path / "cache").folder
        segs = [hd.seg.segread(p) for p in sorted(seg_dir.glob("*.dcm"))]
        organs_seg = next(s for s in segs if s.ContentLabel == "ORGANS")
        assert organs_seg.StudyInstanceUID == study.study_uid and organs_seg.PatientID == PATIENT["id"]
        # geometry: each frame's position is the position of the source slice it references
        source_pos = {}
        for f in got.folder.glob("*.dcm"):
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            source_pos[ds.SOPInstanceUID] = [float(v) for v in ds.ImagePositionPatient]
        for fr in organs_seg.PerFrameFunctionalGroupsSequence:
            uid = fr.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            pos = [float(v) for v in fr.PlanePositionSequence[0].ImagePositionPatient]
            assert np.allclose(pos, source_pos[uid], atol=1e-4), uid
        # the masks come back voxel for voxel on the retrieved CT's slices
        pixels = organs_seg.get_pixels_by_source_instance(list(ct.study.sop_instance_uids),
                                                          segment_numbers=list(organs_seg.segment_numbers))
        from inference.report.dicom_source import frames_of
        for n, number in enumerate(organs_seg.segment_numbers):
            lid = masks.table.by_name(organs_seg.get_segment_description(number).TrackingID).id
            assert np.array_equal(pixels[..., n].astype(bool), frames_of(masks.mask(lid)))

        for s in srs:
            folder = retrieve_series(conn, study.study_uid, s.series_uid, tmp_path / "cache").folder
            (sr,) = [hd.sr.srread(p) for p in folder.glob("*.dcm")]
            assert sr.VerificationFlag == "VERIFIED"
            if sr.ContentTemplateSequence[0].TemplateIdentifier == "1500":
                groups = sr.content.get_volumetric_roi_measurement_groups()
                seg_uids = {s.SOPInstanceUID for s in segs}
                assert groups and all(g.referenced_segment.referenced_sop_instance_uid in seg_uids for g in groups)
                assert all(q.value.value == "AGREED" for g in groups for q in g.get_qualitative_evaluations())
