"""A round of a model without an organ classifier (a converted M3D-LaMed): the card says so where
P(abnormal) would be, and its chips carry no number; a model with one still shows P(abn)."""
from __future__ import annotations

import numpy as np

from gui_helpers import save_artifact


def _round(prob):
    from inference.iir.rounds import ExaminedOrgan, Round, RoundTimings

    organ = ExaminedOrgan(label_id=5, name="liver", display="liver", mask_label=5, mask_name="liver",
                          abnormal_prob=prob, n_tokens=64, voxels=1200)
    return Round(index=2, prompt="The question requires greater attention to liver.<organ_feature>",
                 text="The liver shows no focal lesion.", organs=[organ],
                 timings=RoundTimings(prefill_ms=120.0, decode_ms=900.0, generated_tokens=8, tokens_per_s=8.0))


def _card(qtbot, prob):
    from PySide6.QtTest import QTest

    from app.round_card import RoundCard

    card = RoundCard(2, "", lambda label: (200, 120, 60))
    qtbot.addWidget(card)
    card.resize(520, 220)
    card.set_round(_round(prob))
    card.show()
    assert QTest.qWaitForWindowExposed(card, 5000)
    qtbot.wait(50)
    return card


def _pixels(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB888)
    ptr = img.constBits()
    arr = np.frombuffer(ptr, np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return arr[:, :img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def test_no_classifier_round_says_so_and_shows_no_probability(qapp, qtbot):
    from app.organ_chip import OrganChip

    card = _card(qtbot, None)
    assert "P(abnormal): no organ classifier in this model" in card.next.text() and card.next.isVisible()
    chips = card.findChildren(OrganChip)
    assert len(chips) == 1 and not hasattr(chips[0], "prob_label")
    note = _pixels(card.next)
    save_artifact(_pixels(card), "round_card_no_classifier")
    assert note.std() > 5, "the note is drawn (text pixels differ from the background)"


def test_a_classifier_round_keeps_its_probability(qapp, qtbot):
    from app.organ_chip import OrganChip

    card = _card(qtbot, 0.83)
    assert "no organ classifier" not in card.next.text()
    chips = card.findChildren(OrganChip)
    assert chips[0].prob_label.text() == "P(abn) 83%"
    save_artifact(_pixels(card), "round_card_with_classifier")
