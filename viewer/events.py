"""A minimal, Qt-free signal hub (napari's EmitterGroup, cut down): named callback lists.

Models that views observe (the scene state, the case model, the settings store) each own one;
a callback gets the arguments the model emits with. Connecting to a name the model does not
emit raises, so a typo fails at once instead of never firing.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable


class Events:
    def __init__(self, names: Iterable[str], owner: str = "model") -> None:
        self.names = tuple(names)
        self.owner = owner
        self._subs: dict[str, list[Callable[..., None]]] = defaultdict(list)

    def connect(self, name: str, callback: Callable[..., None]) -> None:
        if name not in self.names:
            raise ValueError(f"unknown {self.owner} event {name!r}; expected one of {self.names}")
        self._subs[name].append(callback)

    def disconnect(self, name: str, callback: Callable[..., None]) -> None:
        subs = self._subs.get(name, [])
        if callback in subs:
            subs.remove(callback)

    def emit(self, name: str, *args) -> None:
        for cb in list(self._subs.get(name, ())):
            cb(*args)

    def count(self, name: str) -> int:
        return len(self._subs.get(name, ()))
