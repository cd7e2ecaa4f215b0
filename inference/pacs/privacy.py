"""No patient data in logs unless debugging is switched on.

PACS messages carry names, ids, birth dates and accession numbers. Our own log lines pass any such
value through ``phi()``, which hides it unless ``$TUMORCHAIN_PACS_DEBUG`` is 1 (or ``set_debug``);
pynetdicom's loggers, which dump whole identifiers at DEBUG level, are held at WARNING unless
debugging is on. Error messages name the connection and the step, never the patient.
"""
from __future__ import annotations

import logging
import os

_debug = os.environ.get("TUMORCHAIN_PACS_DEBUG", "") == "1"


def set_debug(on: bool) -> None:
    global _debug
    _debug = bool(on)
    quiet_pynetdicom()


def debug_enabled() -> bool:
    return _debug


def phi(value) -> str:
    """``value`` in debug mode, else a placeholder that says something was there."""
    return str(value) if _debug else ("<hidden>" if value not in (None, "") else "<empty>")


def quiet_pynetdicom() -> None:
    """pynetdicom logs identifiers at DEBUG (dataset dumps): keep it at WARNING unless debugging."""
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if _debug else logging.WARNING)
