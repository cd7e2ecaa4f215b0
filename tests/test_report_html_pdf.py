"""Key images, the traceable report model, the HTML and PDF exports and the export CLI."""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from inference.ct_volume import CTVolume
from inference.errors import InputError
from inference.run_record import RunRecord
from inference.report import Review, export_report, render_key_image, save_review
from inference.report.key_images import display_axes
from inference.report.review_store import review_path_for_run
from inference.segmentation.organ_masks import OrganMasks
from report_fixtures import (KIDNEY_L, LIVER, PANCREAS, PANCREAS_HEAD, PATIENT, ROUND_TEXTS, load_case, make_run,
                             nifti_like)

pypdf = pytest.importorskip("pypdf", reason="pypdf (test extra) reads the PDF back")

EDIT = "Head lesion 30 mm <b>not bold</b> & margins ill-defined."


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    ct, masks = load_case(tmp_path_factory.mktemp("dicom"))
    run = make_run(ct, masks)
    review = Review.for_run(run, reviewer="Dr Ada Reader")
    review.decide("round-1", "agreed")
    review.decide("round-2", "edited", text=EDIT, comment="re-measured")
    review.decide("round-3", "rejected", comment="spleen not assessed")
    review.decide("conclusion", "agreed")
    review.sign(confirm=True)
    return ct, masks, run, review


@pytest.fixture(scope="module")
def exported(case, tmp_path_factory):
    ct, masks, run, review = case
    out = tmp_path_factory.mktemp("export")
    return export_report(run, review, ct, masks, out, formats={"json", "html", "pdf"})


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# -- key images ---------------------------------------------------------------------------------------

def _colour_pixels(png: bytes, size: tuple[int, int], colour) -> np.ndarray:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[: size[1], : size[0]]
    return np.argwhere(np.all(rgb == np.array(colour, dtype=np.uint8), axis=-1))  # (N, 2) rows, cols


