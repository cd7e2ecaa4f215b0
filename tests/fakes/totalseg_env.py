"""Fixtures for the TotalSegmentator backend tests: the env's python, fake weight folders, the fake."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from inference.segmentation import totalseg_backend
from inference.segmentation.totalseg_weights import FOLDERS

SITE_DIR = Path(__file__).resolve().parent / "totalseg_site"


def env_python() -> Path:
    return totalseg_backend.default_env_python()


def skip_reason() -> str | None:
    """Why TotalSegmentator tests cannot run here, or None."""
    py = env_python()
    if not py.is_file():
        return f"TotalSegmentator env missing ({py}); create it with bash installers/setup_totalseg_env.sh"
    return None


def make_fake_weights(home: Path, dataset_ids: list[int]) -> Path:
    """Weight folders laid out as TotalSegmentator expects; the checkpoints are placeholders that only
    the faked model call ever sees. Returns the nnU-Net results folder."""
    results = home / "nnunet" / "results"
    for i in dataset_ids:
        w = FOLDERS[i]
        model = results / w.folder / w.model_dir
        (model / "fold_0").mkdir(parents=True, exist_ok=True)
        (model / "plans.json").write_text("{}")
        (model / "dataset.json").write_text("{}")
        (model / "fold_0" / "checkpoint_final.pth").write_bytes(b"placeholder: never loaded by the fake")
    return results


def fake_env(ct_affine: np.ndarray, ct_shape: tuple[int, int, int], **extra: str) -> dict[str, str]:
    """Worker environment that activates the fake, with the rule centred on the CT's centre."""
    centre = ct_affine[:3, :3] @ ((np.array(ct_shape) - 1) / 2.0) + ct_affine[:3, 3]
    env = {"PYTHONPATH": str(SITE_DIR), "TC_FAKE_CENTER": ",".join(f"{v:.3f}" for v in centre)}
    env.update(extra)
    return env


def rule_centre(env: dict[str, str]) -> tuple[float, float, float]:
    return tuple(float(v) for v in env["TC_FAKE_CENTER"].split(","))  # type: ignore[return-value]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); read its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
