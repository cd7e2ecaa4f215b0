"""Where each kind of pack item is installed on this machine.

The segmentation runtime goes into ``$TUMORCHAIN_TOTALSEG_RUNTIME``, else ``<user data>/totalseg-runtime``
(inference/segmentation/totalseg_runtime.py), where the segmentation backend looks for it.

TotalSegmentator datasets go into the nnU-Net results folder TotalSegmentator reads
(``<TOTALSEG_HOME_DIR>/nnunet/results``, see inference/segmentation/totalseg_weights.py). Model
folders go into the models folder: ``$TUMORCHAIN_MODELS_DIR``, else ``$XDG_DATA_HOME/tumorchain/models``
(``~/.local/share/tumorchain/models``) on Linux, ``%LOCALAPPDATA%\\TumorChain\\models`` on Windows,
``~/Library/Application Support/TumorChain/models`` on macOS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from inference.segmentation import totalseg_runtime, totalseg_weights
from inference.weights_pack.manifest import ItemKind, PackItem

ENV_MODELS_DIR = "TUMORCHAIN_MODELS_DIR"


def default_models_dir() -> Path:
    if os.environ.get(ENV_MODELS_DIR):
        return Path(os.environ[ENV_MODELS_DIR]).expanduser()
    return totalseg_runtime.user_data_dir() / "models"


@dataclass(frozen=True)
class Targets:
    """The folders a pack installs into (``runtime``: None means default_runtime_dir())."""

    totalseg_results: Path
    models: Path
    runtime: Path | None = None

    @classmethod
    def for_settings(cls, totalseg_home: str | Path | None = None, models: str | Path | None = None,
                     runtime: str | Path | None = None) -> "Targets":
        """``totalseg_home``: TOTALSEG_HOME_DIR ("" or None: $TOTALSEG_HOME_DIR or ~/.totalsegmentator)."""
        home = Path(totalseg_home).expanduser() if totalseg_home else totalseg_weights.default_home_dir()
        return cls(totalseg_results=totalseg_weights.results_dir(home),
                   models=Path(models).expanduser() if models else default_models_dir(),
                   runtime=Path(runtime).expanduser() if runtime else None)

    @property
    def runtime_dir(self) -> Path:
        return self.runtime or totalseg_runtime.default_runtime_dir()

    def folder_for(self, item: PackItem) -> Path:
        """The folder the item is installed as (the runtime: one fixed folder, whatever its name in the pack)."""
        if item.kind is ItemKind.TOTALSEG_RUNTIME:
            return self.runtime_dir
        base = self.totalseg_results if item.kind is ItemKind.TOTALSEG_DATASET else self.models
        return base / item.name
