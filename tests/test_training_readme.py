"""Training by the README: the run.yaml it shows is complete (every TrainConfig setting, nothing else)
and trains as written through the real command line (`python -m training.cli train --config run.yaml`),
with only its paths pointed at a tiny cohort and the run cut to two steps."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from tests.training_assets import tiny_assets

REPO = Path(__file__).resolve().parents[1]


def readme_run_yaml() -> dict:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### A complete run.yaml", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "README: no yaml block under 'A complete run.yaml'"
    return yaml.safe_load(block.group(1))


def test_readme_run_yaml_names_every_setting():
    from training.config import TrainConfig

    data = readme_run_yaml()
    assert set(data) == {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig.from_dict(data)
    assert cfg.model == "resources/demo_model" and (REPO / cfg.model / "config.json").is_file()
    assert cfg.dataloader_workers is None  # the documented default: as many as the cores allow


@pytest.mark.slow
def test_readme_run_yaml_trains_through_the_cli(tmp_path):
    data = readme_run_yaml()
    data.update(train_manifest=str(tiny_assets().manifest), model=str(REPO / data["model"]),
                output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), max_steps=2, logging_steps=1,
                num_threads=1)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "training.cli", "train", "--config", str(tmp_path / "run.yaml")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained 2 steps" in proc.stdout
    assert re.search(r"data-loader workers: \d+ \(dataloader_workers unset", proc.stdout + proc.stderr)
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["freeze_encoder"] is True and saved["learning_rate"] == 1e-4
    assert (tmp_path / "run" / "final").is_dir()
