"""Recently opened cases (File > Recent Cases), newest first, kept with the settings."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from PySide6.QtCore import QSettings

KEY = "recent/cases"
MAX_RECENT = 10


@dataclass(frozen=True)
class RecentCase:
    path: str
    masks: str | None = None
    title: str = ""  # what the menu shows (series description or file name)

    def exists(self) -> bool:
        return Path(self.path).exists()

    def label(self) -> str:
        name = self.title or Path(self.path).name
        return f"{name}  ({self.path})" if name != self.path else name


class RecentCases:
    def __init__(self, store: QSettings):
        self.store = store

    def entries(self) -> list[RecentCase]:
        raw = self.store.value(KEY, "[]")
        try:
            items = json.loads(raw if isinstance(raw, str) else "[]")
            return [RecentCase(str(i["path"]), i.get("masks"), str(i.get("title", ""))) for i in items
                    if isinstance(i, dict) and i.get("path")][:MAX_RECENT]
        except (ValueError, TypeError, KeyError):
            return []  # a damaged entry list is forgotten, not fatal

    def add(self, path: str | Path, masks: str | Path | None = None, title: str = "") -> list[RecentCase]:
        entry = RecentCase(str(Path(path).expanduser().resolve()), str(masks) if masks else None, title)
        items = [entry] + [e for e in self.entries() if e.path != entry.path]
        self._write(items[:MAX_RECENT])
        return items[:MAX_RECENT]

    def clear(self) -> None:
        self._write([])

    def _write(self, items: list[RecentCase]) -> None:
        self.store.setValue(KEY, json.dumps([asdict(e) for e in items]))
        self.store.sync()
