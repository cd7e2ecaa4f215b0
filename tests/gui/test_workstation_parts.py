"""Workstation parts around the analysis: organ masks by a segmentation expert (progress, cancel,
failures that keep the case), settings kept per user, the model card, run details, recent cases."""
from __future__ import annotations

import json
import threading
import time

import pytest

from viewer_cases import LIVER, write_case_folder
from workstation_helpers import wait_idle


@pytest.fixture(scope="module")
def win(qapp, tmp_path_factory):
    from PySide6.QtTest import QTest

    from app.main_window import MainWindow

    w = MainWindow()
    w.resize(1500, 900)
    w.show()
    assert QTest.qWaitForWindowExposed(w, 10000)
    w.case_dir = write_case_folder(tmp_path_factory.mktemp("seg") / "case", "lps")
    yield w
    w.close()


class SlowExpert:
    """Reports progress until cancelled (a stand-in for a minutes-long TotalSegmentator run)."""

    name = "slow"

    def segment(self, ct, progress=None, cancel: threading.Event | None = None):
        from inference.errors import Cancelled

        for i in range(2000):
            if cancel is not None and cancel.is_set():
                raise Cancelled("segmentation cancelled")
            progress(i / 2000, "thinking")
            time.sleep(0.005)
        raise AssertionError("never cancelled")


def test_segmentation_gives_masks_with_progress_and_cancel_or_failure_keeps_them(win, qtbot):
    c = win.controller
    win.open_path(win.case_dir / "ct.nii.gz")  # a CT alone
    wait_idle(win)
    assert c.ct is not None and c.masks is None
    assert not c.analyze("tnm") and "no organ masks" in win.last_error
    bar = win.panel.bar
    assert bar.segment.isVisible() and "No organ masks" in bar.status.text()
    seen = []
    c.job_progress.connect(lambda kind, f, m: seen.append((kind, f)))
    win.settings_store.update(segmentation_backend="synthetic")  # the cohort backend: organs.nii.gz beside ct.nii.gz
    try:
        bar.segment.click()
        assert c.busy_kinds() == ["segmentation"] and bar.cancel.isEnabled()
        wait_idle(win)
    finally:
        win.settings_store.update(segmentation_backend="totalsegmentator")
    assert not bar.segment.isVisible()
    assert c.masks is not None and LIVER in win.state.present_ids and LIVER in win.labels.items
    assert ("segmentation", 1.0) in seen and c.model.mask_hash == c.masks.content_hash()
    assert win.panel.bar.organ.findData("liver") > 0
    masks = c.masks

    c.segmenter.factory = lambda name, **options: SlowExpert()
    try:
        assert c.segment("slow")
        qtbot.waitUntil(lambda: any(k == "segmentation" and 0 < f < 1 for k, f in seen[-5:]), timeout=10000)
        assert win.panel.bar.cancel.isEnabled()
        win.panel.bar.cancel.click()
        wait_idle(win, 10000)
        assert c.masks is masks and "cancelled" in win.statusBar().currentMessage()

        from inference.errors import SegmentationError

        def broken(name, **options):
            raise SegmentationError("TotalSegmentator environment not found: /nowhere/python does not exist")

        c.segmenter.factory = broken
        assert c.segment("totalsegmentator")
        wait_idle(win, 10000)
        assert win.error_box.windowTitle() == "Segmentation failed" and "/nowhere/python" in win.last_error
        assert c.masks is masks
    finally:
        c.segmenter.factory = None


def test_real_totalsegmentator_backend_without_weights_says_where_they_go(win, tmp_path):
    c = win.controller
    win.open_path(win.case_dir)  # the case folder: the CT with its organ masks
    wait_idle(win)
    masks = c.masks
    assert c.ct is not None and masks is not None
    saved = win.settings.totalseg_weights_dir
    win.settings_store.update(totalseg_weights_dir=str(tmp_path / "no_weights"))
    try:
        assert c.segment("totalsegmentator")
        wait_idle(win, 60000)
    finally:
        win.settings_store.update(totalseg_weights_dir=saved)
    assert win.error_box.windowTitle() == "Segmentation failed"
    assert "no_weights" in win.last_error or ".venv-totalseg" in win.last_error, win.last_error
    assert c.masks is masks


