"""The workstation end to end, as a radiologist uses it: the demo case opens ready to Analyze,
a task runs with rounds streaming in, selecting round 2 highlights its organ in every view
(checked on pixels), every item is decided and signed, and the Export dialog writes HTML and
PDF holding every round's text and key image. Also: cancel and model failures keep the case."""
from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from gui_helpers import ARTIFACTS, colour_mask
from workstation_helpers import DEMO_CASE, PANCREAS, own_profile, wait_idle

EDIT = "Pancreatic head mass, 33 mm, ill-defined <margins> & duct dilatation."
SIGNER = "Dr Fixture Reader"


def _open_demo(model) -> "object":
    """The window as ``tumorchain-workstation --demo`` opens it, shown, loaded and idle."""
    if not (DEMO_CASE / "ct.nii.gz").exists():
        pytest.skip(f"demo case absent: {DEMO_CASE}")
    from PySide6.QtTest import QTest

    from app.main import build_window, parse_args

    win = build_window(parse_args(["--demo", "--model", str(model), "--max-new-tokens", "40",
                                   "--max-rounds", "4"]))
    win.resize(1700, 1000)
    win.show()
    assert QTest.qWaitForWindowExposed(win, 10000)
    win.wait_for_load()
    wait_idle(win)
    assert win.last_error is None, win.last_error
    return win


@pytest.fixture
def ws(qapp, workstation_model, tmp_path):
    """A fresh window on the demo case with an empty profile of its own: nothing analyzed yet,
    nothing stored to bring back, whatever ran before."""
    with own_profile(tmp_path / "profile"):
        win = _open_demo(workstation_model)
        yield win
        win.close()


@pytest.fixture(scope="module")
def signed_module_ws(qapp, workstation_model, tmp_path_factory):
    """One window (own profile) on the demo case with a finished analysis: TNM of the pancreas,
    every item agreed and the review signed. Built once for the module; the tests that use it
    (through ``signed_ws``) keep its case, run and review as they found them, and check so."""
    with own_profile(tmp_path_factory.mktemp("signed_profile")):
        win = _open_demo(workstation_model)
        c = win.controller
        assert c.analyze("tnm", "pancreas")
        wait_idle(win)
        assert win.last_error is None, win.last_error
        assert c.run is not None and c.run.task == "tnm" and len(c.run.rounds) >= 2
        for key in c.review.keys:
            assert c.decide(key, "agreed"), key
        assert c.sign(SIGNER) and c.review.is_signed
        yield win
        win.close()


@pytest.fixture
def signed_ws(signed_module_ws):
    """``signed_module_ws`` as each test finds it: idle, its signed run on screen, no message left
    over from a test before."""
    win, c = signed_module_ws, signed_module_ws.controller
    wait_idle(win)
    assert c.ct is not None and c.masks is not None and c.run is not None and c.run.task == "tnm"
    assert c.review.is_signed and c.review.signed.reviewer == SIGNER
    win.last_error = None
    if win.error_box is not None:
        win.error_box.close()
    return win


def _qimage(img) -> np.ndarray:
    """(H, W, 3) uint8 from a QImage."""
    from PySide6.QtGui import QImage

    img = img.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_demo_opens_with_masks_ready_to_analyze(ws):
    c, bar = ws.controller, ws.panel.bar
    assert c.ct is not None and c.masks is not None and c.masks.parts is not None
    assert c.live_question is None and not c.busy_kinds()  # nothing runs unless asked
    assert bar.analyze.isEnabled() and not bar.cancel.isEnabled()
    assert bar.task.currentData() == ws.settings.default_task
    assert bar.organ.findData("pancreas") > 0
    assert "ct.nii.gz" in ws.banner.text() and "192 x 192 x 80" in ws.banner.text()


