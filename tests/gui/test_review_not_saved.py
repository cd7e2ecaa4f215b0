"""The reasoning panel never shows a decision as made when it was not saved: on a full disk the
control goes back to the saved decision and says "Not saved" with the error (a failed edit stays in
its box); on a read-only review folder the run is still shown, the error names the file, and the
review stays on screen read-only."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # report_fixtures, fault_injection

from fault_injection import enospc, read_only, restore_modes  # noqa: E402


@pytest.fixture
def run():
    from inference.ct_volume import CTVolume
    from inference.segmentation.organ_masks import OrganMasks
    from report_fixtures import make_run, synthetic_arrays

    hu, organs, parts, affine = synthetic_arrays((24, 20, 8))
    ct = CTVolume(hu=hu, affine=affine, source_path=Path("case.nii.gz"))
    return make_run(ct, OrganMasks(organs=organs, affine=affine, backend="synthetic", parts=parts))


@pytest.fixture
def panel(qapp, tmp_path):
    from app.case_controller import CaseController
    from app.case_store import CaseStore
    from app.reasoning_panel import ReasoningPanel
    from app.settings import AppSettings
    from viewer.scene_state import SceneState

    c = CaseController(SceneState(), AppSettings(reviewer="Dr Panel"), store=CaseStore(tmp_path / "reviews"))
    errors: list[tuple[str, str]] = []
    c.error.connect(lambda title, msg: errors.append((title, msg)))
    p = ReasoningPanel(c)
    p.errors = errors
    p.resize(600, 900)
    p.show()
    yield p
    restore_modes(tmp_path)
    c.shutdown()
    p.close()
    p.deleteLater()


def test_a_decision_the_disk_refuses_reverts_and_says_not_saved(panel, run, monkeypatch):
    from inference.report.review_store import load_review

    c = panel.c
    c.store.save_run(run)
    c.show_run(run)
    card1, card2 = panel.cards[1].controls, panel.cards[2].controls
    assert c.review is not None and not card1.agree.isChecked()

    with monkeypatch.context() as m:
        m.setattr("os.replace", enospc)
        card1.agree.click()
        # the button went back: the decision is not shown as made, and the control says why
        assert not card1.agree.isChecked() and card1.decision == "pending"
        assert card1.not_saved and "Not saved" in card1.notice.text() and "disk is full" in card1.notice.text()
        assert "not saved" in card1.badge.text()
        assert c.review.current("round-1").decision == "pending"
        title, msg = panel.errors[-1]
        assert title == "Review not saved" and str(c.store.review_path(run)) in msg

        card2.edit.click()
        card2.editor.setPlainText("Pancreatic head lesion, 31 mm (my measurement).")
        card2.save.click()
        assert not card2.edit_area.isHidden()  # the typed edit is still in its box
        assert card2.editor.toPlainText() == "Pancreatic head lesion, 31 mm (my measurement)."
        assert card2.not_saved and not card2.agree.isChecked()
        assert c.review.current("round-2").decision == "pending"
        assert c.model.drafts.get("round-2") == "Pancreatic head lesion, 31 mm (my measurement)."

    on_disk = load_review(c.store.review_path(run))
    assert on_disk.current("round-1").decision == "pending" and on_disk.current("round-2").decision == "pending"

    card1.agree.click()  # room on the disk again: the same click now saves
    assert card1.agree.isChecked() and not card1.not_saved and "not saved" not in card1.badge.text()
    card2.save.click()
    assert card2.edit.isChecked() and not card2.not_saved and card2.edit_area.isHidden()
    on_disk = load_review(c.store.review_path(run))
    assert on_disk.current("round-1").decision == "agreed"
    assert on_disk.current("round-2").text == "Pancreatic head lesion, 31 mm (my measurement)."
    assert "round-2" not in c.model.drafts


def test_a_run_in_a_read_only_folder_is_still_shown_and_its_review_read_only(panel, run, tmp_path, monkeypatch):
    c = panel.c
    store = c.store
    store.save_run(run)
    store.open_review(run).decide("round-1", "agreed")
    session = store.folder(run.case.content_hash) / "session.json"

    read_only(monkeypatch, tmp_path / "reviews")
    c.show_run(run)  # used to raise PermissionError and show nothing
    assert c.run is run and sorted(panel.cards) == [1, 2, 3] and not panel.conclusion.isHidden()
    title, msg = panel.errors[-1]
    assert title == "Could not keep the case state" and str(session) in msg and "read-only" in msg
    assert c.review is not None and c.review.current("round-1").decision == "agreed"
    assert panel.cards[1].controls.agree.isChecked()
    assert "not saved" in panel.progress_label.text()

    panel.cards[3].controls.reject.click()  # the folder cannot take it: not applied, and said so
    assert not panel.cards[3].controls.reject.isChecked() and panel.cards[3].controls.not_saved
    assert c.review.current("round-3").decision == "pending"
    assert str(store.review_path(run)) in panel.errors[-1][1]


def test_a_new_review_that_cannot_be_saved_is_shown_all_the_same(panel, run, tmp_path, monkeypatch):
    c = panel.c
    c.store.save_run(run)  # no review yet
    read_only(monkeypatch, tmp_path / "reviews")
    c.show_run(run)
    assert c.run is run and c.review is not None and c.review.pending() == c.review.keys
    assert any(t == "Review cannot be saved" and str(c.store.review_path(run)) in m for t, m in panel.errors)
    assert not c.store.review_path(run).exists()
