"""Edit > Import Weights Pack and Settings' "Installed" list: a real pack imported on the worker
thread with its progress dialog; a corrupt pack refused with the file named and nothing installed;
a good pack installed, reported, and its model one click from being used."""
from __future__ import annotations

from pathlib import Path

import pytest

from workstation_helpers import own_profile

ROOT = Path(__file__).resolve().parents[2]


def fake_weights(results: Path, dataset_id: int) -> Path:
    """A complete-looking TotalSegmentator dataset folder (the checkpoint is never loaded here)."""
    from inference.segmentation.totalseg_weights import FOLDERS

    model = results / FOLDERS[dataset_id].folder / FOLDERS[dataset_id].model_dir
    (model / "fold_0").mkdir(parents=True)
    for name, text in (("plans.json", "{}"), ("dataset.json", "{}"), ("fold_0/checkpoint_final.pth", "weights")):
        (model / name).write_text(text)
    return results


@pytest.fixture(scope="module")
def setup(qapp, tmp_path_factory):
    from PySide6.QtTest import QTest

    from inference.weights_pack.export import export_pack, model_source, totalseg_sources

    base = tmp_path_factory.mktemp("weights_gui")
    results = fake_weights(base / "source_home" / "nnunet" / "results", 297)
    pack = base / "pack.tar"
    export_pack(pack, totalseg_sources(results, [297]) + [model_source(ROOT / "resources" / "demo_model")])
    with own_profile(base / "profile"), pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUMORCHAIN_MODELS_DIR", str(base / "models"))
        from app.main_window import MainWindow

        w = MainWindow()
        w.settings_store.update(totalseg_weights_dir=str(base / "ts_home"))
        w.resize(1400, 900)
        w.show()
        assert QTest.qWaitForWindowExposed(w, 10000)
        yield w, pack, base
        w.close()


def test_menu_has_the_import_action(setup):
    win, _, _ = setup
    edit = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Edit")
    assert "&Import Weights Pack..." in [a.text() for a in edit.actions()]


def test_corrupt_pack_is_refused_and_nothing_installed(setup):
    win, pack, base = setup
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = base / "bad.tar"
    bad.write_bytes(bytes(data))
    flow = win.weights_import
    assert flow.start(bad)
    assert win.wait_until(lambda: not flow.runner.busy, 60000)
    assert flow.result is None and str(bad) in flow.error and "nothing was installed" in flow.error
    assert win.last_error == flow.error and win.error_box.isVisible()
    assert not (base / "models").exists() and not (base / "ts_home").exists()


def test_good_pack_installs_reports_and_settings_show_it(setup):
    from app.settings_dialog import SettingsDialog

    win, pack, base = setup
    flow = win.weights_import
    assert flow.start(pack)
    assert win.wait_until(lambda: not flow.runner.busy, 60000) and flow.error is None
    assert flow.fractions and flow.fractions[-1] == 1.0 and flow.fractions == sorted(flow.fractions)
    text = flow.box.text()
    assert "installed demo_model" in text and "Dataset297" in text and "ready for total (fast, 3 mm)" in text
    flow.box.grab().save(str(ROOT / "artifacts" / "weights_import.png")) if (ROOT / "artifacts").is_dir() else None
    use = next(b for b in flow.box.buttons() if b.text().startswith("Use model"))
    use.click()
    assert win.settings.model_dir == str(base / "models" / "demo_model")
    dlg = SettingsDialog(win.settings, win, check_gpu=True)
    installed = dlg.installed.text()
    assert f"✓ Model demo_model (in use): {base / 'models' / 'demo_model'}" in installed
    assert "ready for total (fast, 3 mm); missing for total, liver_segments" in installed
    # which TotalSegmentator program a segmentation would start, or why none
    assert ("✓ TotalSegmentator: TotalSegmentator environment" in installed
            or "✓ TotalSegmentator: segmentation runtime" in installed or "✗ TotalSegmentator is not installed" in installed)
    assert "CPU-only build" in dlg.gpu_note.text() or "GPU found" in dlg.gpu_note.text() or "No " in dlg.gpu_note.text()
    dlg.resize(760, dlg.sizeHint().height())
    dlg.show()
    if (ROOT / "artifacts").is_dir():
        dlg.grab().save(str(ROOT / "artifacts" / "settings_installed.png"))
    dlg.close()