def test_settings_are_kept_per_user_and_checked(win, tmp_path):
    from app import dialog_flows
    from app.settings import load_settings, qsettings
    from app.settings_dialog import SettingsDialog

    dlg = SettingsDialog(win.settings, win, check_gpu=False)
    dlg.model_dir.setText(str(tmp_path / "nothing"))
    assert "no TumorChain model" in dlg.model_status.text() and not dlg.card.isEnabled()
    dlg.device.setCurrentIndex(dlg.device.findData("cpu"))
    dlg.rounds.setValue(6)
    dlg.task.setCurrentIndex(dlg.task.findData("tnm"))
    dlg.reviewer.setText("Dr Settings")
    dlg.weights.setText(str(tmp_path / "ts_home"))
    assert dialog_flows.edit_settings(win, dialog=dlg)
    kept = load_settings(qsettings())
    assert (kept.model_dir, kept.device, kept.max_rounds, kept.default_task, kept.reviewer, kept.totalseg_weights_dir) == \
        (str(tmp_path / "nothing"), "cpu", 6, "tnm", "Dr Settings", str(tmp_path / "ts_home"))
    assert win.controller.settings.max_rounds == 6  # the next analysis uses them
    assert "No model" not in win.model_label.text() and "nothing" in win.model_label.text()
    # a hand-edited settings file with nonsense falls back to defaults instead of failing
    store = qsettings()
    store.setValue("settings/max_rounds", "many")
    store.setValue("settings/device", "quantum")
    bad = load_settings(store)
    assert bad.max_rounds == 4 and bad.device == "auto"


def test_model_card_shows_what_the_model_is_its_training_and_evaluation(tmp_path):
    from app.model_card_dialog import ModelCardDialog, model_card_markdown

    folder = tmp_path / "demo_like"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "tumorchain", "llm_model_type": "qwen2", "llm_source": "tiny-llm", "llm_hidden_size": 128,
        "n_organ_tokens": 8, "vision": {"img_size": [32, 256, 256], "patch_size": [4, 32, 32], "hidden_size": 64,
                                        "num_layers": 2}}))
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    (folder / "eval_summary.json").write_text(json.dumps({
        "command": "python -m training.demo_model.build --out resources/demo_model --seed 0",
        "recipe": {"cohort": {"cases": 360, "shape": [128, 128, 64]}},
        "cohort": {"train": {"cases": ["a"] * 288, "samples": 3456}, "test": {"cases": ["b"] * 36, "samples": 432}},
        "train": {"global_step": 1200, "minutes": 95.0},
        "heldout": {"split": "test", "n_samples": 432, "table_md": "| mode | T | N |\n| --- | --- | --- |\n| iir | 61.0 | 55.5 |"},
        "classifier": {"n": 180, "abnormal": 60, "accuracy": 0.8, "majority_baseline": 0.66, "auc": 0.871}}))
    md = model_card_markdown(folder)
    assert "Not a diagnostic device" in md and "qwen2" in md and "tiny-llm" in md
    assert "| train | 288 | 3456 |" in md and "| iir | 61.0 | 55.5 |" in md and "0.871" in md
    assert "360 cases" in md and "No patient data" in md
    dlg = ModelCardDialog(folder)
    assert "Not a diagnostic device" in dlg.browser.toPlainText() and "61.0" in dlg.browser.toPlainText()
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "README.md").write_text("# A site model\nTrained on 2019-2021 portal venous CTs.")
    md = model_card_markdown(bare)
    assert "Not a diagnostic device" in md and "Trained on 2019-2021" in md and "No evaluation table" in md


def test_recent_cases_list_the_opened_case_first(win):
    from app import dialog_flows

    win.open_path(win.case_dir / "ct.nii.gz")
    wait_idle(win)
    entries = win.recent.entries()
    assert entries and entries[0].path == str((win.case_dir / "ct.nii.gz").resolve())
    dialog_flows.fill_recent_menu(win)
    texts = [a.text() for a in win.recent_menu.actions()]
    assert any("ct.nii.gz" in t for t in texts) and "Clear list" in texts
