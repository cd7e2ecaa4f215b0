"""Per-region thresholds of the classifier screen (inference/iir/screen_thresholds.py): calibrated as a
quantile of each region's lesion-free P(abnormal), never below 0.5; kept in the model folder; a malformed
file is refused naming it; the Discordant warning flags a region only at/above its own threshold; and
training.screen_calibration writes a file the pipeline reads, from generated held-out cases."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.errors import ModelError
from inference.iir.classifier_screen import DISCORDANT, discordance_warning
from inference.iir.conclusion import Conclusion
from inference.iir.screen_thresholds import (FILE, FORMAT, ScreenThresholds, calibrate, load_screen_thresholds,
                                             write_screen_thresholds)

ROOT = Path(__file__).resolve().parents[1]
NORMAL = Conclusion(reasoning="", answer="no abnormality", found=True)


def test_calibrate_takes_the_quantile_and_never_goes_below_half():
    negatives = {"esophagus_lower": [0.2, 0.9, 0.97, 0.99], "liver": [0.01, 0.02, 0.1], "empty": []}
    got = calibrate(negatives, quantile=1.0)
    assert got == {"esophagus_lower": 0.99, "liver": 0.5}
    assert calibrate({"x": [0.1 * i for i in range(11)]}, quantile=0.5) == {"x": 0.5}
    assert calibrate({"x": [0.61234, 0.1]}, quantile=1.0) == {"x": 0.6124}  # rounded up: the max itself flags


def test_a_folder_without_the_file_screens_at_half(tmp_path):
    t = load_screen_thresholds(tmp_path)
    assert not t.calibrated and t.of("pancreas_head") == 0.5 and FILE in t.source


def test_written_thresholds_load_back(tmp_path):
    write_screen_thresholds(tmp_path, {"pancreas_head": 0.84, "esophagus_lower": 1.0}, {"cases": 3, "quantile": 0.99})
    t = load_screen_thresholds(tmp_path)
    assert t.calibrated and t.of("pancreas_head") == 0.84 and t.of("liver") == 0.5
    assert "0.99 quantile" in t.source and "3 held-out cases" in t.source


@pytest.mark.parametrize("content, why", [
    ("{", "not a readable"),
    (json.dumps({"format": "other"}), "format"),
    (json.dumps({"format": FORMAT, "thresholds": {}}), "must map"),
    (json.dumps({"format": FORMAT, "thresholds": {"liver": 0.3}}), "'liver' is 0.3"),
    (json.dumps({"format": FORMAT, "thresholds": {"liver": "high"}}), "'liver' is 'high'"),
    (json.dumps({"format": FORMAT, "thresholds": {"liver": True}}), "'liver' is True"),
])
def test_a_malformed_file_is_refused_naming_it(tmp_path, content, why):
    (tmp_path / FILE).write_text(content)
    with pytest.raises(ModelError) as err:
        load_screen_thresholds(tmp_path)
    assert str(tmp_path / FILE) in str(err.value) and why in str(err.value)


def test_the_pipeline_refuses_a_malformed_file_before_any_analysis(tmp_path):
    from inference.pipeline import Pipeline

    (tmp_path / FILE).write_text(json.dumps({"format": FORMAT, "thresholds": {"liver": 2}}))
    with pytest.raises(ModelError, match="'liver' is 2"):
        Pipeline(model=None, model_dir=tmp_path)


def test_discordance_uses_each_regions_own_threshold():
    t = ScreenThresholds({"esophagus_lower": 1.0, "pancreas_head": 0.84}, "test")
    screen = {"esophagus_lower": 0.97, "pancreas_head": 0.94, "sigmoid_colon": 0.73}
    w = discordance_warning(NORMAL, screen, thresholds=t)
    assert w.startswith(DISCORDANT)
    assert "pancreas_head P(abnormal) 0.94 (its threshold 0.84)" in w and "sigmoid_colon P(abnormal) 0.73" in w
    assert "esophagus_lower" not in w and "held-out normal cases" in w
    assert discordance_warning(NORMAL, {"esophagus_lower": 0.99}, thresholds=t) is None
    # uncalibrated: 0.5 everywhere, and the warning says so
    assert "not calibrated" in discordance_warning(NORMAL, {"esophagus_lower": 0.99})


def test_the_shipped_demo_model_is_calibrated():
    t = load_screen_thresholds(ROOT / "resources" / "demo_model")
    assert t.calibrated and t.of("esophagus_lower") > 0.9 and 0.5 <= t.of("pancreas_head") < 0.94


@pytest.mark.slow
def test_calibration_command_writes_thresholds_the_pipeline_reads(tmp_path):
    from tiny_models import tiny_model
    from training.screen_calibration import main

    folder = tmp_path / "model"
    tiny_model(tmp_path / "build").save_pretrained(folder)
    assert main(["--model", str(folder), "--cases", "3", "--shape", "64x64x32", "--seed-base", "5", "--write"]) == 0
    data = json.loads((folder / FILE).read_text())
    assert data["format"] == FORMAT and data["calibration"]["cases"] == 3 and data["calibration"]["seeds"] == [5, 7]
    t = load_screen_thresholds(folder)
    from inference.labels import merged_labels

    assert t.calibrated and set(t.by_region) <= {lab.name for lab in merged_labels()}
    assert all(0.5 <= v <= 1.0 for v in t.by_region.values())


def test_site_manifest_rows_keep_only_what_the_labels_vouch_for(tmp_path):
    """On a site's case a sub-region counts as lesion-free only when its organ is labelled normal."""
    from inference.ct_io import load_ct
    from inference.labels import merged_labels
    from tests.training_assets import tiny_assets
    from tiny_models import tiny_model
    from training.evaluate import case_masks
    from training.manifest import load_manifest
    from training.screen_calibration import manifest_case_rows

    sample = load_manifest(tiny_assets().manifest)[0]
    ct = load_ct(sample.ct_file)
    masks = case_masks(sample, ct)
    table = merged_labels()
    present = {table.by_id(int(i)).name for i in set(masks.parts.ravel().tolist()) - {0}}
    assert {"liver_segment_7", "pancreas_head"} <= present  # the case has both organs' sub-regions
    rows = manifest_case_rows(tiny_model(tmp_path), ct, masks, {"liver": 0, "pancreas": 1})
    names = {(r["level"], r["name"]): r["label"] for r in rows}
    assert names[("organ", "liver")] == 0 and names[("organ", "pancreas")] == 1
    liver_parts = {n for lvl, n in names if lvl == "sub-region"}
    assert liver_parts and all(table.by_name(n).parent == table.by_name("liver").id for n in liver_parts)
    assert liver_parts == {n for n in present if table.by_name(n).parent == table.by_name("liver").id}
    assert not any(name.startswith("pancreas") for lvl, name in names if lvl == "sub-region")
    assert all(0.0 <= r["prob"] <= 1.0 for r in rows) and all(lvl != "organ" or n in ("liver", "pancreas")
                                                              for lvl, n in names)


@pytest.mark.slow
def test_calibration_on_a_site_manifest_writes_what_the_pipeline_reads(tmp_path, capsys):
    from tests.training_assets import tiny_assets
    from tiny_models import tiny_model
    from training.screen_calibration import main

    folder = tmp_path / "model"
    tiny_model(tmp_path / "build").save_pretrained(folder)
    manifest = tiny_assets().manifest
    assert main(["--model", str(folder), "--manifest", str(manifest), "--write"]) == 0
    data = json.loads((folder / FILE).read_text())
    assert data["calibration"]["manifest"] == str(manifest) and data["calibration"]["cases"] >= 1
    assert load_screen_thresholds(folder).calibrated
    assert "thin evidence" in capsys.readouterr().out  # a handful of cases: every region is said to be thin

    broken = tmp_path / "broken.jsonl"
    line = json.loads(manifest.read_text().splitlines()[0])
    line["ct"] = str(tmp_path / "missing_ct.nii.gz")
    broken.write_text(json.dumps(line) + "\n")
    assert main(["--model", str(folder), "--manifest", str(broken)]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "missing_ct.nii.gz" in err, err
