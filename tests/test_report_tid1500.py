"""TID 1500 measurement report: built beside the TID 2000 SR, valid for dciodvfy, read back by highdicom
with one group per examined organ that references its SEG segment and the CT slices it covers."""
from __future__ import annotations

import shutil
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest

from inference.report import Review, export_report
from inference.report.dicom_measurements import longest_diameter_mm, stated_size_mm
from report_fixtures import LIVER, PANCREAS, PANCREAS_HEAD, load_case, make_run

DCIODVFY = shutil.which("dciodvfy")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    ct, masks = load_case(tmp_path_factory.mktemp("tid1500"))
    run = make_run(ct, masks)
    review = Review.for_run(run, reviewer="Dr Ada Reader")
    review.decide("round-1", "agreed")
    review.decide("round-2", "rejected", comment="not the head")
    review.decide("round-3", "edited", text="Head lesion 30 mm, liver clear.")
    review.decide("conclusion", "agreed")
    review.sign(confirm=True)
    out = export_report(run, review, ct, masks, tmp_path_factory.mktemp("out"), formats={"dicom"})
    return ct, masks, out


def _groups(sr):
    return sr.content.get_planar_roi_measurement_groups() + sr.content.get_volumetric_roi_measurement_groups()


def test_one_group_per_examined_organ_with_segment_slices_measurements_and_decision(exported):
    ct, masks, out = exported
    sr = hd.sr.srread(out.paths["sr_tid1500"])
    seg = pydicom.dcmread(out.paths["seg"])
    parts = pydicom.dcmread(out.paths["seg_parts"])
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "VERIFIED")
    groups = sr.content.get_volumetric_roi_measurement_groups()
    by_id = {g.tracking_identifier: g for g in groups}
    # round 2 examined the pancreas (rejected), round 3 the pancreatic head and the liver (edited)
    assert set(by_id) == {"pancreas (round 2)", "pancreatic head (round 3)", "liver (round 3)"}
    voxel_ml = abs(np.linalg.det(ct.affine[:3, :3])) / 1000
    for ident, lid, seg_ds, decision in (("pancreas (round 2)", PANCREAS, seg, "REJECTED"),
                                         ("pancreatic head (round 3)", PANCREAS_HEAD, parts, "EDITED"),
                                         ("liver (round 3)", LIVER, seg, "EDITED")):
        g = by_id[ident]
        ref = g.referenced_segment
        number = next(int(s.SegmentNumber) for s in seg_ds.SegmentSequence if s.TrackingID == masks.table.by_id(lid).name)
        assert ref.referenced_sop_instance_uid == seg_ds.SOPInstanceUID
        assert list(ref.referenced_segment_numbers) == [number]
        src = {s.referenced_sop_instance_uid for s in ref.source_images_for_segmentation}
        covered = np.flatnonzero(masks.mask(lid).any(axis=(0, 1)))
        assert src == {ct.study.sop_instance_uids[k] for k in covered}, ident
        m = {x.name.meaning: x for x in g.get_measurements()}
        assert m["Volume"].value == pytest.approx(masks.mask(lid).sum() * voxel_ml, rel=1e-3)
        assert m["Volume"].unit.value == "ml"
        assert m["Long axis"].unit.value == "mm" and m["Long axis"].value > 0
        (q,) = g.get_qualitative_evaluations()
        assert q.name.value == "RADDECISION" and q.value.value == decision
    # the AI-stated size comes from the round's text ("28 mm" in round 2); round 3 states none
    assert {x.name.meaning: x.value for x in by_id["pancreas (round 2)"].get_measurements()}["Diameter"] == 28.0
    assert "Diameter" not in {x.name.meaning for x in by_id["liver (round 3)"].get_measurements()}
    assert by_id["pancreatic head (round 3)"].finding_type.meaning == "Pancreas"
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99TUMORCHAIN"


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian package dicom3tools) is not installed")
def test_dciodvfy_finds_no_errors_in_the_tid1500_sr(exported):
    _, _, out = exported
    proc = subprocess.run([DCIODVFY, str(out.paths["sr_tid1500"])], capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    assert not [ln for ln in lines if ln.startswith("Error")], "\n".join(lines)
    assert "Comprehensive3DSR" in lines, "\n".join(lines)


def test_long_axis_is_the_3d_extent_of_the_mask():
    mask = np.zeros((20, 20, 10), bool)
    mask[2:12, 5:6, 3:4] = True  # 10 voxels along i
    affine = np.diag([2.0, 1.0, 3.0, 1.0])
    # corner to corner: 20 mm along i, 1 mm along j, 3 mm along k
    assert longest_diameter_mm(mask, affine) == pytest.approx(np.sqrt(20**2 + 1 + 9))
    assert longest_diameter_mm(np.zeros_like(mask), affine) == 0.0


def test_stated_size_reads_mm_and_cm():
    assert stated_size_mm("a 28 mm mass") == 28.0
    assert stated_size_mm("3.5 cm lesion and 12mm node") == 35.0
    assert stated_size_mm("no focal lesion") is None
