"""The workstation's per-user settings, kept with QSettings.

Where: the platform's place for QSettings ("TumorChain/Workstation"), unless a profile folder is
given (``--profile DIR`` or ``$TUMORCHAIN_PROFILE_DIR``): then settings live in DIR/settings.ini
and reviews (with the runs they belong to) in DIR/reviews. Tests and scripted runs use a
profile so they never touch the user's own settings.

AppSettings is immutable: a change is a new value (``dataclasses.replace``) put into the one
SettingsStore (app/settings_store.py) that the window, the controller and the panel share.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from inference.vocabulary import DEFAULT_MAX_NEW_TOKENS, DEVICES, TASKS

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "resources" / "demo_model"
ENV_PROFILE = "TUMORCHAIN_PROFILE_DIR"
SEGMENTATION_BACKENDS = ("totalsegmentator", "synthetic")
TASK_TITLES = {"localization": "Lesion localization", "attributes": "Lesion attributes",
               "tnm": "TNM stage", "report": "CoT report"}
TASK_ORDER = TASKS  # the order the window lists them
assert set(TASK_TITLES) == set(TASKS)


def default_model_dir() -> str:
    """The shipped demo model when it is there, else nothing (Settings asks for one)."""
    return str(DEMO_MODEL) if (DEMO_MODEL / "config.json").is_file() else ""


@dataclass(frozen=True)
class AppSettings:
    """What a user sets once and keeps (Settings dialog)."""

    model_dir: str = field(default_factory=default_model_dir)
    device: str = "auto"  # auto: the GPU when torch sees one, else the CPU
    totalseg_weights_dir: str = ""  # TOTALSEG_HOME_DIR; "" = $TOTALSEG_HOME_DIR or ~/.totalsegmentator
    segmentation_backend: str = "totalsegmentator"
    totalseg_fast: bool = False
    max_rounds: int = 4
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    default_task: str = "report"
    reviewer: str = ""
    deidentify_exports: bool = False
    export_dir: str = ""
    pacs_connections: str = "[]"  # JSON list of inference.pacs.PacsConnection (Edit > Settings > PACS)
    pacs_default: str = ""  # the connection File > Open from PACS and Send to PACS start with

    def validated(self) -> "AppSettings":
        """A copy with out-of-range values replaced by the defaults (a hand-edited ini never crashes)."""
        d = AppSettings()
        return replace(
            self,
            # none chosen yet: the shipped demo model, once it is there
            model_dir=self.model_dir if self.model_dir.strip() else default_model_dir(),
            device=self.device if self.device in DEVICES else d.device,
            segmentation_backend=(self.segmentation_backend if self.segmentation_backend in SEGMENTATION_BACKENDS
                                  else d.segmentation_backend),
            default_task=self.default_task if self.default_task in TASKS else d.default_task,
            max_rounds=min(max(int(self.max_rounds), 1), 12),
            max_new_tokens=min(max(int(self.max_new_tokens), 8), 4096),
        )

    def torch_device(self) -> str | None:
        return None if self.device == "auto" else self.device


def profile_dir() -> Path | None:
    value = os.environ.get(ENV_PROFILE)
    return Path(value).expanduser() if value else None


def use_profile(folder: str | Path) -> Path:
    """Keep settings and reviews under ``folder`` for this process (``--profile``)."""
    folder = Path(folder).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_PROFILE] = str(folder)
    from inference.report.review_store import ENV_REVIEW_DIR

    os.environ[ENV_REVIEW_DIR] = str(folder / "reviews")
    return folder


def qsettings() -> QSettings:
    from PySide6.QtCore import QSettings  # only where settings are kept: AppSettings itself is Qt-free

    folder = profile_dir()
    if folder is not None:
        return QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
    return QSettings("TumorChain", "Workstation")


def review_root() -> Path:
    """Where reviews and the runs they belong to are kept (review_store's folder)."""
    from inference.report.review_store import default_review_dir

    folder = profile_dir()
    if folder is not None and not os.environ.get("TUMORCHAIN_REVIEW_DIR"):
        return folder / "reviews"
    return default_review_dir()


def load_settings(store: QSettings | None = None) -> AppSettings:
    store = store or qsettings()
    defaults = AppSettings()
    values = {}
    for f in fields(AppSettings):
        default = getattr(defaults, f.name)
        raw = store.value(f"settings/{f.name}", default)
        values[f.name] = _coerce(raw, default)
    return AppSettings(**values).validated()


def save_settings(settings: AppSettings, store: QSettings | None = None) -> None:
    store = store or qsettings()
    for f in fields(AppSettings):
        store.setValue(f"settings/{f.name}", getattr(settings, f.name))
    store.sync()


def _coerce(raw, default):
    """QSettings (ini) gives strings back; turn them into the default's type."""
    if isinstance(default, bool):
        return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        try:
            return int(raw)
        except (TypeError, ValueError):
            return default
    return "" if raw is None else str(raw)
