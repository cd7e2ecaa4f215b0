"""Organ chips: the organs a round examined, each in its label colour with the classifier's
P(abnormal); a click highlights that organ alone. Chips wrap in a small flow layout."""
from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLayout, QSizePolicy

from app.theme import ABNORMAL_RGB, rgb_css

ABNORMAL_AT = 0.5


class OrganChip(QFrame):
    clicked = Signal(int)  # the mask label to highlight

    def __init__(self, display: str, mask_label: int, rgb, prob: float | None, fallback: str | None = None,
                 parent=None):
        super().__init__(parent)
        self.setObjectName("chip")
        self.mask_label = mask_label
        self.prob = prob
        abnormal = prob is not None and prob >= ABNORMAL_AT
        self.setProperty("abnormal", abnormal)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        swatch = QLabel()
        swatch.setFixedSize(12, 12)
        swatch.setStyleSheet(f"background: {rgb_css(rgb)}; border-radius: 6px;")
        self.name = QLabel(display)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 2, 8, 2)
        lay.setSpacing(5)
        lay.addWidget(swatch)
        lay.addWidget(self.name)
        if prob is not None:
            self.prob_label = QLabel(f"P(abn) {prob:.0%}")
            colour = rgb_css(ABNORMAL_RGB) if abnormal else "#9aa0a6"
            self.prob_label.setStyleSheet(f"color: {colour}; font-weight: {'bold' if abnormal else 'normal'};")
            lay.addWidget(self.prob_label)
        tip = f"{display}: label {mask_label}"
        if prob is not None:
            tip += f"; the classifier's probability that it is abnormal: {prob:.2f}"
        if fallback:
            tip += f"\n{fallback}"
        self.setToolTip(tip + "\nClick to highlight it in every view.")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def mouseReleaseEvent(self, ev) -> None:  # noqa: N802 (Qt)
        if ev.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.mask_label)


class FlowLayout(QLayout):
    """Left to right, wrapping to the next line (Qt's flow layout example, trimmed)."""

    def __init__(self, parent=None, spacing: int = 4):
        self._heights: dict[int, int] = {}  # heightForWidth, per width, until the chips change
        self._placed = None  # the rect the chips were last placed in
        super().__init__(parent)
        self._items = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item) -> None:  # noqa: N802 (Qt)
        self._items.append(item)
        self._heights.clear()

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, i):  # noqa: N802
        return self._items[i] if 0 <= i < len(self._items) else None

    def takeAt(self, i):  # noqa: N802
        self._heights.clear()
        return self._items.pop(i) if 0 <= i < len(self._items) else None

    def invalidate(self) -> None:
        self._heights.clear()
        self._placed = None
        super().invalidate()

    def expandingDirections(self):  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        # Qt asks this several times per relayout of the panel, for every card, and each streamed
        # batch of text relayouts the panel: answer from the cache until the chips change
        h = self._heights.get(width)
        if h is None:
            h = self._heights[width] = self._place(QRect(0, 0, width, 0), move=False)
        return h

    def setGeometry(self, rect) -> None:  # noqa: N802
        super().setGeometry(rect)
        if self._placed != rect:
            self._place(rect, move=True)
            self._placed = QRect(rect)

    def sizeHint(self):  # noqa: N802
        return self.minimumSize()

    def minimumSize(self):  # noqa: N802
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _place(self, rect: QRect, move: bool) -> int:
        x, y, line = rect.x(), rect.y(), 0
        for item in self._items:
            hint = item.sizeHint()
            if x + hint.width() > rect.right() and line > 0:
                x, y, line = rect.x(), y + line + self._spacing, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._spacing
            line = max(line, hint.height())
        return y + line - rect.y()
