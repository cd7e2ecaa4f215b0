"""The banner under the patient line when the CT on screen lies outside the model's training domain
(the model folder's card, inference/model/model_card.py): a phantom-trained model on a real CT, or
a spacing or field of view it never saw. The same reasons go into run.json and every report page."""
from __future__ import annotations

import html

from PySide6.QtWidgets import QLabel, QSizePolicy


def domain_text(reasons: list[str], model_name: str = "") -> str:
    who = html.escape(model_name or "the model")
    return (f"<b>Outside the training domain of {who}:</b> " + html.escape("; ".join(reasons))
            + ". Its answers on this CT are not meaningful.")


class DomainBanner(QLabel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("domainBanner")
        self.setWordWrap(True)
        self.setStyleSheet("QLabel#domainBanner { background: #5a3a00; color: #ffd58a; padding: 4px 8px; }")
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.reasons: list[str] = []
        self.hide()

    def show_reasons(self, reasons: list[str], model_name: str = "") -> None:
        self.reasons = list(reasons)
        self.setText(domain_text(reasons, model_name) if reasons else "")
        self.setToolTip("\n".join(reasons))
        self.setVisible(bool(reasons))
