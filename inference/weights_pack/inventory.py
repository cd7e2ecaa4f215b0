"""What this machine has installed: TotalSegmentator weights (per dataset and per task) and model
folders. Used by ``tumorchain weights list``, the import report and the Settings dialog."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inference.segmentation import totalseg_weights as tsw
from inference.weights_pack.locations import Targets

# What a user can run, and the datasets each needs (totalseg_weights.needed_dataset_ids decides)
TASK_DATASETS = {
    "total": tsw.needed_dataset_ids(),
    "total (fast, 3 mm)": tsw.needed_dataset_ids(fast=True),
    "liver_segments": tsw.needed_dataset_ids(liver_segments=True),
}


@dataclass(frozen=True)
class DatasetState:
    dataset_id: int
    folder: str
    problem: str | None  # None: complete


@dataclass(frozen=True)
class ModelState:
    name: str
    folder: Path
    problem: str | None  # None: the folder passes the model folder checks


@dataclass(frozen=True)
class Inventory:
    results: Path
    models_dir: Path
    datasets: tuple[DatasetState, ...]
    models: tuple[ModelState, ...]
    runtime_dir: Path | None = None
    runtime_problem: str | None = None  # None: a runtime this machine can start is installed

    def task_ready(self, task: str) -> bool:
        complete = {d.dataset_id for d in self.datasets if d.problem is None}
        return set(TASK_DATASETS[task]) <= complete

    def lines(self) -> list[str]:
        out = [f"TotalSegmentator weights in {self.results}:"]
        for task in TASK_DATASETS:
            out.append(f"  {task}: {'ready' if self.task_ready(task) else 'missing'}")
        for d in self.datasets:
            if d.problem is None:
                out.append(f"    dataset {d.dataset_id} installed")
        out.append(f"Models (installed in {self.models_dir}):")
        for m in self.models:
            out.append(f"  {m.name}: {'ok' if m.problem is None else m.problem}  ({m.folder})")
        if not self.models:
            out.append("  none")
        if self.runtime_dir is not None:
            out.append(f"Segmentation runtime in {self.runtime_dir}: "
                       + ("ready" if self.runtime_problem is None else f"not usable ({self.runtime_problem})"))
        return out


def take_inventory(targets: Targets, extra_models: list[Path] | None = None) -> Inventory:
    datasets = tuple(DatasetState(i, w.folder, tsw.folder_problem(targets.totalseg_results, i))
                     for i, w in tsw.FOLDERS.items())
    folders = list(extra_models or [])
    if targets.models.is_dir():
        folders += sorted(p for p in targets.models.iterdir() if p.is_dir() and not p.name.startswith("."))
    models = tuple(ModelState(f.name, f, model_folder_problem(f)) for f in folders)
    from inference.segmentation.totalseg_runtime import runtime_problem

    return Inventory(targets.totalseg_results, targets.models, datasets, models, targets.runtime_dir,
                     runtime_problem(targets.runtime_dir))


def model_folder_problem(folder: Path) -> str | None:
    """Cheap check (files and config, no weights read): None when the folder looks loadable."""
    from inference.errors import TumorChainError
    from inference.model.model_files import check_model_folder

    try:
        check_model_folder(folder)
    except TumorChainError as exc:
        return str(exc)
    return None
