"""Helpers for the workstation tests: the model they analyze with, the demo case, waiting, and a
profile folder of their own."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from gui_helpers import REPO

DEMO_CASE = REPO / "resources" / "demo_case"
DEMO_MODEL = REPO / "resources" / "demo_model"
PANCREAS = 7


def demo_model_ready() -> bool:
    return (DEMO_MODEL / "config.json").is_file() and (DEMO_MODEL / "model.safetensors").is_file()


def build_test_model(folder: Path) -> Path:
    """$TUMORCHAIN_TEST_MODEL when set; the shipped demo model when it is there; else a tiny random
    TumorChain model (word-level tokenizer, so its text is words a PDF can hold) on the demo model's
    32x256x256 input grid."""
    import os

    if os.environ.get("TUMORCHAIN_TEST_MODEL"):
        return Path(os.environ["TUMORCHAIN_TEST_MODEL"])
    if demo_model_ready():
        return DEMO_MODEL
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import one_torch_thread, tiny_config, tiny_model

    with one_torch_thread():
        model = tiny_model(folder / "build", config=tiny_config(img_size=(32, 256, 256), patch=(8, 64, 64)))
        model.save_pretrained(folder / "model")
    return folder / "model"


def wait_idle(win, timeout_ms: int = 180000) -> None:
    c = win.controller
    assert win.wait_until(lambda: not c.busy_kinds() and c.live_question is None, timeout_ms), c.busy_kinds()


@contextlib.contextmanager
def own_profile(folder: Path):
    """Settings, saved window geometry, recent cases, runs and reviews under ``folder`` while inside
    (what ``--profile`` does), the previous profile back afterwards. A window reads its profile when
    it is built: one built inside finds only what was kept there, never another test's run or layout."""
    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUMORCHAIN_PROFILE_DIR", str(folder))
        mp.setenv("TUMORCHAIN_REVIEW_DIR", str(folder / "reviews"))
        yield folder
