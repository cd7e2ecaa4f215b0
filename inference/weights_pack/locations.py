"""Where each kind of pack item is installed on this machine.

TotalSegmentator datasets go into the nnU-Net results folder TotalSegmentator reads
(``<TOTALSEG_HOME_DIR>/nnunet/results``, see inference/segmentation/totalseg_weights.py). Model
folders go into the models folder: ``$TUMORCHAIN_MODELS_DIR``, else ``$XDG_DATA_HOME/tumorchain/models``
(``~/.local/share/tumorchain/models``) on Linux, ``%LOCALAPPDATA%\\TumorChain\\models`` on Windows,
``~/Library/Application Support/TumorChain/models`` on macOS.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from inference.segmentation import totalseg_weights
from inference.weights_pack.manifest import ItemKind, PackItem

ENV_MODELS_DIR = "TUMORCHAIN_MODELS_DIR"


def default_models_dir() -> Path:
    if os.environ.get(ENV_MODELS_DIR):
        return Path(os.environ[ENV_MODELS_DIR]).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "TumorChain" / "models"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "TumorChain" / "models"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tumorchain" / "models"


@dataclass(frozen=True)
class Targets:
    """The two folders a pack installs into."""

    totalseg_results: Path
    models: Path

    @classmethod
    def for_settings(cls, totalseg_home: str | Path | None = None, models: str | Path | None = None) -> "Targets":
        """``totalseg_home``: TOTALSEG_HOME_DIR ("" or None: $TOTALSEG_HOME_DIR or ~/.totalsegmentator)."""
        home = Path(totalseg_home).expanduser() if totalseg_home else totalseg_weights.default_home_dir()
        return cls(totalseg_results=totalseg_weights.results_dir(home),
                   models=Path(models).expanduser() if models else default_models_dir())

    def folder_for(self, item: PackItem) -> Path:
        base = self.totalseg_results if item.kind is ItemKind.TOTALSEG_DATASET else self.models
        return base / item.name