def test_the_outline_is_drawn_in_the_label_colour_on_the_mask_boundary(case):
    ct, masks, _, _ = case
    img = render_key_image(ct, masks, [PANCREAS], size=384)
    c = img.choice
    assert c.axis == 2 and c.labels == (PANCREAS,)
    assert c.index == int(np.argmax(masks.mask(PANCREAS).sum(axis=(0, 1))))  # largest cross-section
    hits = _colour_pixels(img.png, img.size, masks.table.by_id(PANCREAS).colour)
    assert len(hits) > 50
    m = masks.mask(PANCREAS)
    for y, x in hits[:: max(1, len(hits) // 200)]:
        i, j, k = np.rint(img.pixel_to_voxel(x, y, ct.shape)).astype(int)
        hood = m[max(i - 1, 0): i + 2, max(j - 1, 0): j + 2, k]
        assert hood.any() and not hood.all(), f"outline pixel ({x}, {y}) is not on the mask boundary"
    # the organ's interior stays CT grey: no outline pixel near the centre of its cross-section
    ii, jj = np.argwhere(m[:, :, c.index]).mean(axis=0)
    cx, cy = _voxel_to_pixel(img, ct, ii, jj)
    assert np.min((hits[:, 1] - cx) ** 2 + (hits[:, 0] - cy) ** 2) > 4 ** 2


def _voxel_to_pixel(img, ct, i, j):
    c = img.choice
    n_h, n_v = ct.shape[c.h_axis], ct.shape[c.v_axis]
    u = (n_h - 1 - i) if c.flip_h else i
    v = (n_v - 1 - j) if c.flip_v else j
    return (u + 0.5) * img.size[0] / n_h - 0.5, (v + 0.5) * img.size[1] / n_v - 0.5


def test_display_is_radiological_whatever_the_voxel_order(case):
    """Patient right (liver) on the image left, posterior (kidney) at the bottom; the same picture
    from a volume stored with i flipped and i/j swapped."""
    ct, masks, _, _ = case
    ref = render_key_image(ct, masks, [LIVER, KIDNEY_L], size=256)
    w, h = ref.size
    liver = _colour_pixels(ref.png, ref.size, masks.table.by_id(LIVER).colour)
    kidney = _colour_pixels(ref.png, ref.size, masks.table.by_id(KIDNEY_L).colour)
    assert liver[:, 1].mean() < w / 2 and kidney[:, 1].mean() > w / 2  # right on left, left kidney on right
    assert kidney[:, 0].mean() > h / 2  # posterior at the bottom

    flip = np.diag([-1.0, 1, 1, 1])
    flip[0, 3] = ct.shape[0] - 1  # voxel i' = n-1-i
    swap = np.eye(4)[[1, 0, 2, 3]]
    for name, vox, fn in [("flipped i", flip, lambda a: a[::-1]), ("swapped i/j", swap, lambda a: a.transpose(1, 0, 2))]:
        aff = ct.affine @ np.linalg.inv(vox)
        ct2 = CTVolume(hu=np.ascontiguousarray(fn(ct.hu)), affine=aff, source_path=Path("x.nii.gz"))
        masks2 = OrganMasks(organs=np.ascontiguousarray(fn(masks.organs)), affine=aff, backend="t",
                            parts=np.ascontiguousarray(fn(masks.parts)))
        assert display_axes(aff)[0] == 2
        img = render_key_image(ct2, masks2, [LIVER, KIDNEY_L], size=256)
        assert img.size == ref.size, name
        a = np.asarray(Image.open(io.BytesIO(img.png)).convert("RGB")).astype(int)
        b = np.asarray(Image.open(io.BytesIO(ref.png)).convert("RGB")).astype(int)
        assert np.abs(a - b).mean() < 1.0, name


# -- report model -------------------------------------------------------------------------------------

def test_every_round_and_the_conclusion_are_tied_to_regions_and_slices(case, exported):
    ct, masks, _, _ = case
    rep = json.loads(exported.paths["report_json"].read_text())
    assert [r["ai_text"] for r in rep["rounds"]] == ROUND_TEXTS
    r2, r3 = rep["rounds"][1], rep["rounds"][2]
    assert r2["text"] == EDIT and r2["decision"]["decision"] == "edited"
    assert r3["roi_labels"] == [PANCREAS_HEAD, LIVER]
    assert rep["rounds"][0]["roi_labels"] == [PANCREAS, LIVER]  # round 1: the organs its text named
    for r in rep["rounds"]:
        k = r["key_image"]
        assert k["sop_instance_uid"] == ct.study.sop_instance_uids[k["slice_index"]]
        png = (exported.out_dir / "key_images" / k["file"]).read_bytes()
        assert len(png) > 1000 and hashlib.sha256(png).hexdigest() == k["sha256"]
        world_k = ct.world_to_voxel(np.array(k["world_mm"]))[0][2]
        assert abs(world_k - k["slice_index"]) < 1e-6
    liver = rep["regions"][str(LIVER)]
    lo, hi = np.array(liver["bbox_mm"])
    centroid = ct.voxel_to_world(np.argwhere(masks.mask(LIVER)).mean(axis=0))[0]
    assert np.all(lo < centroid) and np.all(centroid < hi)
    ext_vox = np.ptp(np.argwhere(masks.mask(LIVER)), axis=0) + 1
    assert np.allclose(hi - lo, ext_vox * np.array(ct.spacing), atol=0.02)
    assert liver["volume_ml"] == pytest.approx(masks.volume_ml(LIVER), abs=1e-3)
    c = rep["conclusion"]
    assert c["answer"] == "pancreatic head cancer, M0" and c["from_round"] == 3 and c["chain"] == [1, 2, 3]
    assert [3, PANCREAS_HEAD] in c["regions"] and [2, PANCREAS] in c["regions"]


# -- HTML ---------------------------------------------------------------------------------------------

def test_html_is_one_file_with_every_rounds_text_and_image(case, exported):
    page = exported.paths["html"].read_text(encoding="utf-8")
    for text in ROUND_TEXTS:
        assert html.escape(text) in page
    srcs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="Round', page)
    assert len(srcs) == 3
    for i, src in enumerate(srcs, start=1):
        assert base64.b64decode(src) == (exported.out_dir / "key_images" / f"round{i}_key.png").read_bytes()
    organs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+) key image"', page)
    examined = exported.report.organ_images
    assert [alt for _src, alt in organs if not alt.startswith("Round")] == [o.display for o in examined]
    assert html.escape(EDIT) in page and "<b>not bold</b>" not in page  # reviewer text is escaped
    assert PATIENT["id"] in page and "Signed by <b>Dr Ada Reader</b>" in page
    assert "spleen not assessed" in page


def test_pdf_holds_every_rounds_text_and_one_image_per_round(case, exported):
    reader = pypdf.PdfReader(exported.paths["pdf"])
    text = _norm(" ".join(p.extract_text() for p in reader.pages))
    for t in ROUND_TEXTS + [EDIT, "pancreatic head cancer, M0", PATIENT["id"]]:
        assert _norm(t) in text, t
    images = [im for p in reader.pages for im in p.images]
    files = [f"round{i}_key.png" for i in (1, 2, 3)] + [o.key_image.file for o in exported.report.organ_images]
    assert len(images) == len(files)
    sizes = sorted(im.image.size for im in images)
    expected = sorted(Image.open(io.BytesIO((exported.out_dir / "key_images" / f).read_bytes())).size for f in files)
    assert sizes == expected


def test_screenshots_are_used_when_given_and_re_rendered_when_deidentifying(case, tmp_path):
    ct, masks, run, review = case
    shot = io.BytesIO()
    Image.new("RGB", (200, 150), (10, 200, 30)).save(shot, format="PNG")
    res = export_report(run, review, ct, masks, tmp_path / "a", formats={"html"}, key_images={2: shot.getvalue()})
    assert res.report.rounds[1].key_image.source == "screenshot" and res.report.rounds[1].image.png == shot.getvalue()
    assert base64.b64encode(shot.getvalue()).decode() in res.paths["html"].read_text()
    res = export_report(run, review, ct, masks, tmp_path / "b", formats={"html"}, key_images={2: shot.getvalue()},
                        deidentify=True)
    assert res.report.rounds[1].key_image.source == "rendered" and any("screenshot" in n for n in res.notes)
    page = res.paths["html"].read_text()
    assert PATIENT["id"] not in page and "ANON-" in page


def test_an_unreadable_screenshot_is_a_clear_error(case, tmp_path):
    ct, masks, run, review = case
    with pytest.raises(InputError, match="key image for round 1") as e:
        export_report(run, review, ct, masks, tmp_path, formats={"html"}, key_images={1: tmp_path / "missing.png"})
    assert e.value.path == tmp_path / "missing.png"
    with pytest.raises(InputError, match="not a readable picture"):
        export_report(run, review, ct, masks, tmp_path, formats={"html"}, key_images={1: b"not a png"})


def test_a_nifti_case_exports_html_and_pdf_and_says_why_no_dicom(case, tmp_path):
    ct, masks, run, review = case
    nct = nifti_like(ct)
    res = export_report(run, review, nct, masks, tmp_path, formats={"html", "pdf", "dicom"})
    assert {"html", "pdf"} <= set(res.paths) and not list(tmp_path.glob("*.dcm"))
    assert any("did not come from DICOM" in n for n in res.notes)


def test_export_refuses_another_ct_other_masks_a_foreign_review_and_a_bad_folder(case, tmp_path):
    ct, masks, run, review = case
    other = CTVolume(hu=(ct.hu + 1).astype(np.int16), affine=ct.affine, source_path=Path("other.nii.gz"))
    with pytest.raises(InputError, match="not the CT this run analysed") as e:
        export_report(run, review, other, masks, tmp_path)
    assert e.value.path == Path("other.nii.gz")
    organs = masks.organs.copy()
    organs[organs == LIVER] = 0
    with pytest.raises(InputError, match="not the ones this run used"):
        export_report(run, review, ct, OrganMasks(organs=organs, affine=masks.affine, backend="x", parts=masks.parts),
                      tmp_path)
    with pytest.raises(InputError, match="unknown export format"):
        export_report(run, review, ct, masks, tmp_path, formats={"docx"})
    d = json.loads(run.to_json())
    d["rounds"][2]["text"] = "changed"
    with pytest.raises(InputError, match="review does not belong to this run"):
        export_report(RunRecord.from_dict(d), review, ct, masks, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError) as e:
        export_report(run, review, ct, masks, blocker / "out", formats={"html"})
    assert str(blocker) in str(e.value)


# -- CLI ----------------------------------------------------------------------------------------------

def test_the_export_command_finds_the_review_beside_run_json(case, tmp_path, capsys):
    from inference.report.cli_export import main
    from inference.segmentation.expert import make_expert

    ct, masks, _, _ = case
    masks_file = tmp_path / "organs.nii.gz"
    nib.save(nib.Nifti1Image(masks.organs, ct.affine), masks_file)
    file_masks = make_expert("precomputed", path=masks_file).segment(ct)
    run = make_run(ct, file_masks)
    run.segmentation.mask_source = str(masks_file)
    run_json = run.save(tmp_path / "case" / "run.json")
    review = Review.for_run(run, reviewer="Dr Ada Reader")
    review.decide("round-1", "edited", text="CLI edit.")
    save_review(review, review_path_for_run(run_json))

    code = main(["export", str(run_json), "--out", str(tmp_path / "out"), "--formats", "html", "json", "dicom"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "not signed, 3 item(s) pending" in out and "run.review.json" in out
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "sr.dcm").is_file()
    assert "CLI edit." in (tmp_path / "out" / "report.html").read_text()

    code = main(["export", str(run_json), "--out", str(tmp_path / "o2"), "--masks", str(tmp_path / "nope.nii.gz")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.nii.gz" in err and err.count("\n") == 1


# -- issue 19: what the report says of the model's domain, the organs it saw and did not see -------

@pytest.fixture(scope="module")
def honest(case, tmp_path_factory):
    """The fixture run, outside the model's training domain, its round 3 naming an organ the case has
    no mask for (the esophagus), exported."""
    import copy

    from inference.iir.rounds import SkippedOrgan

    ct, masks, run, review = case
    assert not masks.mask(15).any()  # no esophagus mask in this case
    run = copy.deepcopy(run)
    run.domain = {"in_domain": False, "declared": "synthetic_phantom",
                  "reasons": ["the model was trained on synthetic phantoms only and this CT is not one of them"]}
    run.model_card = {"name": "TumorChain demo model", "source": "model_card.json"}
    run.rounds[2].named_organs = run.rounds[2].named_organs + ["esophagus"]
    run.rounds[2].skipped_organs = [SkippedOrgan("esophagus", "no esophagus mask in this case", 15, "no_mask")]
    out = tmp_path_factory.mktemp("honest")
    return run, export_report(run, Review.for_run(run), ct, masks, out, formats={"json", "html", "pdf"})


def test_the_domain_warning_is_on_every_report_page(honest):
    _run, exp = honest
    warning = "Outside the training domain of TumorChain demo model: the model was trained on synthetic phantoms only"
    reader = pypdf.PdfReader(exp.paths["pdf"])
    assert len(reader.pages) >= 2
    for i, page in enumerate(reader.pages):
        assert _norm(warning) in _norm(page.extract_text()), f"PDF page {i + 1} has no domain warning"
    page = exp.paths["html"].read_text(encoding="utf-8")
    assert page.count('class="domain') == 2 and page.index('id="domain-warning"') < page.index("<h1>")
    rep = json.loads(exp.paths["report_json"].read_text())
    assert rep["domain_warning"].startswith(warning) and rep["domain"]["in_domain"] is False


def test_an_in_domain_report_carries_no_domain_warning(exported):
    page = exported.paths["html"].read_text(encoding="utf-8")
    assert 'class="domain' not in page
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(exported.paths["pdf"]).pages)
    assert "Outside the training domain" not in text


def test_a_round_naming_an_organ_without_a_mask_is_marked_not_seen(honest, exported):
    _run, exp = honest
    rep = json.loads(exp.paths["report_json"].read_text())
    assert [r["unseen"] for r in rep["rounds"]] == [[], [], ["esophagus"]]
    assert rep["conclusion"]["unseen"] == ["esophagus"]  # the answer's round names it
    page = exp.paths["html"].read_text(encoding="utf-8")
    assert page.count("Not seen: the text names esophagus") == 1
    assert "Not seen: its round names esophagus" in page
    text = _norm(" ".join(p.extract_text() for p in pypdf.PdfReader(exp.paths["pdf"]).pages))
    assert "Not seen: the text names esophagus" in text
    assert "Not seen" not in exported.paths["html"].read_text(encoding="utf-8")


def test_key_images_per_examined_organ_flagged_first_through_that_organ(case, exported):
    ct, masks, _run, _ = case
    rep = json.loads(exported.paths["report_json"].read_text())
    organs = rep["organ_images"]
    # examined: pancreas 0.91 (round 2), pancreatic head 0.88 (round 3), liver 0.07 (round 3)
    assert [(o["label_id"], o["flagged"], o["rounds"]) for o in organs] == [
        (PANCREAS, True, [2]), (PANCREAS_HEAD, True, [3]), (LIVER, False, [3])]
    for o in organs:
        largest = int(np.argmax(masks.mask(o["label_id"]).sum(axis=(0, 1))))
        assert o["key_image"]["slice_index"] == largest and o["key_image"]["labels"] == [o["label_id"]]
        png = (exported.out_dir / "key_images" / o["key_image"]["file"]).read_bytes()
        assert hashlib.sha256(png).hexdigest() == o["key_image"]["sha256"]
        img = Image.open(io.BytesIO(png)).convert("RGB")
        colour = np.array(masks.table.by_id(o["label_id"]).colour, dtype=np.uint8)
        assert np.all(np.asarray(img) == colour, axis=-1).sum() > 20  # that organ outlined on it
    # round 3 examined the head (0.88) and the liver (0.07): its image is cut through the head
    r3 = rep["rounds"][2]["key_image"]
    assert r3["labels"][0] == PANCREAS_HEAD
    assert r3["slice_index"] == int(np.argmax(masks.mask(PANCREAS_HEAD).sum(axis=(0, 1))))


def test_provenance_matches_what_each_round_examined(exported):
    rep = json.loads(exported.paths["report_json"].read_text())
    assert rep["rounds"][0]["provenance"].startswith("global view (no organ tokens)")
    assert rep["rounds"][1]["provenance"] == "organ tokens of pancreas (P(abnormal) 0.91)"
    c = rep["conclusion"]
    assert c["global_rounds"] == [1] and all(ri != 1 for ri, _lid in c["regions"])
    page = exported.paths["html"].read_text(encoding="utf-8")
    assert "global view only (no organ tokens): round 1" in page and "(round 1, label" not in page