@pytest.mark.slow
def test_analyze_stream_select_round_sign_off_and_export(ws, qtbot, tmp_path):
    from app.export_dialog import ExportDialog
    from inference.iir.prompts import task_question
    from inference.model.model_card import load_model_card
    from inference.report.review_store import load_review
    from viewer.screenshot import grab

    c, panel, st = ws.controller, ws.panel, ws.state
    bar = panel.bar
    bar.set_task("tnm")
    bar.organ.setCurrentIndex(bar.organ.findData("pancreas"))
    streamed, started = [], []
    c.round_started.connect(lambda i, _p: started.append(i))
    c.round_text.connect(lambda i, d: streamed.append((i, d, panel.cards[i].property("live"))))
    qtbot.mouseClick(bar.analyze, Qt.MouseButton.LeftButton)
    assert c.live_question == c.question_for("tnm", "pancreas")
    assert not bar.analyze.isEnabled() and bar.cancel.isEnabled()
    wait_idle(ws)
    assert ws.last_error is None, ws.last_error
    run = c.run
    # the card's TNM questions (T, N, M for the demo model; the one built-in prompt without a card),
    # each its own chain, the rounds numbered through the run
    card = load_model_card(ws.settings.model_dir)
    expected = ["tnm"] if card.is_default else [st.id for st in card.steps("tnm")]
    assert run.task == "tnm" and [st["id"] for st in run.steps] == expected
    assert all("pancreas" in st["question"] for st in run.steps)
    if card.is_default:
        assert run.steps[0]["question"] == task_question("tnm", "pancreas")
    spans = [st["rounds"] for st in run.steps]
    assert spans[0][0] == 1 and spans[-1][1] == len(run.rounds)
    assert all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:]))
    assert len(run.rounds) >= 2 and started == [r.index for r in run.rounds]
    # rounds streamed live into their cards, in batches that add up to each round's text
    for r in run.rounds:
        assert "".join(d for i, d, _ in streamed if i == r.index) == r.text
    assert streamed and all(live for _, _, live in streamed)
    assert sorted(panel.cards) == [r.index for r in run.rounds]
    assert bar.analyze.isEnabled() and not bar.cancel.isEnabled()

    # round 2 examines the pancreas: a chip in its label colour with the classifier's probability
    card2 = panel.cards[2]
    organ = next(o for o in run.rounds[1].organs if o.mask_label == PANCREAS)
    chip = next(ch for ch in card2.chip_widgets if ch.mask_label == PANCREAS)
    assert chip.prob_label.text() == f"P(abn) {organ.abnormal_prob:.0%}"
    chip_img = _qimage(chip.grab().toImage())
    assert colour_mask(chip_img, st.colour(PANCREAS), 3).sum() > 20  # the swatch shows the label colour

    # selecting round 2 highlights its ROI in the three slice views and in 3D
    ws.volume.build_visible_now()
    QApplication.processEvents()
    pancreas_rgb = np.asarray(st.colour(PANCREAS), float)
    before_3d = grab(ws.volume.GetRenderWindow())
    qtbot.mouseClick(card2.title, Qt.MouseButton.LeftButton)
    assert panel.selected == 2 and card2.property("selected")
    roi_labels = c.round_labels(run.rounds[1])
    assert PANCREAS in roi_labels and set(st.highlight) == set(roi_labels)
    vox = np.rint(st.ct.world_to_voxel(st.cursor)[0]).astype(int)
    assert st.masks.organs[tuple(vox)] in roi_labels  # the slices moved into the ROI
    for plane in ("axial", "coronal", "sagittal"):
        view = getattr(ws, plane)
        img = view.grab_composited()
        ring = colour_mask(img, st.highlight_rgb, 2)
        assert ring.sum() > 80, f"{plane}: no ROI outline"
        lo, hi = st.roi.voxel_min - 0.5, st.roi.voxel_max + 0.5
        (xa, ya), (xb, yb) = (view.world_to_widget(st.ct.voxel_to_world(p)[0]) for p in (lo, hi))
        for x, y in ((xa, ya), (xb, yb), (xa, yb), (xb, ya)):
            x, y = int(round(x)), int(round(y))
            assert ring[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3].any(), f"{plane}: no ROI box corner at {(x, y)}"
    vol = ws.volume
    assert vol.actors[PANCREAS].GetProperty().GetOpacity() == 1.0
    others = [lid for lid in vol.actors if lid not in roi_labels]
    assert others and all(vol.actors[lid].GetProperty().GetOpacity() < 0.2 for lid in others)
    after_3d = grab(vol.GetRenderWindow())

    def pancreas_pixels(img):  # shaded pancreas: its hue, any brightness
        rgb = img.astype(float)
        norm = np.linalg.norm(rgb, axis=-1, keepdims=True) + 1e-6
        return int(((rgb / norm) @ (pancreas_rgb / np.linalg.norm(pancreas_rgb)) > 0.995).sum())

    assert pancreas_pixels(after_3d) > 1.5 * max(pancreas_pixels(before_3d), 1), "3D did not frame the pancreas"
    ws.save_window_png(ARTIFACTS / "workstation_round2_selected.png")

    # sign-off: agree, edit (the AI text stays beside the edit), reject, conclusion
    review = c.review
    qtbot.mouseClick(panel.cards[1].controls.agree, Qt.MouseButton.LeftButton)
    assert review.effective("round-1").decision == "agreed"
    ctl = card2.controls
    qtbot.mouseClick(ctl.edit, Qt.MouseButton.LeftButton)
    assert not ctl.edit_area.isHidden() and ctl.editor.toPlainText() == run.rounds[1].text
    ctl.editor.setPlainText(EDIT)
    assert c.model.drafts["round-2"] == EDIT  # typing is kept as a draft until saved
    qtbot.mouseClick(ctl.save, Qt.MouseButton.LeftButton)
    assert review.effective("round-2").decision == "edited" and review.effective("round-2").text == EDIT
    assert review.ai_text("round-2") == run.rounds[1].text and "round-2" not in c.model.drafts
    assert card2.edited.isVisible() and EDIT in card2.edited.text().replace("\u200b", "")
    for i in sorted(panel.cards)[2:]:
        qtbot.mouseClick(panel.cards[i].controls.reject, Qt.MouseButton.LeftButton)
    assert not panel.sign.isEnabled()  # the conclusion is still pending
    qtbot.mouseClick(panel.conclusion.controls.agree, Qt.MouseButton.LeftButton)
    assert panel.sign.isEnabled()
    panel.reviewer.setText("Dr Test Reader")
    panel.confirm_sign = lambda name: name == "Dr Test Reader"
    qtbot.mouseClick(panel.sign, Qt.MouseButton.LeftButton)
    assert review.is_signed and review.signed.reviewer == "Dr Test Reader"
    assert panel.progress_label.text().startswith("Signed by Dr Test Reader")
    on_disk = load_review(c.store.review_path(run))
    assert on_disk == review and on_disk.ai_text("round-2") == run.rounds[1].text

    # export through the dialog: HTML and PDF with every round's text and key image
    out = tmp_path / "export"
    seen = {}

    def drive_dialog():
        dlg = QApplication.activeModalWidget()
        seen["dialog"] = isinstance(dlg, ExportDialog)
        seen["dicom_enabled"] = dlg.boxes["dicom"].isEnabled()  # a NIfTI case: no DICOM SEG/SR
        dlg.boxes["json"].setChecked(True)
        dlg.folder.setText(str(out))
        dlg.accept()

    QTimer.singleShot(300, drive_dialog)
    assert ws.controller.exporter is not None
    from app import dialog_flows, key_image_capture

    capture = key_image_capture.capture_key_images

    def capture_seen(*a, **k):  # the window says it is busy while VTK captures on its thread
        cursor = QGuiApplication.overrideCursor()
        seen["busy_cursor"] = cursor is not None and cursor.shape() == Qt.CursorShape.WaitCursor
        return capture(*a, **k)

    key_image_capture.capture_key_images = capture_seen
    try:
        assert dialog_flows.export_report(ws)
    finally:
        key_image_capture.capture_key_images = capture
    assert QGuiApplication.overrideCursor() is None
    wait_idle(ws)
    assert seen == {"dialog": True, "dicom_enabled": False, "busy_cursor": True}
    assert ws.last_error is None, ws.last_error
    result = ws.last_export
    page = result.paths["html"].read_text(encoding="utf-8")
    srcs = re.findall(r'<img src="data:image/png;base64,[^"]*" alt="Round', page)
    assert len(srcs) == len(run.rounds)
    report = json.loads(result.paths["report_json"].read_text())
    # one key image per examined organ, the highest P(abnormal) first
    probs = [o["abnormal_prob"] for o in report["organ_images"]]
    assert probs and probs == sorted(probs, reverse=True)
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == len(run.rounds) + len(probs)
    for r in run.rounds:
        assert html.escape(r.text) in page, f"round {r.index} text missing from the HTML"
    assert html.escape(EDIT) in page and "Dr Test Reader" in page
    report = json.loads(result.paths["report_json"].read_text())
    sources = {r["index"]: r["key_image"]["source"] for r in report["rounds"]}
    assert sources[2] == "screenshot"  # the viewer's own picture of round 2's ROI
    import pypdf

    reader = pypdf.PdfReader(result.paths["pdf"])
    text = _norm(" ".join(p.extract_text() for p in reader.pages))
    for r in run.rounds:
        assert f"Round {r.index}" in text and _norm(r.text) in text, f"round {r.index} missing from the PDF"
    assert _norm(EDIT) in text
    # one picture per round (the PDF stores identical pictures once: round 1 shows the organs it names,
    # which can be round 2's)
    distinct = {r["key_image"]["sha256"] for r in report["rounds"]} | {o["key_image"]["sha256"]
                                                                       for o in report["organ_images"]}
    assert len({im.data for p in reader.pages for im in p.images}) == len(distinct)
    assert st.highlight == tuple(sorted(roi_labels))  # the capture put the reader's highlight back

    # after sign-off a change is an amendment with its reason; the signed decision stays on record
    panel.conclusion.controls.reason_provider = lambda: "re-read with the prior CT"
    qtbot.mouseClick(panel.conclusion.controls.reject, Qt.MouseButton.LeftButton)
    assert review.current("conclusion").decision == "agreed" and review.effective("conclusion").decision == "rejected"
    assert review.amendments[-1].reason == "re-read with the prior CT"
    assert panel.conclusion.controls.badge.text().startswith("Rejected")
    assert "1 amendment" in panel.progress_label.text()
    assert load_review(c.store.review_path(run)).amendments[-1].reason == "re-read with the prior CT"


