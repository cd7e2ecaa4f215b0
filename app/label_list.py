"""The label panel: organs present in the case, with visibility, colour, volume and highlight.

It mirrors the scene state (rebuilt on 'case', re-synced on 'labels'/'highlight') and changes it
only through the state's setters. Double-click an organ to highlight it; Esc or Clear removes it.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton,
                               QSlider, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from viewer.scene_state import SceneState

ID_ROLE = Qt.ItemDataRole.UserRole


class LabelList(QWidget):
    def __init__(self, state: SceneState, parent=None):
        super().__init__(parent)
        self.state = state
        self.items: dict[int, QTreeWidgetItem] = {}
        self._syncing = False

        self.filter = QLineEdit(placeholderText="Filter labels")
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Label", "Volume (ml)"])
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.opacity = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100)
        self.fill = QCheckBox("Fill")
        self.outline = QCheckBox("Outline")
        self.show_all = QPushButton("All")
        self.show_none = QPushButton("None")
        self.highlight = QPushButton("Highlight")
        self.clear = QPushButton("Clear")
        self.highlight.setToolTip("Highlight the selected labels (or double-click a label)")
        self.clear.setToolTip("Remove the highlight and restore the view (Esc in a slice view)")

        row1 = QHBoxLayout()
        row1.addWidget(QLabel("Opacity"))
        row1.addWidget(self.opacity, 1)
        row1.addWidget(self.fill)
        row1.addWidget(self.outline)
        row2 = QHBoxLayout()
        for b in (self.show_all, self.show_none, self.highlight, self.clear):
            row2.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.filter)
        lay.addWidget(self.tree, 1)
        lay.addLayout(row1)
        lay.addLayout(row2)

        self.filter.textChanged.connect(self._apply_filter)
        self.tree.itemChanged.connect(self._item_changed)
        self.tree.itemDoubleClicked.connect(lambda item, _col: self.state.set_highlight([item.data(0, ID_ROLE)]))
        self.opacity.valueChanged.connect(lambda v: self._syncing or self.state.set_opacity(v / 100))
        self.fill.toggled.connect(lambda on: self._syncing or self.state.set_fill(on))
        self.outline.toggled.connect(lambda on: self._syncing or self.state.set_outline(on))
        self.show_all.clicked.connect(lambda: self.state.set_visible_labels(
            i for i in self.state.present_ids if i < 100))
        self.show_none.clicked.connect(lambda: self.state.set_visible_labels(()))
        self.highlight.clicked.connect(self._highlight_selected)
        self.clear.clicked.connect(self.state.clear_highlight)
        self._handlers = {"case": self.rebuild, "labels": self.sync, "highlight": self.sync}
        for name, fn in self._handlers.items():
            state.events.connect(name, fn)
        self.rebuild()

    def detach(self) -> None:
        for name, fn in self._handlers.items():
            self.state.events.disconnect(name, fn)

    # --- state -> widget ------------------------------------------------------------------
    def rebuild(self) -> None:
        self._syncing = True
        self.tree.clear()
        self.items.clear()
        st = self.state
        for lid in st.present_ids:
            if lid >= 100:
                continue
            self.items[lid] = self._make_item(lid, self.tree)
        for lid in st.present_ids:
            if lid < 100:
                continue
            parent = st.table.by_id(lid).parent if lid in st.table else None
            holder = self.items.get(parent) if parent is not None else None
            self.items[lid] = self._make_item(lid, holder if holder is not None else self.tree)
        self._syncing = False
        self.sync()

    def _make_item(self, lid: int, parent) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent)
        item.setText(0, self.state.label_name(lid))
        ml = self.state.label_volume_ml(lid)
        item.setText(1, f"{ml:.1f}" if ml >= 1 else f"{ml:.2f}")
        item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        item.setData(0, ID_ROLE, lid)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setToolTip(0, f"id {lid}; double-click to highlight")
        return item

    def sync(self) -> None:
        """Checks, colours and ROI emphasis from the state (no state changes while syncing)."""
        self._syncing = True
        st = self.state
        roi = set(st.highlight)
        for lid, item in self.items.items():
            item.setCheckState(0, Qt.CheckState.Checked if lid in st.visible else Qt.CheckState.Unchecked)
            pix = QPixmap(14, 14)
            pix.fill(QColor(*st.colour(lid)))
            item.setIcon(0, QIcon(pix))
            font = QFont(item.font(0))
            font.setBold(lid in roi)
            item.setFont(0, font)
            item.setForeground(0, QBrush(QColor(*st.highlight_rgb)) if lid in roi else QBrush())
            if lid in roi and item.parent() is not None:
                item.parent().setExpanded(True)  # a highlighted part is seen, not folded away
                self.tree.scrollToItem(item)
        self.opacity.setValue(round(st.opacity * 100))
        self.fill.setChecked(st.fill)
        self.outline.setChecked(st.outline)
        self._syncing = False

    # --- widget -> state ------------------------------------------------------------------
    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._syncing or column != 0:
            return
        self.state.set_label_visible(item.data(0, ID_ROLE), item.checkState(0) == Qt.CheckState.Checked)

    def _highlight_selected(self) -> None:
        ids = [it.data(0, ID_ROLE) for it in self.tree.selectedItems()]
        if ids:
            self.state.set_highlight(ids)

    def _apply_filter(self, text: str) -> None:
        text = text.strip().lower()
        for item in self.items.values():
            item.setHidden(bool(text) and text not in item.text(0).lower())
