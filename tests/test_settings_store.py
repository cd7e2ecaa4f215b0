"""The one settings store the window, the controller and the panel share: AppSettings is frozen,
a change replaces it and is announced once. Headless (no QSettings: the writer is a list)."""
from __future__ import annotations

import dataclasses

import pytest

from app.settings import AppSettings
from app.settings_store import SettingsStore


def test_settings_change_only_through_the_store_and_each_change_is_announced_once():
    written: list[AppSettings] = []
    store = SettingsStore(AppSettings(reviewer="Dr A"), writer=written.append)
    with pytest.raises(dataclasses.FrozenInstanceError):
        store.current.reviewer = "Dr B"  # type: ignore[misc]
    changes = []
    store.events.connect("changed", lambda old, new: changes.append((old.reviewer, new.reviewer)))
    before = store.current
    store.update(reviewer="Dr B")
    store.update(reviewer="Dr B")  # the same value: no event
    store.set(dataclasses.replace(store.current))  # an equal copy: no event
    assert changes == [("Dr A", "Dr B")] and before.reviewer == "Dr A"  # a snapshot stays as it was
    assert written == []
    store.save()
    assert written == [store.current]
    assert SettingsStore.of(store) is store and SettingsStore.of(before).current is before


def test_validated_replaces_out_of_range_values_with_defaults():
    bad = AppSettings(device="quantum", max_rounds=99, max_new_tokens=1, default_task="poetry")
    good = bad.validated()
    assert (good.device, good.max_rounds, good.max_new_tokens, good.default_task) == ("auto", 12, 8, "report")
    assert bad.device == "quantum"  # validated() is a copy
