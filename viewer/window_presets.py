"""CT window/level presets (HU) and the number keys that select them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowPreset:
    name: str
    window: float  # width in HU
    level: float  # centre in HU
    key: str  # number key that selects it in any slice view


PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("soft tissue", 400.0, 40.0, "1"),
    WindowPreset("liver", 150.0, 90.0, "2"),
    WindowPreset("lung", 1500.0, -600.0, "3"),
    WindowPreset("bone", 2500.0, 480.0, "4"),
    WindowPreset("brain", 80.0, 40.0, "5"),
)

DEFAULT_PRESET = PRESETS[0]
_BY_KEY = {p.key: p for p in PRESETS}


def preset_for_key(key: str) -> WindowPreset | None:
    """The preset a number key selects, or None."""
    return _BY_KEY.get(key)

