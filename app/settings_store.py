"""The one AppSettings in use, owned by one store that the window, the controller and the panel
share. Qt-free.

AppSettings is frozen, so nobody patches it in place: a change goes through ``update`` (or
``set``), which replaces the value and emits ``changed(old, new)`` once, and only when something
changed. Readers take ``current`` when they act, so a run started before a change keeps the
settings it started with. ``save`` hands the current value to the writer (QSettings in the app,
nothing in tests).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from app.settings import AppSettings
from viewer.events import Events

EVENTS = ("changed",)  # (old AppSettings, new AppSettings)


class SettingsStore:
    def __init__(self, settings: AppSettings | None = None,
                 writer: Callable[[AppSettings], None] | None = None) -> None:
        self.events = Events(EVENTS, "settings")
        self._current = settings or AppSettings()
        self._writer = writer

    @classmethod
    def of(cls, settings: "SettingsStore | AppSettings | None") -> "SettingsStore":
        """A store as given, or a fresh one (no writer) around plain settings."""
        return settings if isinstance(settings, SettingsStore) else cls(settings)

    @property
    def current(self) -> AppSettings:
        return self._current

    def set(self, settings: AppSettings) -> None:
        old = self._current
        if settings == old:
            return
        self._current = settings
        self.events.emit("changed", old, settings)

    def update(self, **changes) -> AppSettings:
        """Replace some fields (as given: the Settings dialog and the loader validate)."""
        self.set(replace(self._current, **changes))
        return self._current

    def save(self) -> None:
        if self._writer is not None:
            self._writer(self._current)
