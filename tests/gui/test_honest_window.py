"""Issue 19 in the real window (Xvfb, pixels): the training-domain banner, the task and organ boxes
after a scripted run, the card's question steps on the cards, one organ name per card, the
unseen-organ note, the conclusion's decision in view at 1700x1000, corner texts that never run into
each other, and ``--screenshots`` after ``--analyze``/``--script``/``--dump-state`` in one command."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from gui_helpers import ARTIFACTS, REPO, colour_mask
from workstation_helpers import DEMO_CASE, DEMO_MODEL, own_profile, wait_idle

BANNER_BG = (0x5A, 0x3A, 0x00)
UNSEEN_FG = (0xFF, 0xB3, 0x6B)


def _rgb(qimage) -> np.ndarray:
    from PySide6.QtGui import QImage

    img = qimage.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


@pytest.fixture(scope="module")
def win(qapp, workstation_model, tmp_path_factory):
    if not (DEMO_CASE / "ct.nii.gz").exists():
        pytest.skip(f"demo case absent: {DEMO_CASE}")
    from PySide6.QtTest import QTest

    from app.main import build_window, parse_args

    with own_profile(tmp_path_factory.mktemp("honest_profile")):
        w = build_window(parse_args(["--demo", "--model", str(workstation_model), "--max-new-tokens", "40",
                                     "--max-rounds", "3"]))
        w.resize(1700, 1000)
        w.show()
        assert QTest.qWaitForWindowExposed(w, 10000)
        w.wait_for_load()
        wait_idle(w)
        assert w.last_error is None, w.last_error
        yield w
        w.close()


def _card_folder(tmp_path, grids) -> str:
    """A model folder holding only a card (the demo card, its grids replaced): the banner reads the card."""
    card = json.loads((DEMO_MODEL / "model_card.json").read_text())
    card["domain"]["grids"] = grids
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    return str(tmp_path)


def test_a_ct_outside_the_training_domain_gets_a_banner(win, tmp_path):
    c = win.controller
    assert c.run is None  # the banner answers for the CT and the model set, before any analysis
    model = win.settings.model_dir
    try:
        c.settings_store.update(model_dir=_card_folder(tmp_path / "a", [{"shape": [128, 128, 64],
                                                                         "spacing_mm": [3.0, 3.0, 4.0]}]))
        QApplication.processEvents()
        assert win.domain_banner.isVisible()
        assert "2 x 2 x 3.2 mm" in win.domain_banner.text() and "3 x 3 x 4 mm" in win.domain_banner.text()
        shot = _rgb(win.grab().toImage())
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        win.grab().save(str(ARTIFACTS / "domain_banner.png"))
        top_left = win.domain_banner.mapTo(win, win.domain_banner.rect().topLeft())
        h, w = win.domain_banner.height(), win.domain_banner.width()
        band = shot[top_left.y(): top_left.y() + h, top_left.x(): top_left.x() + w]
        assert colour_mask(band, BANNER_BG, 6).mean() > 0.5, "the banner is not drawn where it says it is"
        # a card that lists the demo case's grid: the same CT is inside, no banner, no banner pixel
        c.settings_store.update(model_dir=_card_folder(tmp_path / "b", [{"shape": [192, 192, 80],
                                                                         "spacing_mm": [2.0, 2.0, 3.2]}]))
        QApplication.processEvents()
        assert not win.domain_banner.isVisible()
        assert colour_mask(_rgb(win.grab().toImage()), BANNER_BG, 6).sum() == 0
    finally:
        c.settings_store.update(model_dir=model)
        QApplication.processEvents()


@pytest.mark.slow
def test_a_scripted_run_shows_its_task_organ_and_steps(win):
    from app.main import parse_args
    from app.script_hook import autopilot
    from inference.model.model_card import load_model_card

    c, bar = win.controller, win.panel.bar
    bar.set_task("report")
    bar.organ.setCurrentIndex(0)
    assert c.run is None  # the case's first run: the run list appears
    sizes = {name: view.size() for name, view in win.views.items()}
    assert autopilot(win, parse_args(["--demo", "--analyze", "tnm", "--organ", "pancreas"])) is None
    # nothing the run adds to the panel resizes the views (each resize re-renders them: ~150 ms of
    # software OpenGL on the GUI thread)
    assert {name: view.size() for name, view in win.views.items()} == sizes
    run = c.run
    assert run is not None and run.task == "tnm"
    assert bar.task.currentData() == "tnm" and bar.organ.currentData() == "pancreas"
    card = load_model_card(win.settings.model_dir)
    titles = {st["id"]: st["title"] for st in run.steps}
    for i, card_widget in win.panel.cards.items():
        rnd = card_widget.round
        if not card.is_default:
            assert card_widget.title.text() == f"Round {i} · {titles[rnd.step]}"
        table = win.state.table
        for name in rnd.next_organs:  # one name per organ: the chips' display name
            display = table.by_name(name).display
            assert display in card_widget.next.text()
            if display != name:
                assert name not in card_widget.next.text()
    # another task through the controller, then the stored TNM run chosen again: the boxes follow
    assert c.analyze("localization", None)
    wait_idle(win)
    assert bar.task.currentData() == "localization" and bar.organ.currentData() is None
    panel = win.panel
    i = next(k for k, s in enumerate(panel._stored) if s.run.task == "tnm")
    panel._run_chosen(i)
    QApplication.processEvents()
    assert c.run.task == "tnm" and bar.task.currentData() == "tnm" and bar.organ.currentData() == "pancreas"


@pytest.mark.slow
def test_the_conclusions_decision_is_in_view_at_1700x1000(win):
    from app.script_hook import pump

    c, panel = win.controller, win.panel
    if c.run is None or c.run.task != "report":
        assert c.analyze("report", None)
        wait_idle(win)
    pump(200)
    assert (win.width(), win.height()) == (1700, 1000)
    for button in (panel.conclusion.controls.agree, panel.conclusion.controls.edit, panel.conclusion.controls.reject):
        assert button.isVisible()
        assert button.visibleRegion().boundingRect() == button.rect(), f"{button.text()} is (partly) scrolled away"
        # and the window shows that very button there: its own pixels at its place in the window picture
        shot = _rgb(win.grab().toImage())
        at = button.mapTo(win, button.rect().topLeft())
        own = _rgb(button.grab().toImage())
        there = shot[at.y(): at.y() + own.shape[0], at.x(): at.x() + own.shape[1]]
        assert there.shape == own.shape and np.abs(there.astype(int) - own.astype(int)).mean() < 8


def _round(**kw):
    from inference.iir.rounds import Round, RoundTimings

    return Round(index=kw.pop("index", 2), prompt="<ct> q", timings=RoundTimings(), **kw)


def test_a_card_uses_one_name_per_organ_and_marks_unseen_organs(qapp):
    from app.round_card import RoundCard
    from inference.iir.rounds import SkippedOrgan
    from inference.labels import merged_labels

    table = merged_labels()
    display = lambda n: table.by_name(n).display if n in table else n  # noqa: E731
    card = RoundCard(2, "<ct> q", lambda _lid: (200, 120, 40), display_of=display, step="T stage")
    rnd = _round(text="The colon and the esophagus look normal.", named_organs=["colorectum", "esophagus"],
                 next_organs=["colorectum"],
                 skipped_organs=[SkippedOrgan("esophagus", "no esophagus mask in this case", 15, "no_mask")])
    card.set_round(rnd, unseen=["esophagus"])
    card.resize(480, card.heightForWidth(480))
    card.show()
    QApplication.processEvents()
    assert card.title.text() == "Round 2 · T stage"
    assert card.next.text().startswith("Next round examines: colon") and "colorectum" not in card.next.text()
    assert card.unseen.isVisible() and "esophagus" in card.unseen.text() and "not a finding" in card.unseen.text()
    img = _rgb(card.grab().toImage())
    note = card.unseen.geometry()
    assert colour_mask(img[note.top(): note.bottom(), note.left(): note.right()], UNSEEN_FG, 40).sum() > 30
    card.set_round(_round(text="Normal.", named_organs=["liver"]), unseen=[])
    QApplication.processEvents()
    assert not card.unseen.isVisible()
    card.close()


def test_the_conclusion_lists_every_report_section_once(qapp):
    from types import SimpleNamespace

    from app.conclusion_view import NOT_STATED, ConclusionView
    from inference.iir.conclusion import parse_conclusion

    text = ("Reasoning Process: On the local views, the pancreas shows a 33 mm lesion. Findings: a 33 mm hypodense "
            "lesion. Impression: pancreatic cancer. Summary: pancreatic cancer. Thus, the answer is pancreatic cancer.")
    rnd = _round(index=3, text=text)
    view = ConclusionView()
    view.set_run(SimpleNamespace(conclusion=parse_conclusion(text), rounds=[rnd], steps=[], stop_reason="no_new_organ"))
    assert list(view.sections) == ["Findings", "Impression", "Pathology", "Summary"]
    assert view.sections["Pathology"] == NOT_STATED  # shown as missing, not left out
    assert "On the local views" not in " ".join(view.sections.values())  # the round's own text is on its card


def test_corner_texts_of_an_edge_never_overlap(win):
    view = win.axial
    st = win.state
    labels = [lid for lid in st.present_ids if lid < 100]
    assert len(labels) >= 8
    st.set_highlight(labels)  # a long ROI list in the upper right
    try:
        ann = view.annotation
        left, right = ann.GetText(2), ann.GetText(3)
        assert left.startswith("Axial") and right.startswith("ROI:") and len(right) > 80
        both = view.grab_composited()
        assert ann.shown_text(3).endswith("…") and ann.GetText(3) == right  # elided on screen, kept in full
        ann.SetText(3, "")
        left_only = view.grab_composited()
        ann.SetText(2, "")
        bare = view.grab_composited()
        ann.SetText(2, left)
        ann.SetText(3, right)
        top = slice(0, 24)
        left_cols = np.flatnonzero(np.any(left_only[top] != bare[top], axis=(0, 2)))
        right_cols = np.flatnonzero(np.any(both[top] != left_only[top], axis=(0, 2)))
        assert left_cols.size and right_cols.size
        assert left_cols.max() + 6 <= right_cols.min(), (left_cols.max(), right_cols.min())
        assert right_cols.max() >= both.shape[1] - 12  # the ROI text still ends at the right edge
    finally:
        st.clear_highlight()


@pytest.mark.slow
def test_one_command_analyzes_dumps_and_takes_the_readme_pictures(workstation_model, tmp_path):
    if not (DEMO_CASE / "ct.nii.gz").exists():
        pytest.skip(f"demo case absent: {DEMO_CASE}")
    script = tmp_path / "steps.json"
    script.write_text(json.dumps([{"agree": "round-1"}, {"select": 2}]))
    out, dump = tmp_path / "pictures", tmp_path / "state.json"
    cmd = [sys.executable, "-m", "app.main", "--demo", "--profile", str(tmp_path / "profile"), "--model",
           str(workstation_model), "--analyze", "tnm", "--organ", "pancreas", "--max-new-tokens", "24",
           "--max-rounds", "2", "--script", str(script), "--dump-state", str(dump), "--screenshots", str(out),
           "--size", "1700x1000"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ANALYZED" in done.stdout and "SCRIPT DONE" in done.stdout
    state = json.loads(dump.read_text())
    assert state["rounds"] >= 2 and state["task_box"] == "tnm" and state["organ_box"] == "pancreas"
    assert state["items"]["round-1"]["decision"] == "agreed"
    from PIL import Image

    for name in ("workstation", "reasoning_panel", "export_dialog", "model_card", "axial", "coronal", "sagittal", "3d"):
        path = out / f"{name}.png"
        assert path.is_file(), f"{name}.png missing"
        px = np.asarray(Image.open(path).convert("RGB"))
        assert px.std() > 10, f"{name}.png is blank"
    shot = Image.open(out / "workstation.png")
    assert shot.width >= 1000  # the whole 1700-wide window (scaled at most a little to stay small)
    shutil.copytree(out, ARTIFACTS / "readme_pictures", dirs_exist_ok=True)


@pytest.mark.slow
def test_a_typed_question_outside_the_trained_forms_is_said_in_the_panel(win):
    from inference.model.model_card import load_model_card

    c, panel = win.controller, win.panel
    assert c.analyze(None, None, "Is anything wrong with the pancreas?")
    wait_idle(win)
    run = c.run
    assert run.question_check["typed"] and run.question_check["trained"] is False or \
        load_model_card(win.settings.model_dir).is_default
    assert panel.question_warning.isVisible()
    assert "not one of the forms the model was trained on" in panel.question_warning.text() or \
        "Model card:" in panel.question_warning.text()
    img = _rgb(panel.grab().toImage())
    g = panel.question_warning.geometry()
    assert colour_mask(img[g.top(): g.bottom(), g.left(): g.right()], UNSEEN_FG, 40).sum() > 30
    # a question of a trained form: no such warning
    assert c.analyze(None, None, "How many focal lesions are seen in the pancreas?")
    wait_idle(win)
    if not load_model_card(win.settings.model_dir).is_default:
        assert c.run.question_check["trained"] and not panel.question_warning.isVisible()


def test_the_conclusion_says_when_its_round_names_an_organ_without_a_mask(qapp):
    from types import SimpleNamespace

    from app.conclusion_view import ConclusionView
    from inference.iir.conclusion import parse_conclusion
    from inference.iir.rounds import SkippedOrgan

    text = "Reasoning Process: a 58 mm lesion of the esophagus. Summary: esophageal cancer. Thus, the answer is T3."
    first = _round(index=1, text="The esophagus.", named_organs=["esophagus"],
                   skipped_organs=[SkippedOrgan("esophagus", "no esophagus mask in this case", 15, "no_mask")])
    last = _round(index=2, text=text, named_organs=["esophagus"])
    view = ConclusionView()
    view.set_run(SimpleNamespace(conclusion=parse_conclusion(text), rounds=[first, last], steps=[],
                                 stop_reason="no_new_organ"))
    assert "names esophagus, which has no mask in this case: not seen" in view.footer.text()


def test_the_conclusion_shows_a_discordant_classifier_screen(qapp):
    from types import SimpleNamespace

    from app.conclusion_view import ConclusionView
    from inference.iir.classifier_screen import discordance_warning
    from inference.iir.conclusion import parse_conclusion

    text = "Reasoning Process: no focal lesion. Summary: Normal study. Thus, the answer is no abnormality."
    conclusion = parse_conclusion(text)
    warning = discordance_warning(conclusion, {"pancreas": 0.27, "pancreas_head": 0.94})
    view = ConclusionView()
    view.set_run(SimpleNamespace(conclusion=conclusion, rounds=[_round(index=2, text=text)], steps=[],
                                 stop_reason="no_new_organ", warnings=["unrelated", warning]))
    view.resize(500, 600)
    view.show()
    qapp.processEvents()
    note = view.discordant
    assert note.isVisible() and "Discordant: the conclusion reads as normal" in note.text()
    assert "pancreas_head P(abnormal) 0.94" in note.text() and "unrelated" not in note.text()
    # right under the answer, in orange
    assert note.geometry().top() >= view.answer.geometry().bottom()
    assert note.geometry().bottom() <= view.controls.geometry().top()
    img = _rgb(note.grab().toImage())
    assert colour_mask(img, UNSEEN_FG, 40).sum() > 30
    view.set_run(SimpleNamespace(conclusion=conclusion, rounds=[_round(index=2, text=text)], steps=[],
                                 stop_reason="no_new_organ", warnings=[]))
    assert not view.discordant.isVisible()
