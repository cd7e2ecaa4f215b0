"""Per-region thresholds for the classifier screen's "Discordant:" warning, kept in the model folder.

One threshold for every region fails: on 200 held-out synthetic cases the shipped demo model puts
some sub-region of 41 of 48 normal cases at P(abnormal) >= 0.5, the lower esophagus in 38 of them, and
even at 0.98 it is 26 of 48 (benchmarks/bench_classifier_screen.py). The classifier's normal range
differs per region, so each region gets its own: the given quantile of P(abnormal) over that region's
lesion-free instances in held-out cases, never below 0.5 (training/screen_calibration.py writes
``screen_thresholds.json``). A folder without the file screens at 0.5 everywhere, and says so.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from inference.errors import ModelError

FILE = "screen_thresholds.json"
FORMAT = "tumorchain.screen_thresholds/1"
DEFAULT = 0.5


@dataclass(frozen=True)
class ScreenThresholds:
    by_region: dict[str, float] = field(default_factory=dict)
    source: str = f"no {FILE} in the model folder: {DEFAULT} for every region"

    def of(self, region: str) -> float:
        return self.by_region.get(region, DEFAULT)

    @property
    def calibrated(self) -> bool:
        return bool(self.by_region)


def load_screen_thresholds(model_dir: str | Path) -> ScreenThresholds:
    """The folder's thresholds, or the uncalibrated default when it has none; a malformed file is refused."""
    path = Path(model_dir) / FILE
    if not path.is_file():
        return ScreenThresholds()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable screen thresholds file: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path}: not a screen thresholds file (format is not {FORMAT!r})")
    regions = data.get("thresholds")
    if not isinstance(regions, dict) or not regions:
        raise ModelError(f"{path}: 'thresholds' must map region names to numbers")
    for name, value in regions.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not DEFAULT <= value <= 1.0:
            raise ModelError(f"{path}: threshold of {name!r} is {value!r}, not a number from {DEFAULT} to 1")
    about = data.get("calibration", {})
    source = (f"{FILE}: each region's {about.get('quantile', '?')} quantile of P(abnormal) over its lesion-free "
              f"instances in {about.get('cases', '?')} held-out cases, at least {DEFAULT}")
    return ScreenThresholds({str(k): float(v) for k, v in regions.items()}, source)


def calibrate(negatives: dict[str, list[float]], quantile: float, floor: float = DEFAULT) -> dict[str, float]:
    """{region: max(floor, the quantile of its lesion-free P(abnormal))}, rounded up to 4 decimals."""
    import numpy as np

    out = {}
    for name, probs in sorted(negatives.items()):
        if probs:
            q = float(np.quantile(np.asarray(probs, dtype=np.float64), quantile, method="higher"))
            out[name] = min(1.0, max(floor, math.ceil(q * 1e4) / 1e4))
    return out


def write_screen_thresholds(model_dir: str | Path, thresholds: dict[str, float], calibration: dict) -> Path:
    from inference.atomic_write import atomic_write

    path = Path(model_dir) / FILE
    atomic_write(path, json.dumps({"format": FORMAT, "calibration": calibration, "thresholds": thresholds},
                                  indent=1, sort_keys=True) + "\n", what="screen thresholds")
    return path
