"""Round cards live inside the reasoning panel only. A card the panel drops before Qt ran the show its
layout queued for it (a fast run whose end arrives in the same batch of queued signals as its rounds)
must not open as a window of its own: the README's screenshot run showed two stray round cards over
the window's top-left corner."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def panel(qapp, tmp_path):
    from app.case_controller import CaseController
    from app.case_store import CaseStore
    from app.reasoning_panel import ReasoningPanel
    from app.settings import AppSettings
    from viewer.scene_state import SceneState

    c = CaseController(SceneState(), AppSettings(reviewer="Dr Panel"), store=CaseStore(tmp_path / "reviews"))
    p = ReasoningPanel(c)
    p.resize(600, 900)
    p.show()
    yield p
    c.shutdown()
    p.close()
    p.deleteLater()


def _visible_cards_outside(panel) -> list:
    from PySide6.QtWidgets import QApplication

    from app.round_card import RoundCard

    return [w for w in QApplication.topLevelWidgets() if isinstance(w, RoundCard) and w.isVisible()]


def _settle() -> None:
    from PySide6.QtCore import QCoreApplication

    for _ in range(5):
        QCoreApplication.processEvents()


def test_a_card_shows_inside_the_panel(panel):
    card = panel._add_card(1, "Write a CT report.")
    _settle()
    assert card.isVisible() and card.window() is panel.window()
    assert _visible_cards_outside(panel) == []


def test_cards_dropped_before_their_queued_show_never_open_as_windows(panel):
    cards = [panel._add_card(i, f"prompt {i}") for i in (1, 2)]  # the layout queues a show for each
    assert not any(c.isVisible() for c in cards)  # not yet run
    panel._clear_cards()  # as show_run does when the run's end is handled before those shows
    _settle()
    assert _visible_cards_outside(panel) == []
