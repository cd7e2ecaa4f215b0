"""What this workstation has installed, in a few lines for Settings and the import report: model
folders, TotalSegmentator weights per task, which TotalSegmentator program a segmentation starts
(the segmentation runtime or an environment), and whether a GPU is used (with the reason when not)."""
from __future__ import annotations

from pathlib import Path

from app.settings import AppSettings


def installed_lines(settings: AppSettings, check_gpu: bool = True) -> list[str]:
    from inference.errors import SegmentationError
    from inference.segmentation.totalseg_backend import find_worker
    from inference.weights_pack.inventory import take_inventory
    from inference.weights_pack.locations import Targets

    targets = Targets.for_settings(settings.totalseg_weights_dir)
    from app.settings import DEMO_MODEL

    current = [Path(settings.model_dir)] if settings.model_dir else []
    shipped = [DEMO_MODEL] if (DEMO_MODEL / "config.json").is_file() else []
    inv = take_inventory(targets, extra_models=current + shipped)
    lines = []
    seen: set[Path] = set()
    for m in inv.models:
        key = m.folder.expanduser().resolve()
        if key in seen:
            continue
        seen.add(key)
        mark = "✓" if m.problem is None else "✗"
        used = " (in use)" if current and key == current[0].expanduser().resolve() else ""
        used += " (shipped demo model)" if shipped and key == shipped[0].resolve() else ""
        lines.append(f"{mark} Model {m.name}{used}: {m.folder}" + (f" — {m.problem}" if m.problem else ""))
    if not any(m.folder.parent == inv.models_dir for m in inv.models):
        lines.append(f"  No imported models in {inv.models_dir} (Edit > Import Weights Pack)")
    ready = [t for t in ("total", "total (fast, 3 mm)", "liver_segments") if inv.task_ready(t)]
    missing = [t for t in ("total", "total (fast, 3 mm)", "liver_segments") if not inv.task_ready(t)]
    lines.append(f"{'✓' if ready else '✗'} TotalSegmentator weights in {inv.results}: "
                 + (f"ready for {', '.join(ready)}" if ready else "none")
                 + (f"; missing for {', '.join(missing)}" if missing and ready else ""))
    try:
        worker = find_worker()  # what a segmentation would start: the runtime or an environment
        lines.append(f"✓ TotalSegmentator: {worker.describe()}")
    except SegmentationError as exc:
        lines.append(f"✗ {str(exc).splitlines()[0]} — organ masks come from case folders or the synthetic backend")
    if check_gpu:
        from inference.model.gpu_status import gpu_status

        gpu = gpu_status()
        lines.append(f"{'✓' if gpu.found else '–'} {gpu.text}")
    return lines
