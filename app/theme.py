"""The workstation's look: a dark Fusion palette (reading rooms are dim; grey UI around black
views keeps the eye adapted) and the stylesheet for the reasoning panel
(resources/app/workstation.qss)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QPalette

STYLESHEET = Path(__file__).resolve().parents[1] / "resources" / "app" / "workstation.qss"
DECISION_RGB = {"pending": (140, 140, 140), "agreed": (70, 170, 90), "edited": (220, 170, 40),
                "rejected": (220, 80, 80)}
ABNORMAL_RGB = (230, 90, 70)


def apply_theme(app) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: (45, 47, 51), QPalette.ColorRole.WindowText: (225, 225, 225),
        QPalette.ColorRole.Base: (32, 33, 36), QPalette.ColorRole.AlternateBase: (52, 54, 58),
        QPalette.ColorRole.ToolTipBase: (60, 62, 66), QPalette.ColorRole.ToolTipText: (235, 235, 235),
        QPalette.ColorRole.Text: (225, 225, 225), QPalette.ColorRole.Button: (58, 60, 65),
        QPalette.ColorRole.ButtonText: (230, 230, 230), QPalette.ColorRole.BrightText: (255, 80, 80),
        QPalette.ColorRole.Link: (110, 170, 255), QPalette.ColorRole.Highlight: (60, 110, 180),
        QPalette.ColorRole.HighlightedText: (255, 255, 255), QPalette.ColorRole.PlaceholderText: (140, 140, 140),
    }
    for role, rgb in roles.items():
        pal.setColor(role, QColor(*rgb))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 120))
    app.setPalette(pal)
    if STYLESHEET.is_file():
        app.setStyleSheet(STYLESHEET.read_text(encoding="utf-8"))


def rgb_css(rgb) -> str:
    return f"rgb({int(rgb[0])}, {int(rgb[1])}, {int(rgb[2])})"
