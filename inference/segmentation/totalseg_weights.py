"""Which TotalSegmentator weight folders a run needs, and what to tell a user who lacks them.

Standard library only: the worker (running inside the separate TotalSegmentator environment)
loads this file by path, so both processes agree on one table and one message.

TotalSegmentator 2.18 keeps nnU-Net weights under ``$TOTALSEG_HOME_DIR/nnunet/results`` (default
``~/.totalsegmentator``; ``$TOTALSEG_WEIGHTS_PATH`` overrides the results folder itself), one folder
per nnU-Net dataset:

    <results>/Dataset291_TotalSegmentator_part1_organs_1559subj/
        nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres/
            plans.json  dataset.json  fold_0/checkpoint_final.pth

TotalSegmentator downloads a missing folder on first use; the workstation never lets it (no
network at run time), so the folders must be placed beforehand.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TOTALSEG_VERSION = "2.18.0"
SETUP_SCRIPT = "installers/setup_totalseg_env.sh"


@dataclass(frozen=True)
class WeightFolder:
    dataset_id: int
    folder: str  # nnU-Net dataset folder name
    trainer: str
    download_task: str  # `totalseg_download_weights -t <this>` fetches it
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"

    @property
    def model_dir(self) -> str:
        """Trainer folder inside the dataset folder (nnU-Net's naming)."""
        return f"{self.trainer}__{self.plans}__{self.configuration}"


# Folder names as in TotalSegmentator 2.18 map_tasks_config.TASK_ID_WEIGHTS_CONFIGS; trainers as in
# TASK_CONFIGS (a test compares this table with the installed package).
_NO_MIRROR = "nnUNetTrainerNoMirroring"
_4000 = "nnUNetTrainer_4000epochs_NoMirroring"
FOLDERS: dict[int, WeightFolder] = {w.dataset_id: w for w in (
    WeightFolder(291, "Dataset291_TotalSegmentator_part1_organs_1559subj", _NO_MIRROR, "total"),
    WeightFolder(292, "Dataset292_TotalSegmentator_part2_vertebrae_1532subj", _NO_MIRROR, "total"),
    WeightFolder(293, "Dataset293_TotalSegmentator_part3_cardiac_1559subj", _NO_MIRROR, "total"),
    WeightFolder(294, "Dataset294_TotalSegmentator_part4_muscles_1559subj", _NO_MIRROR, "total"),
    WeightFolder(295, "Dataset295_TotalSegmentator_part5_ribs_1559subj", _NO_MIRROR, "total"),
    WeightFolder(297, "Dataset297_TotalSegmentator_total_3mm_1559subj", _4000, "total_fast"),
    WeightFolder(298, "Dataset298_TotalSegmentator_total_6mm_1559subj", _4000, "total"),
    WeightFolder(570, "Dataset570_ct_liver_segments", _NO_MIRROR, "liver_segments"),
)}

ROUGH_CROP_MODEL = 298  # TotalSegmentator's 6 mm model, run first to crop for roi_subset / liver_segments


def needed_dataset_ids(fast: bool = False, roi_subset: list[str] | None = None,
                       liver_segments: bool = False) -> list[int]:
    """nnU-Net dataset ids one run uses, in the order TotalSegmentator runs them."""
    ids: list[int] = []
    if roi_subset:
        ids.append(ROUGH_CROP_MODEL)
    ids += [297] if fast else [291, 292, 293, 294, 295]
    if liver_segments:
        ids += [ROUGH_CROP_MODEL, 570]  # liver_segments crops to the liver with the 6 mm model
    return ids


def default_home_dir() -> Path:
    """Where TotalSegmentator keeps config and weights: $TOTALSEG_HOME_DIR, else ~/.totalsegmentator."""
    if os.environ.get("TOTALSEG_HOME_DIR"):
        return Path(os.environ["TOTALSEG_HOME_DIR"]).expanduser()
    home = Path("/tmp") if str(Path.home()) == "/" else Path.home()  # as TotalSegmentator does
    return home / ".totalsegmentator"


def results_dir(home_dir: Path, env: dict[str, str] | None = None) -> Path:
    """The nnU-Net results folder TotalSegmentator reads for ``home_dir`` (honours TOTALSEG_WEIGHTS_PATH)."""
    env = os.environ if env is None else env
    if env.get("TOTALSEG_WEIGHTS_PATH"):
        return Path(env["TOTALSEG_WEIGHTS_PATH"]).expanduser()
    return Path(home_dir) / "nnunet" / "results"


def folder_problem(results: Path, dataset_id: int) -> str | None:
    """None when the weights for ``dataset_id`` look complete, else what is missing."""
    w = FOLDERS[dataset_id]
    base = results / w.folder
    if not base.is_dir():
        return f"{w.folder}/ is missing"
    model = base / w.model_dir
    for rel in ("plans.json", "dataset.json", "fold_0/checkpoint_final.pth"):
        if not (model / rel).is_file():
            return f"{w.folder}/{w.model_dir}/{rel} is missing (incomplete copy?)"
    return None


def missing_weights(results: Path, dataset_ids: list[int]) -> list[str]:
    """One problem line per dataset whose weights are absent or incomplete."""
    problems = [folder_problem(results, i) for i in dict.fromkeys(dataset_ids)]
    return [p for p in problems if p]


def missing_weights_message(home_dir: Path, results: Path, dataset_ids: list[int], problems: list[str]) -> str:
    """What a user reads when weights are missing: what, where, and how to place them offline."""
    tasks = sorted({FOLDERS[i].download_task for i in dataset_ids})
    folders = "\n".join(f"  - {FOLDERS[i].folder}" for i in dict.fromkeys(dataset_ids))
    commands = "\n".join(f"  totalseg_download_weights -t {t}" for t in tasks)
    example = FOLDERS[dataset_ids[0]]
    return (
        f"TotalSegmentator weights are missing in {results}\n"
        f"(TOTALSEG_HOME_DIR={home_dir}; the weights live in its nnunet/results folder):\n"
        + "\n".join(f"  * {p}" for p in problems) + "\n\n"
        "The workstation never downloads at run time. To place the weights offline:\n"
        f"1. On a machine with internet access: pip install totalsegmentator=={TOTALSEG_VERSION}, then run\n"
        f"{commands}\n"
        "   (they land in ~/.totalsegmentator/nnunet/results, or under $TOTALSEG_HOME_DIR when set).\n"
        f"2. Copy these folders from there into {results}/ on this machine:\n{folders}\n"
        "3. Keep the layout, e.g.\n"
        f"  {results}/{example.folder}/{example.model_dir}/plans.json, dataset.json,\n"
        f"      fold_0/checkpoint_final.pth\n"
        "Or point TOTALSEG_HOME_DIR (the workstation's TotalSegmentator folder setting) at a folder that\n"
        "already holds them."
    )
