"""Typed reads of JSON-loaded dicts that fail with the dotted path of the bad field
("rounds[2].timings.prefill_ms: expected int or float, got str")."""
from __future__ import annotations

_MISSING = object()


def need(value, types, where: str):
    # bool is an int in Python; a JSON true where a number belongs is still a mistake
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ValueError(f"{where}: expected {_names(types)}, got bool")
    if not isinstance(value, types):
        raise ValueError(f"{where}: expected {_names(types)}, got {type(value).__name__}")
    return value


def field(data: dict, key: str, types, where: str, default=_MISSING):
    need(data, dict, where)
    if key not in data:
        if default is _MISSING:
            raise ValueError(f"{where}.{key}: missing")
        return default
    return need(data[key], types, f"{where}.{key}")


def list_field(data: dict, key: str, where: str) -> list:
    return field(data, key, list, where, default=[])


def _names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)