def test_cancel_mid_analysis_keeps_the_previous_run(signed_ws, qtbot):
    from inference.report.review import run_key

    c, panel = signed_ws.controller, signed_ws.panel
    before = c.run
    assert before is not None
    # cancel from inside round 1 (on the worker thread), so the run cannot finish first
    def cancel_now(_index, _prompt):
        c.analysis.cancel()

    c.analysis.round_started.connect(cancel_now, Qt.ConnectionType.DirectConnection)
    try:
        assert c.analyze("report")
        wait_idle(signed_ws)
    finally:
        c.analysis.round_started.disconnect(cancel_now)
    assert c.run is before and run_key(c.run) == run_key(before)
    assert sorted(panel.cards) == [r.index for r in before.rounds]
    assert "cancelled" in signed_ws.statusBar().currentMessage()
    assert panel.bar.analyze.isEnabled()


def test_no_model_or_a_broken_model_is_a_clear_message_and_keeps_the_case(signed_ws, tmp_path):
    c = signed_ws.controller
    run, ct = c.run, c.ct
    saved = signed_ws.settings.model_dir
    try:
        signed_ws.settings_store.update(model_dir="")
        assert not c.analyze("tnm")
        assert "Settings" in signed_ws.last_error and "model" in signed_ws.last_error.lower()
        empty = tmp_path / "not_a_model"
        empty.mkdir()
        signed_ws.settings_store.update(model_dir=str(empty))
        assert not c.analyze("tnm")
        assert "not_a_model" in signed_ws.last_error and "no TumorChain model" in signed_ws.last_error
        (empty / "config.json").write_text("{}")  # looks like a model, fails when loading
        assert c.analyze("tnm")
        wait_idle(signed_ws)
        assert "not_a_model" in signed_ws.last_error and signed_ws.error_box.windowTitle() == "Analysis failed"
    finally:
        signed_ws.settings_store.update(model_dir=saved)
        if signed_ws.error_box is not None:
            signed_ws.error_box.close()
    assert c.run is run and c.ct is ct and c.live_question is None


