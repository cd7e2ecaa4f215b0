"""nnU-Net checkpoints load as data, never as code (inference/segmentation/totalseg_checkpoints.py).

In the TotalSegmentator environment: a checkpoint saved the way nnU-Net's trainer saves one loads
through nnU-Net's own predictor with the guard on (also under numpy 1.x's names, which the published
weights carry); one that carries code is refused before the code runs, by the guard alone and through
the worker as an analysis starts it; TUMORCHAIN_TRUST_CHECKPOINTS=1 is the old full unpickle.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fakes.totalseg_env import env_python, make_fake_weights, skip_reason
from inference.ct_volume import CTVolume
from inference.errors import SegmentationError
from inference.segmentation.totalseg_backend import TotalSegmentatorExpert
from inference.segmentation.totalseg_weights import FOLDERS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "fakes" / "nnunet_checkpoint.py"
pytestmark = [pytest.mark.totalseg, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]


def run_env(*args: str, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TUMORCHAIN_TRUST_CHECKPOINTS")}
    out = subprocess.run([str(env_python()), str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                         env={**base, "TC_WORKER_DIR": str(ROOT / "inference" / "segmentation"), **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def rename_in_pickle(checkpoint: Path, old: bytes, new: bytes) -> int:
    """Rewrite the checkpoint's pickle with one module name replaced (protocol 2 names globals as text)."""
    with zipfile.ZipFile(checkpoint) as z:
        members = [(i, z.read(i.filename)) for i in z.infolist()]
    count = 0
    with zipfile.ZipFile(checkpoint, "w", zipfile.ZIP_STORED) as z:
        for info, data in members:
            if info.filename.endswith("data.pkl"):
                count, data = data.count(old), data.replace(old, new)
            z.writestr(info, data)
    return count


def test_a_trainer_checkpoint_loads_through_nnunet_as_data(tmp_path):
    written = run_env(str(tmp_path / "model"))
    loaded = run_env("--load", str(tmp_path / "model"))
    assert loaded["guarded"] is True and loaded["trainer"] == "nnUNetTrainer" and loaded["mirroring"] == [0, 1, 2]
    assert loaded["sum"] == pytest.approx(written["sum"], rel=1e-12)


def test_numpy_1_names_load_too(tmp_path):
    """TotalSegmentator's weights were saved under numpy 1.x, whose scalars pickle as numpy.core.multiarray.*"""
    run_env(str(tmp_path / "model"))
    checkpoint = tmp_path / "model" / "fold_0" / "checkpoint_final.pth"
    assert rename_in_pickle(checkpoint, b"numpy._core.multiarray", b"numpy.core.multiarray") > 0
    with zipfile.ZipFile(checkpoint) as z:
        assert b"numpy.core.multiarray\nscalar" in z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert run_env("--load", str(tmp_path / "model"))["trainer"] == "nnUNetTrainer"


def test_a_checkpoint_that_runs_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "code-ran"
    run_env(str(tmp_path / "evil"), "--evil", str(marker))
    assert not marker.exists()
    refused = run_env("--load", str(tmp_path / "evil"))["refused"]
    assert str(tmp_path / "evil" / "fold_0" / "checkpoint_final.pth") in refused
    assert "posix.mkdir" in refused and "TUMORCHAIN_TRUST_CHECKPOINTS=1" in refused
    assert not marker.exists()
    # the site's explicit trust is the old full unpickle: the file's code runs
    trusted = run_env("--load", str(tmp_path / "evil"), TUMORCHAIN_TRUST_CHECKPOINTS="1")
    assert trusted["guarded"] is False and marker.is_dir()


def test_an_analysis_refuses_a_tampered_totalsegmentator_checkpoint(tmp_path):
    """Through the worker, as the workstation starts it: real TotalSegmentator and nnU-Net (nothing faked)
    up to loading the fast model's checkpoint, which carries code."""
    marker = tmp_path / "code-ran"
    run_env(str(tmp_path / "evil"), "--evil", str(marker))
    results = make_fake_weights(tmp_path / "tsh", [297])
    w = FOLDERS[297]
    target = results / w.folder / w.model_dir / "fold_0" / "checkpoint_final.pth"
    shutil.copyfile(tmp_path / "evil" / "fold_0" / "checkpoint_final.pth", target)
    hu = np.full((24, 24, 12), -1000, dtype=np.int16)
    hu[6:18, 6:18, 3:9] = 40
    ct = CTVolume(hu=hu, affine=np.diag([6.0, 6.0, 6.0, 1.0]), source_path=tmp_path / "small.nii.gz")
    with pytest.raises(SegmentationError) as err:
        TotalSegmentatorExpert(fast=True, home_dir=tmp_path / "tsh").segment(ct)
    text = str(err.value)
    assert text.startswith(f"{target}: refused to load") and "posix.mkdir" in text, text
    assert not marker.exists()
