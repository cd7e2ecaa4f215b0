"""The installed Qt binding must not corrupt reference counts in signal emission.

PySide6 6.12.0 drops a reference to ``True`` on every ``Signal.emit()``; the viewer emits per
frame, so a session would abort with "bool_dealloc" after enough frames (pyproject excludes it).
"""
from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    plain = Signal()
    with_arg = Signal(object)


def test_signal_emit_keeps_bool_refcounts(qapp):
    e = _Emitter()
    e.plain.connect(lambda: None)
    before_t, before_f = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(200):
        e.plain.emit()
        e.with_arg.emit(None)
    assert sys.getrefcount(True) - before_t > -50, "Signal.emit() leaks references to True (PySide6 6.12.0?)"
    assert abs(sys.getrefcount(False) - before_f) < 50