def test_reopening_the_ct_alone_brings_back_the_run_its_masks_and_the_review(signed_ws):
    from inference.report.review import run_key

    c = signed_ws.controller
    key = run_key(c.run)
    signed = c.review.to_dict()
    signed_ws.last_error = None
    signed_ws.open_path(DEMO_CASE / "ct.nii.gz")  # the CT without its masks: the run's mask file comes back
    wait_idle(signed_ws)
    assert signed_ws.last_error is None, signed_ws.last_error
    assert run_key(c.run) == key and c.review.to_dict() == signed
    assert c.masks is not None and c.run_matches_masks()
    assert signed_ws.panel.progress_label.text().startswith("Signed by")
    assert signed_ws.panel.runs.count() >= 1 and signed_ws.panel.runs.currentData() == key


def test_run_details_name_model_device_backend_and_timings(signed_ws):
    from app.run_details_dialog import RunDetailsDialog

    run = signed_ws.controller.run
    assert signed_ws.panel.details.isEnabled()
    dlg = RunDetailsDialog(run, "/runs/here")
    text = dlg.browser.toPlainText()
    for fact in (run.model.name, run.model.device, run.model.dtype, run.model.llm_type, run.segmentation.backend,
                 "Analyze to first token", "CT encoding", "reasoning (all rounds)", "/runs/here"):
        assert fact in text, fact
    assert run.timings["first_token_ms"] > 0 and run.timings["analysis_ms"] >= run.timings["iir_ms"]
    for r in run.rounds:  # one table row per round: index, prompt tokens, prefill, new tokens, ...
        organs = ", ".join(f"{o.display} ({o.abnormal_prob:.2f})" for o in r.organs) or "-"
        row = f"\n{r.index}\n{r.timings.prompt_tokens}\n"
        assert row in text and f"\n{r.timings.generated_tokens}\n" in text.split(row, 1)[1][:40], r.index
        assert organs in text
